using System.Globalization;
using Microsoft.Data.SqlClient;
using Microsoft.Data.Sqlite;
using Npgsql;
using PerfectQueue.Storage.Postgres;
using PerfectQueue.Storage.SqlServer;
using PerfectQueue.Storage.Sqlite;

namespace PerfectQueue.Storage;

/// <summary>
/// Chooses the backend for a configuration: a URL (sqlite:///, postgresql://, sqlserver://) or a raw
/// connection string with a provider name. Nothing here ever shows a password.
/// </summary>
internal static class QueueStores
{
    private const string ApplicationName = "PerfectQueue";

    public static (IQueueStore Store, bool AutoInitialize) Create(QueueConfig config)
    {
        if (config.ConnectionString is { } raw)
            return config.Provider switch
            {
                "sqlite" => (new SqliteQueueStore(SqliteFile(raw), config.Table), config.AutoInitialize ?? true),
                "postgresql" => Postgres(ParseSettings(() => new NpgsqlConnectionStringBuilder(raw)), config),
                "mysql" => MySqlStore(PerfectQueue.Storage.MySql.MySqlSettings.FromConnectionString(raw), config),
                _ => SqlServer(ParseSettings(() => new SqlConnectionStringBuilder(raw)), config),
            };

        var url = config.EffectiveUrl.Trim();
        var scheme = url.IndexOf("://", StringComparison.Ordinal) is var i and > 0 ? url[..i].ToLowerInvariant() : "";
        return scheme switch
        {
            "sqlite" => (new SqliteQueueStore(SqlitePath(url), config.Table), config.AutoInitialize ?? true),
            "postgresql" or "postgres" => Postgres(PostgresFromUrl(url), config),
            "sqlserver" or "mssql" => SqlServer(SqlServerFromUrl(url), config),
            "mysql" or "mysql2" => MySqlStore(PerfectQueue.Storage.MySql.MySqlSettings.FromUrl(url), config),
            _ => throw new ConfigException($"url: '{UrlText.Mask(url)}' is not a queue URL. Use sqlite:///relative.db, sqlite:////absolute/path.db, postgresql://user:password@host:5432/database or sqlserver://user:password@host:1433/database, or leave it out for the embedded default.", "url"),
        };
    }

    private static (IQueueStore, bool) SqlServer(SqlConnectionStringBuilder b, QueueConfig config)
    {
        if (b.ApplicationName == new SqlConnectionStringBuilder().ApplicationName) b.ApplicationName = ApplicationName;
        var user = b.IntegratedSecurity || string.IsNullOrEmpty(b.UserID) ? "" : Uri.EscapeDataString(b.UserID) + "@";
        var where = $"sqlserver://{user}{b.DataSource}/{b.InitialCatalog} (table {config.Table})";
        return (new SqlServerQueueStore(b.ConnectionString, config.Table, where), config.AutoInitialize ?? false);
    }

    private static (IQueueStore, bool) MySqlStore(MySqlConnector.MySqlConnectionStringBuilder b, QueueConfig config)
    {
        PerfectQueue.Storage.MySql.MySqlSettings.ApplyDefaults(b);
        return (new PerfectQueue.Storage.MySql.MySqlQueueStore(b.ConnectionString, config.Table, PerfectQueue.Storage.MySql.MySqlSettings.Describe(b, config.Table)), config.AutoInitialize ?? false);
    }

    private static (IQueueStore, bool) Postgres(NpgsqlConnectionStringBuilder b, QueueConfig config)
    {
        ApplyPostgresDefaults(b);
        var where = $"postgresql://{(string.IsNullOrEmpty(b.Username) ? "" : Uri.EscapeDataString(b.Username) + "@")}{b.Host}:{b.Port}/{b.Database} (table {config.Table})";
        return (new PostgresQueueStore(b.ConnectionString, config.Table, where), config.AutoInitialize ?? false);
    }

    /// <summary>What PerfectQueue sets on a PostgreSQL connection unless the user set it.</summary>
    internal static void ApplyPostgresDefaults(NpgsqlConnectionStringBuilder b)
    {
        if (string.IsNullOrEmpty(b.ApplicationName)) b.ApplicationName = ApplicationName;
        // The same few statements run all day (acquire, finish, heartbeat): preparing them once per connection
        // took a one-task poll from ~2.7 to ~1.3 ms and a finish from ~1.25 to ~0.95 ms here. Turn it off with
        // "Max Auto Prepare=0" (e.g. behind PgBouncer in transaction mode before 1.21).
        if (!b.ConnectionString.Contains("Max Auto Prepare", StringComparison.OrdinalIgnoreCase)) b.MaxAutoPrepare = 20;
    }

