using System.Text.RegularExpressions;

namespace PerfectQueue;

/// <summary>Keeps passwords out of anything shown: URLs and connection strings.</summary>
internal static class UrlText
{
    // The password is whatever lies between the first ':' after the user and the LAST '@' that a host follows:
    // an unescaped '@' (or '/') inside a password (p@ss) must not end the mask early. A URL without a password has
    // no such '@' and is left alone; the rare over-match (an '@' in a query) hides more, never less.
    private static readonly Regex UrlPassword = new(@"(?<=://[^/:\s]*:)\S*(?=@[^@/?#\s]*(?:[/?#\s]|$))", RegexOptions.CultureInvariant);
    private static readonly Regex SettingPassword = new(@"(?i)\b(password|pwd)\s*=\s*(""[^""]*""|'[^']*'|[^;]*)", RegexOptions.CultureInvariant);

    /// <summary>The text with any password replaced by ***.</summary>
    public static string Mask(string? text)
    {
        if (string.IsNullOrEmpty(text)) return text ?? "";
        var masked = UrlPassword.Replace(text, "***");
        return SettingPassword.Replace(masked, m => m.Groups[1].Value + "=***");
    }
}
