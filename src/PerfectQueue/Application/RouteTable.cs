using System.Text.RegularExpressions;

namespace PerfectQueue.Application;

/// <summary>
/// The original's Dispatch routing, once for every kind of handler: task type → handler. Exact routes win;
/// regular-expression routes are tried in the order they were added. Type matching is case-sensitive.
/// </summary>
internal sealed class RouteTable<THandler>
{
    private readonly Dictionary<string, THandler> _exact = new(StringComparer.Ordinal);
    private readonly List<(Regex Pattern, THandler Handler)> _patterns = [];
    private readonly List<string> _names = [];

    /// <summary>The routes as text: exact types as they are, patterns as /pattern/.</summary>
    public IReadOnlyList<string> Names => _names;

    public int Count => _names.Count;

    /// <summary>Routes tasks of exactly <paramref name="type"/> to <paramref name="handler"/>.</summary>
    public void Add(string type, THandler handler)
    {
        if (string.IsNullOrWhiteSpace(type)) throw new ArgumentException("A route's task type cannot be empty.", nameof(type));
        if (!_exact.TryAdd(type, handler)) throw new ArgumentException($"The task type '{type}' is routed twice.", nameof(type));
        _names.Add(type);
    }

    /// <summary>Routes tasks whose type matches <paramref name="pattern"/> to <paramref name="handler"/>.</summary>
    public void Add(Regex pattern, THandler handler)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        _patterns.Add((pattern, handler));
        _names.Add($"/{pattern}/");
    }

    /// <summary>The handler for a task type; false when no route matches.</summary>
    public bool TryFind(string type, out THandler handler)
    {
        if (_exact.TryGetValue(type, out handler!)) return true;
        foreach (var (pattern, h) in _patterns)
        {
            if (pattern.IsMatch(type)) { handler = h; return true; }
        }
        handler = default!;
        return false;
    }
}