    /// <summary>postgresql://user:password@host:port/database?option=value (options are Npgsql settings).</summary>
    public static NpgsqlConnectionStringBuilder PostgresFromUrl(string url)
    {
        var uri = ParseUri(url);
        var b = new NpgsqlConnectionStringBuilder { Host = uri.Host.Trim('[', ']'), Port = uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port };
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0) b.Database = database;
        var (user, password) = UserInfo(uri);
        if (user is not null) b.Username = user;
        if (password is not null) b.Password = password;
        foreach (var (key, value) in Query(uri))
            ParseSettings(() => { b[key] = value; return b; }, key);
        return b;
    }

    /// <summary>sqlserver://user:password@host:port/database?option=value (options are SqlClient settings). No user: integrated security.</summary>
    public static SqlConnectionStringBuilder SqlServerFromUrl(string url)
    {
        var uri = ParseUri(url);
        var host = uri.Host.Trim('[', ']');
        var b = new SqlConnectionStringBuilder
        {
            DataSource = uri.IsDefaultPort || uri.Port < 0 ? host : host + "," + uri.Port.ToString(CultureInfo.InvariantCulture),
            ApplicationName = ApplicationName,
        };
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0) b.InitialCatalog = database;
        var (user, password) = UserInfo(uri);
        if (user is null) b.IntegratedSecurity = true;
        else { b.UserID = user; b.Password = password ?? ""; }
        foreach (var (key, value) in Query(uri))
            ParseSettings(() => { b[key] = value; return b; }, key);
        return b;
    }

    private static Uri ParseUri(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && !string.IsNullOrEmpty(uri.Host)
            ? uri
            : throw new ConfigException($"url: '{UrlText.Mask(url)}' is not a valid URL. The form is scheme://user:password@host:port/database?option=value.", "url");

    private static (string? User, string? Password) UserInfo(Uri uri)
    {
        if (string.IsNullOrEmpty(uri.UserInfo)) return (null, null);
        var parts = uri.UserInfo.Split(':', 2);
        return (Uri.UnescapeDataString(parts[0]), parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : null);
    }

    private static IEnumerable<(string Key, string Value)> Query(Uri uri) =>
        uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries).Select(pair =>
        {
            var kv = pair.Split('=', 2);
            return (Uri.UnescapeDataString(kv[0]), kv.Length > 1 ? Uri.UnescapeDataString(kv[1].Replace('+', ' ')) : "true");
        });

    // Driver builders throw ArgumentException for unknown keys or bad values; their messages never hold the password.
    private static T ParseSettings<T>(Func<T> build, string? key = null)
    {
        try { return build(); }
        catch (Exception e) when (e is ArgumentException or FormatException or KeyNotFoundException or InvalidCastException)
        {
            throw new ConfigException(key is null
                ? $"connection_string: {UrlText.Mask(e.Message)}"
                : $"url: the option '{key}' is not a setting this database driver knows, or its value is wrong ({UrlText.Mask(e.Message)}).", key is null ? "connection_string" : "url", e);
        }
    }

    private static string SqliteFile(string connectionString)
    {
        var b = ParseSettings(() => new SqliteConnectionStringBuilder(connectionString));
        return string.IsNullOrEmpty(b.DataSource)
            ? throw new ConfigException("connection_string: a SQLite connection string needs 'Data Source=<file>'.", "connection_string")
            : b.DataSource;
    }

    /// <summary>sqlite:///relative.db, sqlite:////absolute/path.db, sqlite:///C:/path.db.</summary>
    public static string SqlitePath(string url)
    {
        const string prefix = "sqlite:///";
        if (!url.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || url.Length == prefix.Length)
            throw new ConfigException($"url: '{UrlText.Mask(url)}' has no file path. Use sqlite:///relative.db or sqlite:////absolute/path.db.", "url");
        var path = Uri.UnescapeDataString(url[prefix.Length..]);
        if (path.Contains('?')) path = path[..path.IndexOf('?')];
        return path;
    }
}
