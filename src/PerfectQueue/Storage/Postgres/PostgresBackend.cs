using Npgsql;

namespace PerfectQueue.Storage.Postgres;

/// <summary>PostgreSQL: postgresql:// or postgres:// URLs (options are Npgsql settings), or an Npgsql connection string.</summary>
internal sealed class PostgresBackend : QueueBackend
{
    private const int DefaultPort = 5432;

    public override string Provider => "postgresql";
    public override IReadOnlyList<string> UrlSchemes { get; } = ["postgresql", "postgres"];
    public override IReadOnlyList<string> UrlExamples { get; } = ["postgresql://user:password@host:5432/database"];
    public override int ListOrder => 1;
    public override BackendCapabilities Capabilities => BackendCapabilities.SubmitNotifications | BackendCapabilities.SharedAcrossHosts;

    public override IQueueStore OpenUrl(string url, string table) => Open(ConnectionFromUrl(url), table);

    public override IQueueStore OpenConnectionString(string connectionString, string table) =>
        Open(ConnectionUrl.Settings(() => new NpgsqlConnectionStringBuilder(connectionString)), table);

    private static PostgresQueueStore Open(NpgsqlConnectionStringBuilder b, string table)
    {
        ApplyDefaults(b);
        var where = $"postgresql://{ConnectionUrl.UserPart(b.Username)}{b.Host}:{b.Port}/{b.Database} (table {table})";
        return new PostgresQueueStore(b.ConnectionString, table, where);
    }

    /// <summary>What PerfectQueue sets on a PostgreSQL connection unless the user set it.</summary>
    internal static void ApplyDefaults(NpgsqlConnectionStringBuilder b)
    {
        if (string.IsNullOrEmpty(b.ApplicationName)) b.ApplicationName = ConnectionUrl.ApplicationName;
        // The same few statements run all day (acquire, finish, heartbeat): preparing them once per connection
        // took a one-task poll from ~2.7 to ~1.3 ms and a finish from ~1.25 to ~0.95 ms here. Turn it off with
        // "Max Auto Prepare=0" (e.g. behind PgBouncer in transaction mode before 1.21).
        if (!b.ConnectionString.Contains("Max Auto Prepare", StringComparison.OrdinalIgnoreCase)) b.MaxAutoPrepare = 20;
        // Every statement PerfectQueue sends leaves nothing on the session (SET LOCAL, transaction-scoped advisory
        // locks and settings; the LISTEN is on a connection of its own), so a pooled connection need not be reset
        // when it goes back: the reset is seven statements the server parses and runs before each next command,
        // and skipping it took a no-op drain from ~670 to ~840 tasks/s here (docs/performance.md). An open
        // transaction is still rolled back. "No Reset On Close=false" restores the reset.
        if (!b.ConnectionString.Contains("No Reset On Close", StringComparison.OrdinalIgnoreCase)) b.NoResetOnClose = true;
    }

    /// <summary>postgresql://user:password@host:port/database?option=value (options are Npgsql settings).</summary>
    public static NpgsqlConnectionStringBuilder ConnectionFromUrl(string url)
    {
        var uri = ConnectionUrl.Parse(url);
        var b = new NpgsqlConnectionStringBuilder { Host = ConnectionUrl.Host(uri), Port = ConnectionUrl.Port(uri, DefaultPort) };
        if (ConnectionUrl.Database(uri) is { Length: > 0 } database) b.Database = database;
        var (user, password) = ConnectionUrl.UserInfo(uri);
        if (user is not null) b.Username = user;
        if (password is not null) b.Password = password;
        foreach (var (key, value) in ConnectionUrl.Options(uri))
            ConnectionUrl.Settings(() => { b[key] = value; return b; }, key);
        return b;
    }
}
