using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

/// <summary>
/// MySQL/MariaDB connection settings from a URL (<c>mysql://user:password@host:3306/database?option=value</c>, or
/// the original's <c>mysql2://</c>; options are MySqlConnector settings) or a raw connection string, with what
/// PerfectQueue always sets. Nothing here ever shows a password.
/// </summary>
internal static class MySqlSettings
{
    public const int DefaultPort = 3306;

    /// <summary>Parses a mysql:// or mysql2:// URL.</summary>
    public static MySqlConnectionStringBuilder FromUrl(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host) || uri.Scheme is not ("mysql" or "mysql2"))
            throw new ConfigException($"url: '{UrlText.Mask(url)}' is not a valid MySQL URL. The form is mysql://user:password@host:3306/database?option=value.", "url");
        var b = new MySqlConnectionStringBuilder
        {
            Server = uri.Host.Trim('[', ']'),
            Port = uri.IsDefaultPort || uri.Port < 0 ? DefaultPort : (uint)uri.Port,
        };
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0) b.Database = database;
        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            var parts = uri.UserInfo.Split(':', 2);
            b.UserID = Uri.UnescapeDataString(parts[0]);
            if (parts.Length > 1) b.Password = Uri.UnescapeDataString(parts[1]);
        }
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(kv[0]);
            var value = kv.Length > 1 ? Uri.UnescapeDataString(kv[1].Replace('+', ' ')) : "true";
            Parse(() => { b[key] = value; return b; }, key);
        }
        return Checked(b, "url");
    }

    /// <summary>Parses a raw MySqlConnector connection string.</summary>
    public static MySqlConnectionStringBuilder FromConnectionString(string connectionString) =>
        Checked(Parse(() => new MySqlConnectionStringBuilder(connectionString)), "connection_string");

    /// <summary>Where the store points, safe to show: mysql://user@host:port/database (table t).</summary>
    public static string Describe(MySqlConnectionStringBuilder b, string table)
    {
        var user = string.IsNullOrEmpty(b.UserID) ? "" : Uri.EscapeDataString(b.UserID) + "@";
        return $"mysql://{user}{b.Server}:{b.Port}/{b.Database} (table {table})";
    }

    /// <summary>What PerfectQueue sets on every MySQL connection (see docs/backends-mysql.md).</summary>
    public static void ApplyDefaults(MySqlConnectionStringBuilder b)
    {
        if (string.IsNullOrEmpty(b.ApplicationName)) b.ApplicationName = "PerfectQueue";
        // The store reads "rows matched" from UPDATE counts (a data update that writes the same bytes still
        // matched its lease): affected-rows mode would report 0 for it.
        b.UseAffectedRows = false;
        // The store's statements never use user variables: an unknown @name must stay an error, not a NULL.
        b.AllowUserVariables = false;
    }

    private static MySqlConnectionStringBuilder Checked(MySqlConnectionStringBuilder b, string key)
    {
        if (string.IsNullOrEmpty(b.Database))
            throw new ConfigException($"{key}: a MySQL queue needs a database: mysql://user:password@host:3306/database (or Database=... in a connection string).", key);
        return b;
    }

    // The builder throws ArgumentException for unknown keys or bad values; its messages never hold the password.
    private static T Parse<T>(Func<T> build, string? key = null)
    {
        try { return build(); }
        catch (Exception e) when (e is ArgumentException or FormatException or KeyNotFoundException or InvalidCastException or InvalidOperationException)
        {
            throw new ConfigException(key is null
                ? $"connection_string: {UrlText.Mask(e.Message)}"
                : $"url: the option '{key}' is not a setting MySqlConnector knows, or its value is wrong ({UrlText.Mask(e.Message)}).", key is null ? "connection_string" : "url", e);
        }
    }
}
