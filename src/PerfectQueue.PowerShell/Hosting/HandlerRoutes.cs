using System.Collections;
using System.Management.Automation;
using System.Text.RegularExpressions;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// The original's Dispatch routes: task type → handler. A key that is a [regex], or a string starting with
/// '^', is a regular expression; any other key matches the type exactly (case-sensitive). Exact routes win;
/// regex routes are tried in the table's order (sorted by pattern for an unordered hashtable).
/// </summary>
internal sealed class HandlerRoutes
{
    private readonly Dictionary<string, int> _exact = new(StringComparer.Ordinal);
    private readonly List<(Regex Pattern, int Index)> _patterns = [];

    /// <summary>Each handler's script text, by route index: runspaces rebuild their own ScriptBlocks from it.</summary>
    public IReadOnlyList<string> Texts { get; }
    public IReadOnlyList<string> Names { get; }

    public HandlerRoutes(IDictionary table)
    {
        if (table.Count == 0) throw new ArgumentException("The handler table is empty. Give at least one route: @{ 'type' = { param($Task) ... } }.");
        var texts = new List<string>();
        var names = new List<string>();
        var entries = table.Cast<DictionaryEntry>().ToList();
        if (table is Hashtable) entries = [.. entries.OrderBy(e => Convert.ToString(e.Key is PSObject p ? p.BaseObject : e.Key), StringComparer.Ordinal)];
        foreach (var entry in entries)
        {
            var key = entry.Key is PSObject pk ? pk.BaseObject : entry.Key;
            var value = entry.Value is PSObject pv ? pv.BaseObject : entry.Value;
            var text = value switch
            {
                ScriptBlock sb => sb.ToString(),
                string s when !string.IsNullOrWhiteSpace(s) => s,
                _ => throw new ArgumentException($"The handler for '{key}' must be a scriptblock ({{ param($Task) ... }}), not {value?.GetType().Name ?? "null"}."),
            };
            var index = texts.Count;
            texts.Add(text);
            switch (key)
            {
                case Regex r:
                    _patterns.Add((r, index));
                    names.Add($"/{r}/");
                    break;
                case string s when s.StartsWith('^'):
                    try { _patterns.Add((new Regex(s, RegexOptions.CultureInvariant), index)); }
                    catch (ArgumentException e) { throw new ArgumentException($"The route '{s}' is not a valid regular expression: {e.Message}", e); }
                    names.Add($"/{s}/");
                    break;
                case string s when !string.IsNullOrWhiteSpace(s):
                    _exact[s] = index;
                    names.Add(s);
                    break;
                default:
                    throw new ArgumentException($"A route must be a task type or a regular expression, not '{key}'.");
            }
        }
        Texts = texts;
        Names = names;
    }

    /// <summary>The route index for a task type, or null when no route matches.</summary>
    public int? Find(string type)
    {
        if (_exact.TryGetValue(type, out var index)) return index;
        foreach (var (pattern, i) in _patterns)
            if (pattern.IsMatch(type)) return i;
        return null;
    }
}
