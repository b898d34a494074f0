using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Text.RegularExpressions;
using PerfectQueue.Application;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// A -Handler table as routes (matching lives in the engine's <see cref="RouteTable{THandler}"/>): task type →
/// handler. A key that is a [regex], or a string starting with '^', is a regular expression; any other key
/// matches the type exactly (case-sensitive). Exact routes win; regex routes are tried in the table's order
/// (sorted by pattern for an unordered hashtable).
/// </summary>
internal sealed class HandlerRoutes
{
    private readonly RouteTable<int> _routes = new();

    /// <summary>Each handler's script text, by route index: runspaces rebuild their own ScriptBlocks from it.</summary>
    public IReadOnlyList<string> Texts { get; }
    public IReadOnlyList<string> Names => _routes.Names;

    public HandlerRoutes(IDictionary table)
    {
        if (table.Count == 0) throw new ArgumentException("The handler table is empty. Give at least one route: @{ 'type' = { param($Task) ... } }.");
        var texts = new List<string>();
        var timeouts = new List<TimeSpan?>();
        var entries = table.Cast<DictionaryEntry>().ToList();
        if (table is Hashtable) entries = [.. entries.OrderBy(e => Convert.ToString(e.Key is PSObject p ? p.BaseObject : e.Key), StringComparer.Ordinal)];
        foreach (var entry in entries)
        {
            var key = entry.Key is PSObject pk ? pk.BaseObject : entry.Key;
            var value = entry.Value is PSObject pv ? pv.BaseObject : entry.Value;
            TimeSpan? timeout = null;
            if (value is IDictionary options)
            {
                (value, timeout) = RouteOptions(key, options);
            }
            var text = value switch
            {
                ScriptBlock sb => sb.ToString(),
                string s when !string.IsNullOrWhiteSpace(s) => s,
                _ => throw new ArgumentException($"The handler for '{key}' must be a scriptblock ({{ param($Task) ... }}) or @{{ Script = {{ ... }}; Timeout = 600 }}, not {value?.GetType().Name ?? "null"}."),
            };
            var index = texts.Count;
            texts.Add(text);
            timeouts.Add(timeout);
            switch (key)
            {
                case Regex r:
                    _routes.Add(r, index);
                    break;
                case string s when s.StartsWith('^'):
                    Regex pattern;
                    try { pattern = new Regex(s, RegexOptions.CultureInvariant); }
                    catch (ArgumentException e) { throw new ArgumentException($"The route '{s}' is not a valid regular expression: {e.Message}", e); }
                    _routes.Add(pattern, index);
                    break;
                case string s when !string.IsNullOrWhiteSpace(s):
                    _routes.Add(s, index);
                    break;
                default:
                    throw new ArgumentException($"A route must be a task type or a regular expression, not '{key}'.");
            }
        }
        Texts = texts;
        _timeouts = timeouts;
    }

    private readonly List<TimeSpan?> _timeouts;

    /// <summary>The timeout of the route a task type takes (null: the route has none, or no route matches).</summary>
    public TimeSpan? TimeoutFor(string type) => Find(type) is { } index ? _timeouts[index] : null;

    /// <summary>Each route's timeout, by route index (a child process is given them with the texts).</summary>
    public IReadOnlyList<TimeSpan?> Timeouts => _timeouts;

    // A route given as @{ Script = { ... }; Timeout = 600 }: the handler, and the longest one attempt may run.
    private static (object? Script, TimeSpan? Timeout) RouteOptions(object? key, IDictionary options)
    {
        object? script = null;
        TimeSpan? timeout = null;
        foreach (DictionaryEntry option in options)
        {
            var name = Convert.ToString(option.Key is PSObject p ? p.BaseObject : option.Key, CultureInfo.InvariantCulture);
            var value = option.Value is PSObject v ? v.BaseObject : option.Value;
            if (string.Equals(name, "Script", StringComparison.OrdinalIgnoreCase)) script = value;
            else if (string.Equals(name, "Timeout", StringComparison.OrdinalIgnoreCase)) timeout = Duration(key, value);
            else throw new ArgumentException($"The route '{key}' has an unknown setting '{name}'. A route is a scriptblock, or @{{ Script = {{ ... }}; Timeout = 600 }}.");
        }
        if (script is null) throw new ArgumentException($"The route '{key}' has no Script. Write it as @{{ Script = {{ param($Task) ... }}; Timeout = 600 }}.");
        return (script, timeout);
    }

    private static TimeSpan Duration(object? key, object? value)
    {
        var span = DurationTransformationAttribute.ToDuration(value);
        if (span is not { } d || d <= TimeSpan.Zero)
            throw new ArgumentException($"The route '{key}' has Timeout '{value}': give a number of seconds more than zero (600), or a TimeSpan ('00:10:00').");
        return d;
    }

    /// <summary>The route index for a task type, or null when no route matches.</summary>
    public int? Find(string type) => _routes.TryFind(type, out var index) ? index : null;
}
