using Dapper;
using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

// The schema of the MySQL/MariaDB backend. Why each index (none can be partial here): docs/backends-mysql.md.
internal sealed partial class MySqlQueueStore
{
    // 1: the task table; 2: the sessions table <table>_workers beside it; 3: timeout_ms and processor_type
    // (SchemaUpgrade). MySQL tables are created at version 3 directly: no older PerfectQueue wrote them.
    public const int SchemaVersion = SchemaUpgrade.Version;

    // Every schema change of every queue in the server is serialized by this named lock: perfectqueue_schema is
    // shared by the queue tables, and MySQL's DDL cannot run inside a transaction (each statement commits).
    private const string SchemaLock = "perfectqueue:schema";
    private const int SchemaLockSeconds = 20;

    private const string TableOptions = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" + Exact;

    private const string SchemaTableSql =
        "CREATE TABLE IF NOT EXISTS " + StoreNames.SchemaTable + " (table_name VARCHAR(128) NOT NULL, version INT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (table_name)) " + TableOptions;

    /// <summary>
    /// The schema as an ordered list of versions and the statements that create it, for a migration runner:
    /// each statement is idempotent (IF NOT EXISTS) and commits by itself. Today one entry: version 3, which
    /// creates the task table, the sessions table and the per-user lock rows of acquire.
    /// </summary>
    internal IReadOnlyList<(int Version, IReadOnlyList<string> Statements)> Migrations() =>
    [
        (3, [TaskTableSql(), WorkersTableSql(), UsersTableSql()]),
    ];

    // Indexes, all without WHERE (MySQL has no partial indexes); finished rows sort apart by a leading column that
    // is NULL exactly on the rows a query wants:
    // - <table>_due (finished_at, due_at, id): acquire's window, live rows (finished_at IS NULL) in due order.
    // - <table>_user_due (finished_at, user_name, due_at, id, max_running): the per-user part of acquire, each
    //   limited user's live due tasks in due order, covering every column it reads.
    // - <table>_leased (lease_token, user_name, due_at, finished_at): the running count reads leased rows only
    //   (lease_token is NULL on every other row), covering.
    // - <table>_purge (purge_at): cleanup; NULL on every live row.
    private string TaskTableSql() => $"""
        CREATE TABLE IF NOT EXISTS {_t} (
            id BIGINT NOT NULL AUTO_INCREMENT,
            task_key VARCHAR(256) NOT NULL,
            task_type VARCHAR(256) NOT NULL,
            user_name VARCHAR(256) NULL,
            data LONGBLOB NULL,
            max_running INT NULL,
            created_at BIGINT NOT NULL,
            due_at BIGINT NULL,
            lease_token BIGINT NULL,
            attempts INT NOT NULL DEFAULT 0,
            cancel_requested SMALLINT NOT NULL DEFAULT 0,
            finished_at BIGINT NULL,
            outcome VARCHAR(32) NULL,
            message TEXT NULL,
            purge_at BIGINT NULL,
            timeout_ms BIGINT NULL,
            PRIMARY KEY (id),
            UNIQUE KEY {Quote(_table + "_key")} (task_key),
            KEY {Quote(_table + "_due")} (finished_at, due_at, id),
            KEY {Quote(_table + "_user_due")} (finished_at, user_name, due_at, id, max_running),
            KEY {Quote(_table + "_leased")} (lease_token, user_name, due_at, finished_at),
            KEY {Quote(_table + "_purge")} (purge_at)
        ) {TableOptions}
        """;

    // One row per running worker: small, so no index beyond the key.
    private string WorkersTableSql() => $"""
        CREATE TABLE IF NOT EXISTS {_w} (
            id VARCHAR(64) NOT NULL,
            host VARCHAR(256) NOT NULL,
            pid INT NOT NULL,
            processors INT NOT NULL,
            running INT NOT NULL DEFAULT 0,
            started_at BIGINT NOT NULL,
            last_beat_at BIGINT NOT NULL,
            alive_until BIGINT NOT NULL,
            stop_requested SMALLINT NOT NULL DEFAULT 0,
            processor_type VARCHAR(32) NULL,
            PRIMARY KEY (id)
        ) {TableOptions}
        """;

