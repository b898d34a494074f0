using System.Text;
using static PerfectQueue.KeyPattern;

namespace PerfectQueue.Storage;

/// <summary>
/// A <see cref="KeyPattern"/> in each database's matching syntax, as a parameter value (never SQL text). Every
/// translation keeps <see cref="KeyPattern.IsMatch"/>'s meaning: case-sensitive, and a literal character of the
/// target syntax (%, _, [, *, a regex metacharacter) matches only itself. A conformance test checks each against
/// keys made of those characters.
/// </summary>
internal static class KeyPatternSql
{
    /// <summary>SQLite GLOB (case-sensitive): [*] [?] [[] stand for the literal characters.</summary>
    public static string Glob(KeyPattern pattern)
    {
        var b = new StringBuilder();
        foreach (var part in pattern.Parts)
        {
            switch (part)
            {
                case AnyRun: b.Append('*'); break;
                case AnyOne: b.Append('?'); break;
                case Literal { Char: '*' or '?' or '[' } l: b.Append('[').Append(l.Char).Append(']'); break;
                case Literal l: b.Append(l.Char); break;
                case Set s: AppendBracketSet(b, s); break;
            }
        }
        return b.ToString();
    }

    /// <summary>SQL Server LIKE (under a binary collation): [%] [_] [[] stand for the literal characters, no ESCAPE clause.</summary>
    public static string SqlServerLike(KeyPattern pattern)
    {
        var b = new StringBuilder();
        foreach (var part in pattern.Parts)
        {
            switch (part)
            {
                case AnyRun: b.Append('%'); break;
                case AnyOne: b.Append('_'); break;
                case Literal { Char: '%' or '_' or '[' } l: b.Append('[').Append(l.Char).Append(']'); break;
                case Literal l: b.Append(l.Char); break;
                case Set s: AppendBracketSet(b, s); break;
            }
        }
        return b.ToString();
    }

    // GLOB and SQL Server LIKE share the set syntax: [abc], [a-z], and ^ first negates, so ^ never goes first.
    // A '-' member goes last, where it is itself. (Brackets cannot be members: KeyPattern refuses them.)
    private static void AppendBracketSet(StringBuilder b, Set s)
    {
        var singles = s.Ranges.Where(r => r.From == r.To).Select(r => r.From).ToList();
        var ranges = s.Ranges.Where(r => r.From != r.To).ToList();
        var body = new StringBuilder();
        foreach (var (from, to) in ranges) body.Append(from).Append('-').Append(to);
        foreach (var c in singles.Where(c => c is not '^' and not '-')) body.Append(c);
        if (singles.Contains('^'))
        {
            if (body.Length == 0 && !singles.Contains('-')) { b.Append('^'); return; } // [^] alone is the character ^
            body.Append('^');
        }
        if (singles.Contains('-')) body.Append('-');
        b.Append('[').Append(body).Append(']');
    }

    /// <summary>
    /// An anchored regular expression for PostgreSQL (~, advanced regular expressions) and MySQL/MariaDB
    /// (REGEXP, ICU or PCRE): the same text works on both. Every non-alphanumeric ASCII character is escaped with a
    /// backslash, which both read as the character itself.
    /// </summary>
    public static string Regex(KeyPattern pattern)
    {
        var b = new StringBuilder("^");
        foreach (var part in pattern.Parts)
        {
            switch (part)
            {
                case AnyRun: b.Append("(.|\\n)*"); break;
                case AnyOne: b.Append("(.|\\n)"); break;
                case Literal l: AppendRegexChar(b, l.Char); break;
                case Set s:
                    b.Append('[');
                    foreach (var (from, to) in s.Ranges)
                    {
                        AppendRegexChar(b, from);
                        if (to != from) { b.Append('-'); AppendRegexChar(b, to); }
                    }
                    b.Append(']');
                    break;
            }
        }
        return b.Append('$').ToString();
    }

    private static void AppendRegexChar(StringBuilder b, char c)
    {
        if (c < 128 && !char.IsAsciiLetterOrDigit(c) && !char.IsControl(c)) b.Append('\\');
        b.Append(c);
    }
}
