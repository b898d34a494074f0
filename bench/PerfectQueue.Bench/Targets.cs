using Hangfire;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using Hangfire.Storage.SQLite;
using Microsoft.Data.Sqlite;
using MySqlConnector;
using Npgsql;

namespace PerfectQueue.Bench;

/// <summary>
/// Where one backend's cases run: PerfectQueue and Hangfire on the same database server (or the same disk for
/// SQLite), each in its own table, file or schema.
/// </summary>
internal interface ITarget
{
    string Name { get; }
    Task<BackendFacts> DescribeAsync();
    /// <summary>A fresh, initialized PerfectQueue queue for one case.</summary>
    Task<Queue> OpenQueueAsync(string name);
    /// <summary>The URL and table Connect-PQQueue gets for the queue <see cref="OpenQueueAsync"/> made.</summary>
    (string Url, string Table) ModuleQueue(string name);
    /// <summary>Hangfire's storage on the same database or disk; null where no Hangfire storage for it is available here.</summary>
    JobStorage? HangfireStorage();
    /// <summary>How many bytes of write-ahead log the server has written so far (PostgreSQL); null where unknown.</summary>
    Task<long?> WalPositionAsync();
    /// <summary>Hangfire's poll interval: how long a Hangfire worker sleeps after finding its queue empty.</summary>
    static TimeSpan HangfirePollInterval => TimeSpan.FromMilliseconds(50);
}

/// <summary>SQLite: one temporary file per PerfectQueue case (WAL, as the store sets it) and one for Hangfire (WAL, its default).</summary>
internal sealed class SqliteTarget(string directory) : ITarget
{
    public string Name => "SQLite";

    private string PerfectQueueFile(string name) => Path.Combine(directory, $"pq-{name}.db");

    public async Task<BackendFacts> DescribeAsync()
    {
        await using var c = new SqliteConnection("Data Source=:memory:");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT sqlite_version()";
        var version = (string)(await cmd.ExecuteScalarAsync())!;
        return new BackendFacts(Name, $"SQLite {version} (PerfectQueue, Microsoft.Data.Sqlite)",
            [$"temporary files in {Path.GetTempPath()}, WAL for both (PerfectQueue sets it; Hangfire.Storage.SQLite's default); each library's own synchronous setting"]);
    }

    public Task<Queue> OpenQueueAsync(string name) =>
        Queue.OpenAsync(new QueueConfig { Url = ModuleQueue(name).Url, Table = "perfectqueue" });

    public (string Url, string Table) ModuleQueue(string name) => ("sqlite:///" + PerfectQueueFile(name), "perfectqueue");

    public Task<long?> WalPositionAsync() => Task.FromResult<long?>(null);

    public JobStorage HangfireStorage() => new SQLiteStorage(Path.Combine(directory, "hangfire.db"), new SQLiteStorageOptions
    {
        QueuePollInterval = ITarget.HangfirePollInterval,
    });
}

/// <summary>
/// PostgreSQL: one database of one server; PerfectQueue's tables and Hangfire's and graphile-worker's schemas get
/// this run's suffix and are dropped at the end.
/// </summary>
internal sealed class PostgresTarget : ITarget
{
    private readonly string _url;
    private readonly string _connectionString;
    private readonly string _suffix = $"{Environment.ProcessId}_{Random.Shared.Next(1000, 9999)}";
    private readonly List<string> _tables = [];