    // One row per user that ever had a task with max_running: acquire locks it (FOR UPDATE SKIP LOCKED, held to
    // commit) while it counts and leases that user's tasks.
    private string UsersTableSql() => $"CREATE TABLE IF NOT EXISTS {_u} (user_name VARCHAR(256) NOT NULL, PRIMARY KEY (user_name)) {TableOptions}";

    private const string RecordVersionSql =
        "INSERT INTO perfectqueue_schema (table_name, version, created_at) VALUES (@table, @version, " + Now + ") " +
        "ON DUPLICATE KEY UPDATE version = GREATEST(version, @version)";

    // A queue of an older version is recorded as upgraded once the newer schema's objects exist (SchemaUpgrade).
    private const string UpgradeVersionSql = "UPDATE perfectqueue_schema SET version = @version WHERE table_name = @table AND version < @version";

    private object TableArgs() => new { table = _table, version = SchemaVersion };

    // Runs work on one connection while it holds the schema lock, and releases the lock after, whatever happens
    // (a lock of a broken connection dies with its session).
    private async Task WithSchemaLockAsync(MySqlConnection c, Func<Task> work, CancellationToken ct)
    {
        var got = await c.ExecuteScalarAsync<long?>(Command($"SELECT GET_LOCK('{SchemaLock}', {SchemaLockSeconds})", null, ct)).ConfigureAwait(false);
        if (got != 1)
            throw new PerfectQueueException($"Another session is changing PerfectQueue tables in {Description} and did not finish within {SchemaLockSeconds} seconds; try again.");
        try
        {
            await work().ConfigureAwait(false);
        }
        finally
        {
            try { await c.ExecuteAsync(new CommandDefinition($"DO RELEASE_LOCK('{SchemaLock}')", cancellationToken: CancellationToken.None)).ConfigureAwait(false); }
            catch (Exception e) when (e is MySqlException or InvalidOperationException or IOException) { /* the session is gone, and its lock with it */ }
        }
    }

