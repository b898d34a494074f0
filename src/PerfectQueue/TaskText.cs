using System.Globalization;
using System.Text;

namespace PerfectQueue;

/// <summary>
/// The text rules every backend shares (docs/errors.md): what a task key, type and user may be, and how a
/// message is made storable. They are checked here, once, so that nothing a submit accepts can fail later in
/// one backend only (PostgreSQL refuses NUL and unpaired surrogates, its btree index rows have a size limit,
/// SQL Server's columns are nvarchar(256) and ignore trailing spaces when comparing).
/// </summary>
internal static class TaskText
{
    /// <summary>
    /// The longest task key, type and user, in UTF-16 code units (what SQL Server's nvarchar(256) counts): a
    /// character outside the Basic Multilingual Plane, such as an emoji, counts as 2. At most 768 bytes in
    /// UTF-8, far below PostgreSQL's btree limit of 2704 bytes per index row.
    /// </summary>
    public const int MaxNameLength = 256;

    /// <summary>The longest message kept (UTF-16 code units); a longer one is cut, on a character boundary, with "…".</summary>
    public const int MaxMessageLength = 4000;

    private const char Replacement = '\uFFFD';
    private const string Ellipsis = "…";

    /// <summary>
    /// A message as it is stored: NUL, unpaired surrogates and control characters other than tab, line feed and
    /// carriage return become U+FFFD (control characters could drive the terminal of whoever lists the task;
    /// NUL and broken UTF-16 cannot be stored by PostgreSQL); then it is cut to <see cref="MaxMessageLength"/>
    /// on a text-element boundary, so a surrogate pair or a combining sequence is never split. Null stays null.
    /// </summary>
    public static string? CleanMessage(string? message)
    {
        if (message is null) return null;
        var text = NeedsReplacing(message) ? Replace(message) : message;
        if (text.Length <= MaxMessageLength) return text;
        var limit = MaxMessageLength - Ellipsis.Length;
        var end = 0;
        while (end < text.Length)
        {
            var next = StringInfo.GetNextTextElementLength(text.AsSpan(end));
            if (end + next > limit) break;
            end += next;
        }
        return string.Concat(text.AsSpan(0, end), Ellipsis);
    }

    private static bool IsKeptControl(char c) => c is '\t' or '\n' or '\r';

    /// <summary>Text made storable as <see cref="CleanMessage"/> does, but not cut (attempt output is bounded by its capture).</summary>
    public static string CleanText(string text) => NeedsReplacing(text) ? Replace(text) : text;

    private static bool NeedsReplacing(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (char.IsControl(c) && !IsKeptControl(c)) return true;
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(c)) return true;
        }
        return false;
    }

    private static string Replace(string s)
    {
        var b = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { b.Append(c).Append(s[++i]); continue; }
            b.Append(char.IsSurrogate(c) || (char.IsControl(c) && !IsKeptControl(c)) ? Replacement : c);
        }
        return b.ToString();
    }

    /// <summary>
    /// Checks a key, type or user for a submit. Returns null when <paramref name="value"/> is fine, otherwise what
    /// is wrong with it and how to fix it. Rules: not empty or only white space, at most
    /// <see cref="MaxNameLength"/> UTF-16 code units, no control characters (NUL, tab, line breaks, escape...),
    /// no unpaired surrogates, no leading or trailing white space.
    /// </summary>
    public static string? NameProblem(string field, string value)
    {
        if (string.IsNullOrWhiteSpace(value)) return $"The task {field} must not be empty or only white space.";
        if (value.Length > MaxNameLength)
            return $"The task {field} is {value.Length} UTF-16 code units long; the limit is {MaxNameLength} (a character such as an emoji counts as 2). Use a shorter {field}.";
        if (BadCharacter(value, controls: true) is { } bad) return $"The task {field} {bad}. Use printable text only.";
        if (char.IsWhiteSpace(value[0]) || char.IsWhiteSpace(value[^1]))
            return $"The task {field} starts or ends with white space (SQL Server would ignore trailing spaces when comparing). Trim it.";
        return null;
    }

    /// <summary>
    /// Checks a key, type or user used to look tasks up: the submit rules, except that leading or trailing white
    /// space and control characters other than NUL are allowed (rows stored by earlier versions may have them).
    /// </summary>
    internal static string? LookupProblem(string field, string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return $"A task {field} must not be empty.";
        if (value.Length > MaxNameLength) return $"A task {field} must be at most {MaxNameLength} characters (got {value.Length}).";
        if (BadCharacter(value, controls: false) is { } bad) return $"The task {field} {bad}; no task can have it.";
        return null;
    }

    /// <summary>True when every backend can take the text as a query parameter (no NUL, no unpaired surrogate).</summary>
    internal static bool IsSendable(string value) => BadCharacter(value, controls: false) is null;

    private static string? BadCharacter(string s, bool controls)
    {
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(c)) return $"contains an unpaired surrogate U+{(int)c:X4} at position {i + 1} (text that is not valid Unicode)";
            if (c == '\0' || (controls && char.IsControl(c))) return $"contains the control character U+{(int)c:X4} at position {i + 1}";
        }
        return null;
    }

    /// <summary>The text of a fixed note that replaces a message a backend refused: printable ASCII only, so any database can store it.</summary>
    internal static string UnstorableNote(Exception error)
    {
        var reason = new StringBuilder();
        foreach (var c in $"{error.GetType().Name}: {error.Message}")
        {
            if (reason.Length >= 200) { reason.Append("..."); break; }
            reason.Append(c is >= ' ' and <= '~' ? c : '?');
        }
        return $"(message could not be stored: {reason})";
    }
}