    public PostgresTarget(string url)
    {
        _url = url;
        var uri = new Uri(url);
        var user = uri.UserInfo.Split(':', 2);
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')) is { Length: > 0 } db ? db : "postgres",
            Username = user[0].Length > 0 ? Uri.UnescapeDataString(user[0]) : null,
            Password = user.Length > 1 ? Uri.UnescapeDataString(user[1]) : null,
            ApplicationName = "PerfectQueue.Bench",
        };
        _connectionString = builder.ConnectionString;
    }

    public string Name => "PostgreSQL";
    /// <summary>The server's URL, as Connect-PQQueue and graphile-worker (node-postgres) take it.</summary>
    public string Url => _url;
    private string HangfireSchema => $"pqbench_hangfire_{_suffix}";
    /// <summary>graphile-worker's schema for this run (its migrations make it; <see cref="DropAsync"/> drops it).</summary>
    public string GraphileSchema => $"pqbench_graphile_{_suffix}";

    public async Task<BackendFacts> DescribeAsync()
    {
        await using var c = new NpgsqlConnection(_connectionString);
        await c.OpenAsync();
        async Task<string> Show(string sql)
        {
            await using var cmd = new NpgsqlCommand(sql, c);
            return (string)(await cmd.ExecuteScalarAsync())!;
        }
        var version = await Show("SHOW server_version");
        var settings = new List<string>
        {
            $"fsync = {await Show("SHOW fsync")}, synchronous_commit = {await Show("SHOW synchronous_commit")}, " +
            $"wal_sync_method = {await Show("SHOW wal_sync_method")}, shared_buffers = {await Show("SHOW shared_buffers")}",
            $"server on {(c.Host is "127.0.0.1" or "localhost" or "::1" ? "this machine (loopback)" : "another host")}; both peers use the same database",
        };
        return new BackendFacts(Name, $"PostgreSQL {version}", settings);
    }

    public async Task<Queue> OpenQueueAsync(string name)
    {
        var (url, table) = ModuleQueue(name);
        var queue = await Queue.OpenAsync(new QueueConfig { Url = url, Table = table });
        await queue.InitializeAsync(force: true);
        _tables.Add(table);
        return queue;
    }

    public (string Url, string Table) ModuleQueue(string name) => (_url, $"pqbench_{name}_{_suffix}");

    public JobStorage HangfireStorage()
    {
        var storageOptions = new PostgreSqlStorageOptions
        {
            SchemaName = HangfireSchema,
            PrepareSchemaIfNecessary = true,
            QueuePollInterval = ITarget.HangfirePollInterval,
            AllowUnsafeValues = true, // lets the poll interval go below 1 s
        };
        return new PostgreSqlStorage(new NpgsqlConnectionFactory(_connectionString, storageOptions, null), storageOptions);
    }

    public async Task<long?> WalPositionAsync()
    {
        await using var c = new NpgsqlConnection(_connectionString);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint", c);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    public async Task DropAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var c = new NpgsqlConnection(_connectionString);
        await c.OpenAsync();
        var (own, side) = RunTablePatterns(_suffix);
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND (tablename LIKE @own OR tablename LIKE @side)", c))
        {
            list.Parameters.AddWithValue("own", own);
            list.Parameters.AddWithValue("side", side);
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync()) tables.Add(reader.GetString(0));
        }
        var statements = new List<string>();
        if (tables.Count > 0) statements.Add($"DROP TABLE IF EXISTS {string.Join(", ", tables.Select(t => $"\"{t}\""))} CASCADE");
        statements.Add($"DROP SCHEMA IF EXISTS \"{HangfireSchema}\" CASCADE");
        statements.Add($"DROP SCHEMA IF EXISTS \"{GraphileSchema}\" CASCADE");
        foreach (var sql in statements)
        {
            await using var cmd = new NpgsqlCommand(sql, c);
            await cmd.ExecuteNonQueryAsync();
        }
        if (_tables.Count > 0)
        {
            await using var cmd = new NpgsqlCommand("DELETE FROM perfectqueue_schema WHERE table_name LIKE @own OR table_name LIKE @side", c);
            cmd.Parameters.AddWithValue("own", own);
            cmd.Parameters.AddWithValue("side", side);
            await cmd.ExecuteNonQueryAsync();
        }
    }

    /// <summary>
    /// LIKE patterns for every table of one run: each queue's (pqbench_&lt;case&gt;_&lt;suffix&gt;), and the side tables
    /// its schema version adds and the scriptblock child's warm-up queue (&lt;that&gt;_warm, _workers, _attempts, ...).
    /// </summary>
    internal static (string Own, string Side) RunTablePatterns(string suffix)
    {
        var own = @"pqbench\_%\_" + suffix.Replace("_", @"\_", StringComparison.Ordinal);
        return (own, own + @"\_%");
    }
}

