using System.Text.RegularExpressions;

namespace PerfectQueue;

/// <summary>Keeps passwords out of anything shown: URLs and connection strings.</summary>
public static class UrlText
{
    private static readonly Regex UrlPassword = new(@"(?<=://[^/:@\s]*:)[^@/\s]*(?=@)", RegexOptions.CultureInvariant);
    private static readonly Regex SettingPassword = new(@"(?i)\b(password|pwd)\s*=\s*(""[^""]*""|'[^']*'|[^;]*)", RegexOptions.CultureInvariant);

    /// <summary>The text with any password replaced by ***.</summary>
    public static string Mask(string? text)
    {
        if (string.IsNullOrEmpty(text)) return text ?? "";
        var masked = UrlPassword.Replace(text, "***");
        return SettingPassword.Replace(masked, m => m.Groups[1].Value + "=***");
    }
}
