using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

/// <summary>
/// MySQL 8.0+ and MariaDB 10.6+: mysql:// URLs, or the original's mysql2:// (options are MySqlConnector settings),
/// or a MySqlConnector connection string. docs/backends-mysql.md.
/// </summary>
internal sealed class MySqlBackend : QueueBackend
{
    private const int DefaultPort = 3306;

    public override string Provider => "mysql";
    public override IReadOnlyList<string> UrlSchemes { get; } = ["mysql", "mysql2"];
    public override IReadOnlyList<string> UrlExamples { get; } = ["mysql://user:password@host:3306/database"];
    public override int ListOrder => 3;
    public override BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossHosts;

    public override IQueueStore OpenUrl(string url, string table) => Open(Checked(ConnectionFromUrl(url), "url"), table);

    public override IQueueStore OpenConnectionString(string connectionString, string table) =>
        Open(Checked(ConnectionUrl.Settings(() => new MySqlConnectionStringBuilder(connectionString)), "connection_string"), table);

    private static MySqlQueueStore Open(MySqlConnectionStringBuilder b, string table)
    {
        ApplyDefaults(b);
        return new MySqlQueueStore(b.ConnectionString, table, Describe(b, table));
    }

    /// <summary>Where the store points, safe to show: mysql://user@host:port/database (table t).</summary>
    public static string Describe(MySqlConnectionStringBuilder b, string table) =>
        $"mysql://{ConnectionUrl.UserPart(b.UserID)}{b.Server}:{b.Port}/{b.Database} (table {table})";

    /// <summary>What PerfectQueue sets on every MySQL connection, whatever the URL says (docs/backends-mysql.md).</summary>
    internal static void ApplyDefaults(MySqlConnectionStringBuilder b)
    {
        if (string.IsNullOrEmpty(b.ApplicationName)) b.ApplicationName = ConnectionUrl.ApplicationName;
        // The store reads "rows matched" from UPDATE counts (a data update that writes the same bytes still
        // matched its lease): affected-rows mode would report 0 for it.
        b.UseAffectedRows = false;
        // The store's statements use no user variables: an unknown @name must stay an error, never a NULL.
        b.AllowUserVariables = false;
    }

    /// <summary>mysql://user:password@host:port/database?option=value (options are MySqlConnector settings).</summary>
    public static MySqlConnectionStringBuilder ConnectionFromUrl(string url)
    {
        var uri = ConnectionUrl.Parse(url);
        var b = new MySqlConnectionStringBuilder { Server = ConnectionUrl.Host(uri), Port = (uint)ConnectionUrl.Port(uri, DefaultPort) };
        if (ConnectionUrl.Database(uri) is { Length: > 0 } database) b.Database = database;
        var (user, password) = ConnectionUrl.UserInfo(uri);
        if (user is not null) b.UserID = user;
        if (password is not null) b.Password = password;
        foreach (var (key, value) in ConnectionUrl.Options(uri))
            ConnectionUrl.Settings(() => { b[key] = value; return b; }, key);
        return b;
    }

    // Every statement names its tables without a schema: the database must be the connection's.
    private static MySqlConnectionStringBuilder Checked(MySqlConnectionStringBuilder b, string key) =>
        string.IsNullOrEmpty(b.Database)
            ? throw new ConfigException($"{key}: a MySQL queue needs a database: mysql://user:password@host:3306/database (or Database=... in a connection string).", key)
            : b;
}
