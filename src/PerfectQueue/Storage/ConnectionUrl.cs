namespace PerfectQueue.Storage;

/// <summary>
/// The parts of <c>scheme://user:password@host:port/database?option=value</c> that every server backend reads
/// the same way; each backend turns them into its driver's settings. Nothing here ever shows a password.
/// </summary>
internal static class ConnectionUrl
{
    /// <summary>The application name servers show for PerfectQueue's connections, unless the user set one.</summary>
    public const string ApplicationName = "PerfectQueue";

    public static Uri Parse(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && !string.IsNullOrEmpty(uri.Host)
            ? uri
            : throw new ConfigException($"url: '{UrlText.Mask(url)}' is not a valid URL. The form is scheme://user:password@host:port/database?option=value.", "url");

    /// <summary>The host without IPv6 brackets.</summary>
    public static string Host(Uri uri) => uri.Host.Trim('[', ']');

    /// <summary>The port, or <paramref name="defaultPort"/> when the URL gives none.</summary>
    public static int Port(Uri uri, int defaultPort) => uri.IsDefaultPort || uri.Port < 0 ? defaultPort : uri.Port;

    /// <summary>The database named by the path; empty when there is none.</summary>
    public static string Database(Uri uri) => Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));

    public static (string? User, string? Password) UserInfo(Uri uri)
    {
        if (string.IsNullOrEmpty(uri.UserInfo)) return (null, null);
        var parts = uri.UserInfo.Split(':', 2);
        return (Uri.UnescapeDataString(parts[0]), parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : null);
    }

    /// <summary>The query's options in order; an option without a value reads as "true".</summary>
    public static IEnumerable<(string Key, string Value)> Options(Uri uri) =>
        uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries).Select(pair =>
        {
            var kv = pair.Split('=', 2);
            return (Uri.UnescapeDataString(kv[0]), kv.Length > 1 ? Uri.UnescapeDataString(kv[1].Replace('+', ' ')) : "true");
        });

    /// <summary>
    /// Runs a driver's settings builder. Builders throw ArgumentException and the like for unknown keys or bad
    /// values, and their messages never hold the password; these become a <see cref="ConfigException"/> for
    /// <c>connection_string</c> (no <paramref name="option"/>) or for the URL option named.
    /// </summary>
    public static T Settings<T>(Func<T> build, string? option = null)
    {
        try { return build(); }
        catch (Exception e) when (e is ArgumentException or FormatException or KeyNotFoundException or InvalidCastException)
        {
            throw new ConfigException(option is null
                ? $"connection_string: {UrlText.Mask(e.Message)}"
                : $"url: the option '{option}' is not a setting this database driver knows, or its value is wrong ({UrlText.Mask(e.Message)}).", option is null ? "connection_string" : "url", e);
        }
    }

    /// <summary>"user@" for a description, or empty.</summary>
    public static string UserPart(string? user) => string.IsNullOrEmpty(user) ? "" : Uri.EscapeDataString(user) + "@";
}
