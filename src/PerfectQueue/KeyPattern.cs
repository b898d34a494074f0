namespace PerfectQueue;

/// <summary>
/// A key wildcard as PowerShell writes them (Get-PQTask -Key 'backup-*'): <c>*</c> any run of characters,
/// <c>?</c> one character, <c>[abc]</c> / <c>[a-z]</c> one character of a set, and a backtick before a character
/// to take it literally. It matches case-sensitively, as keys compare everywhere. Each backend turns the parsed
/// pattern into its own matching syntax; a literal <c>%</c> or <c>_</c> stays literal on every one.
/// </summary>
internal sealed class KeyPattern
{
    /// <summary>One element of a pattern.</summary>
    internal abstract record Part;
    /// <summary>A character that must be there as is.</summary>
    internal sealed record Literal(char Char) : Part;
    /// <summary><c>?</c>: exactly one character.</summary>
    internal sealed record AnyOne : Part;
    /// <summary><c>*</c>: any run of characters, the empty one included.</summary>
    internal sealed record AnyRun : Part;
    /// <summary><c>[...]</c>: one character from the chars or inclusive ranges.</summary>
    internal sealed record Set(IReadOnlyList<(char From, char To)> Ranges) : Part;

    private KeyPattern(string text, IReadOnlyList<Part> parts)
    {
        Text = text;
        Parts = parts;
    }

    /// <summary>The pattern as given.</summary>
    public string Text { get; }

    internal IReadOnlyList<Part> Parts { get; }

    public override string ToString() => Text;

    /// <summary>True when <paramref name="text"/> has an unescaped <c>*</c>, <c>?</c> or <c>[</c> (PowerShell's rule).</summary>
    public static bool HasWildcards(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '`') { i++; continue; }
            if (text[i] is '*' or '?' or '[') return true;
        }
        return false;
    }

    /// <summary>The pattern that matches <paramref name="text"/> exactly: a backtick before each wildcard character and backtick.</summary>
    public static string EscapeLiteral(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var escaped = new System.Text.StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            if (c is '*' or '?' or '[' or ']' or '`') escaped.Append('`');
            escaped.Append(c);
        }
        return escaped.ToString();
    }

    /// <summary>Parses a wildcard pattern.</summary>
    /// <exception cref="ArgumentException">an unclosed or empty <c>[...]</c>, or a bracket inside one.</exception>
    public static KeyPattern Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = new List<Part>();
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '`' && i + 1 < text.Length) { parts.Add(new Literal(text[++i])); continue; }
            switch (c)
            {
                case '*':
                    if (parts.Count == 0 || parts[^1] is not AnyRun) parts.Add(new AnyRun()); // ** is *
                    break;
                case '?':
                    parts.Add(new AnyOne());
                    break;
                case '[':
                    i = ParseSet(text, i, parts);
                    break;
                default:
                    parts.Add(new Literal(c));
                    break;
            }
        }
        return new KeyPattern(text, parts);
    }

    // From the '[' at start; returns the index of its ']'.
    private static int ParseSet(string text, int start, List<Part> parts)
    {
        var members = new List<char>();
        var i = start + 1;
        for (; i < text.Length && text[i] != ']'; i++)
        {
            var c = text[i];
            if (c == '`' && i + 1 < text.Length) c = text[++i];
            if (c is '[' or ']') throw Problem(text, "has a bracket inside [...]; no backend can match one there. Match it with ? instead, or escape it outside a set (`[).");
            members.Add(c);
        }
        if (i >= text.Length) throw Problem(text, "has a [ without its closing ]. Close the set, or escape the bracket with a backtick (`[) to match it literally.");
        if (members.Count == 0) throw Problem(text, "has an empty set []. Put characters in it, such as [0-9], or escape the brackets (`[`]).");
        var ranges = new List<(char, char)>();
        for (var m = 0; m < members.Count; m++)
        {
            // a-z is a range; a leading or trailing '-' is itself.
            if (m + 2 < members.Count && members[m + 1] == '-')
            {
                var (from, to) = (members[m], members[m + 2]);
                if (from > to) throw Problem(text, $"has the range [{from}-{to}], which runs backwards. Write it as [{to}-{from}].");
                ranges.Add((from, to));
                m += 2;
            }
            else ranges.Add((members[m], members[m]));
        }
        parts.Add(new Set(ranges));
        return i;
    }

    private static ArgumentException Problem(string text, string what) => new($"The key pattern '{text}' {what}", "pattern");

    /// <summary>Whether <paramref name="key"/> matches (the rule each backend's translation must keep; tests compare against it).</summary>
    public bool IsMatch(string key) => Matches(key, 0, 0);

    private bool Matches(string key, int k, int p)
    {
        for (; p < Parts.Count; p++)
        {
            switch (Parts[p])
            {
                case AnyRun:
                    for (var from = k; from <= key.Length; from++)
                        if (Matches(key, from, p + 1)) return true;
                    return false;
                case AnyOne:
                    if (k >= key.Length) return false;
                    k++;
                    break;
                case Literal l:
                    if (k >= key.Length || key[k] != l.Char) return false;
                    k++;
                    break;
                case Set s:
                    if (k >= key.Length || !s.Ranges.Any(r => key[k] >= r.From && key[k] <= r.To)) return false;
                    k++;
                    break;
            }
        }
        return k == key.Length;
    }
}