/// <summary>
/// MySQL/MariaDB: one database of one server; PerfectQueue's tables get this run's suffix and are dropped at the end.
/// No Hangfire storage for MySQL is served to these machines: PerfectQueue's figures stand alone here.
/// </summary>
internal sealed class MySqlTarget(string url) : ITarget
{
    private readonly string _connectionString = ConnectionString(new Uri(url));

    private static string ConnectionString(Uri uri)
    {
        var user = uri.UserInfo.Split(':', 2);
        return new MySqlConnectionStringBuilder
        {
            Server = uri.Host,
            Port = uri.IsDefaultPort || uri.Port < 0 ? 3306u : (uint)uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')),
            UserID = Uri.UnescapeDataString(user[0]),
            Password = user.Length > 1 ? Uri.UnescapeDataString(user[1]) : "",
            ApplicationName = "PerfectQueue.Bench",
        }.ConnectionString;
    }
    private readonly string _suffix = $"{Environment.ProcessId}_{Random.Shared.Next(1000, 9999)}";
    private readonly List<string> _tables = [];

    public string Name => "MariaDB";

    public async Task<BackendFacts> DescribeAsync()
    {
        await using var c = new MySqlConnection(_connectionString);
        await c.OpenAsync();
        async Task<string> Show(string sql)
        {
            await using var cmd = new MySqlCommand(sql, c);
            return Convert.ToString(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture)!;
        }
        var version = await Show("SELECT VERSION()");
        var settings = new List<string>
        {
            $"innodb_flush_log_at_trx_commit = {await Show("SELECT @@innodb_flush_log_at_trx_commit")}, innodb_doublewrite = {await Show("SELECT @@innodb_doublewrite")}, " +
            $"log_bin = {await Show("SELECT @@log_bin")}, innodb_buffer_pool_size = {long.Parse(await Show("SELECT @@innodb_buffer_pool_size"), System.Globalization.CultureInfo.InvariantCulture) / (1024 * 1024)}MB",
            $"server on {(c.DataSource is "127.0.0.1" or "localhost" or "::1" ? "this machine (loopback)" : "another host")}; no Hangfire storage for MySQL is available here, so no peer figures",
        };
        return new BackendFacts(Name, version.Contains("MariaDB", StringComparison.OrdinalIgnoreCase) ? $"MariaDB {version}" : $"MySQL {version}", settings);
    }

    public async Task<Queue> OpenQueueAsync(string name)
    {
        var (u, table) = ModuleQueue(name);
        var queue = await Queue.OpenAsync(new QueueConfig { Url = u, Table = table });
        await queue.InitializeAsync(force: true);
        _tables.Add(table);
        return queue;
    }

    public (string Url, string Table) ModuleQueue(string name) => (url, $"pqbench_{name}_{_suffix}");

    public JobStorage? HangfireStorage() => null;

    public Task<long?> WalPositionAsync() => Task.FromResult<long?>(null);

    public async Task DropAsync()
    {
        MySqlConnection.ClearAllPools();
        await using var c = new MySqlConnection(_connectionString);
        await c.OpenAsync();
        if (_tables.Count == 0) return;
        var (own, side) = PostgresTarget.RunTablePatterns(_suffix);
        var tables = new List<string>();
        await using (var list = new MySqlCommand("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND (table_name LIKE @own OR table_name LIKE @side)", c))
        {
            list.Parameters.AddWithValue("@own", own);
            list.Parameters.AddWithValue("@side", side);
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync()) tables.Add(reader.GetString(0));
        }
        // Foreign key checks off for this session: the side tables may reference the task table.
        await using var cmd = new MySqlCommand(
            (tables.Count > 0 ? $"SET FOREIGN_KEY_CHECKS = 0; DROP TABLE IF EXISTS {string.Join(", ", tables.Select(t => $"`{t}`"))}; SET FOREIGN_KEY_CHECKS = 1; " : "") +
            "DELETE FROM perfectqueue_schema WHERE table_name LIKE @own OR table_name LIKE @side", c);
        cmd.Parameters.AddWithValue("@own", own);
        cmd.Parameters.AddWithValue("@side", side);
        await cmd.ExecuteNonQueryAsync();
    }
}