    public Task InitializeAsync(bool force, CancellationToken ct) => Run(async c =>
    {
        await WithSchemaLockAsync(c, async () =>
        {
            if (force)
            {
                await c.ExecuteAsync(Command($"DROP TABLE IF EXISTS {_t}, {_w}, {_u}", null, ct)).ConfigureAwait(false);
                await c.ExecuteAsync(Command(SchemaTableSql, null, ct)).ConfigureAwait(false);
                await c.ExecuteAsync(Command("DELETE FROM perfectqueue_schema WHERE table_name = @table", TableArgs(), ct)).ConfigureAwait(false);
            }
            else if (await RecordedVersionAsync(c, ct).ConfigureAwait(false) is { } recorded && recorded > SchemaVersion)
            {
                throw SchemaUpgrade.TooNew(_table, Description, recorded);
            }
            foreach (var (_, statements) in Migrations())
                foreach (var sql in statements)
                    await c.ExecuteAsync(Command(sql, null, ct)).ConfigureAwait(false);
            await AddVersion3ColumnsAsync(c, ct).ConfigureAwait(false);
            await c.ExecuteAsync(Command(SchemaTableSql, null, ct)).ConfigureAwait(false);
            await c.ExecuteAsync(Command(RecordVersionSql, TableArgs(), ct)).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        _upgrade.MarkDone();
        return true;
    }, RetrySafety.Always, ct, checkTable: false);

    // The version perfectqueue_schema records for this queue (null: none recorded, or no such table yet).
    private async Task<int?> RecordedVersionAsync(MySqlConnection c, CancellationToken ct) =>
        await c.ExecuteScalarAsync<long>(Command(TableExistsSql("'perfectqueue_schema'"), null, ct)).ConfigureAwait(false) != 0
            ? await c.ExecuteScalarAsync<int?>(Command("SELECT version FROM perfectqueue_schema WHERE table_name = @table", TableArgs(), ct)).ConfigureAwait(false)
            : null;

    private sealed record SchemaState(long Queue, long Timeout, long Workers, long ProcessorType, long Users);

    private Task<SchemaState> SchemaStateAsync(MySqlConnection c, CancellationToken ct)
    {
        static string Column(string table, string column) =>
            $"(SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = {table} AND column_name = '{column}')";
        return c.QuerySingleAsync<SchemaState>(Command($"""
            SELECT ({TableExistsSql("@queue")}) AS Queue, {Column("@queue", SchemaUpgrade.TimeoutColumn)} AS Timeout,
                   ({TableExistsSql("@workers")}) AS Workers, {Column("@workers", SchemaUpgrade.ProcessorTypeColumn)} AS ProcessorType,
                   ({TableExistsSql("@users")}) AS Users
            """, new { queue = _table, workers = _workersTable, users = _usersTable }, ct));
    }

    // CREATE TABLE IF NOT EXISTS leaves an existing table as it was: add what version 3 added (MySQL has no ADD
    // COLUMN IF NOT EXISTS). Each is a nullable column at the end: a change of the catalog only (instant on
    // MariaDB 10.3+ and MySQL 8.0.12+). The ALTER waits at most LockTimeoutSeconds for the table's metadata lock
    // behind long transactions, so it never holds up the queue's own statements for long.
    private async Task AddVersion3ColumnsAsync(MySqlConnection c, CancellationToken ct)
    {
        var state = await SchemaStateAsync(c, ct).ConfigureAwait(false);
        var wait = $"SET SESSION lock_wait_timeout = {SchemaUpgrade.LockTimeoutSeconds};\n";
        if (state.Queue != 0 && state.Timeout == 0)
            await c.ExecuteAsync(Command($"{wait}ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.TimeoutColumn} BIGINT NULL", null, ct)).ConfigureAwait(false);
        if (state.Workers != 0 && state.ProcessorType == 0)
            await c.ExecuteAsync(Command($"{wait}ALTER TABLE {_w} ADD COLUMN {SchemaUpgrade.ProcessorTypeColumn} VARCHAR(32) NULL", null, ct)).ConfigureAwait(false);
        if (state.Users == 0)
            await c.ExecuteAsync(Command(UsersTableSql(), null, ct)).ConfigureAwait(false);
    }

    // Before the first statement that uses the version-3 columns, once per store: a table that lacks them (only
    // ever made by hand on MySQL) gains them, whatever command comes first, and a table made by a newer version
    // is refused. A queue recorded as version 1 stays so until its sessions table exists.
    private Task EnsureUpgradedAsync(CancellationToken ct) => _upgrade.EnsureAsync(async () =>
    {
        var (recorded, state) = await Run(async c => (await RecordedVersionAsync(c, ct).ConfigureAwait(false), await SchemaStateAsync(c, ct).ConfigureAwait(false)),
            RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        if (recorded is { } version && version > SchemaVersion) throw SchemaUpgrade.TooNew(_table, Description, version);
        if (state.Queue == 0) return false; // the operation says so
        if (state.Timeout != 0 && (state.Workers == 0 || state.ProcessorType != 0) && state.Users != 0) return true;
        try
        {
            await Run(async c =>
            {
                await WithSchemaLockAsync(c, async () =>
                {
                    await AddVersion3ColumnsAsync(c, ct).ConfigureAwait(false);
                    if ((await SchemaStateAsync(c, ct).ConfigureAwait(false)).Workers != 0)
                        await c.ExecuteAsync(Command(UpgradeVersionSql, TableArgs(), ct)).ConfigureAwait(false);
                }, ct).ConfigureAwait(false);
                return true;
            }, RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        }
        catch (MySqlException e) when (e.Number is MySqlErrors.TableAccessDenied or 1044)
        {
            throw SchemaUpgrade.CannotUpgrade(_table, Description, e);
        }
        return true;
    }, ct);

    // A queue table without its sessions table (made by hand, or dropped): add it, serialized with every other
    // schema change, and record the version its objects now have.
    private Task CreateWorkersTableAsync(CancellationToken ct) => Run(async c =>
    {
        await WithSchemaLockAsync(c, async () =>
        {
            await c.ExecuteAsync(Command(WorkersTableSql(), null, ct)).ConfigureAwait(false);
            await c.ExecuteAsync(Command(SchemaTableSql, null, ct)).ConfigureAwait(false);
            await c.ExecuteAsync(Command(UpgradeVersionSql, TableArgs(), ct)).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        return true;
    }, RetrySafety.Always, ct, checkTable: false);
}
