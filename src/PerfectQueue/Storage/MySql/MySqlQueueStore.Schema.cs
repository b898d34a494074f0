using Dapper;
using MySqlConnector;
using PerfectQueue.Storage.Relational;

namespace PerfectQueue.Storage.MySql;

// The schema: its versions as steps (SchemaMigrator runs them), creation (Initialize) and the upgrade of tables an
// older version created (docs/schema.md, "Upgrades"). Why each index (none can be partial here): docs/backends-mysql.md.
internal sealed partial class MySqlQueueStore
{
    private readonly UpgradeOnce _upgrade = new();

    // Every schema change of every queue in the server is serialized by this named lock: perfectqueue_schema is
    // shared by the queue tables. MySQL's DDL commits by itself, so a step is not one transaction: each statement
    // is guarded (IF NOT EXISTS, or DoneIf), and the version is recorded after the step's last statement.
    private const string SchemaLock = "perfectqueue:schema";

    private const string TableOptions = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" + Exact;

    private const string CreateSchemaTableSql =
        "CREATE TABLE IF NOT EXISTS " + StoreNames.SchemaTable + " (table_name VARCHAR(128) NOT NULL, version INT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (table_name)) " + TableOptions;

    private static string ColumnExists(string table, string column) =>
        $"SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}' AND column_name = '{column}'";

    private SchemaStatement Index(string name, string kind, string suffix, string columns) => new(name,
        $"CREATE {kind} {Quote(_table + suffix)} ON {_t} ({columns})",
        $"SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = '{_table}' AND index_name = '{_table + suffix}'");

    /// <summary>The schema versions, in order: the same three as every backend, plus MySQL's lock rows of acquire in version 1.</summary>
    public IReadOnlyList<SchemaStep> SchemaSteps() =>
    [
        // Indexes, all without WHERE (MySQL has no partial indexes); finished rows sort apart by a leading column
        // that is NULL exactly on the rows a query wants:
        // - <table>_due (finished_at, due_at, id): acquire's window, live rows (finished_at IS NULL) in due order.
        // - <table>_user_due (finished_at, user_name, due_at, id, max_running): the per-user part of acquire, each
        //   limited user's live due tasks in due order, covering every column it reads.
        // - <table>_leased (lease_token, user_name, due_at, finished_at): the running count reads leased rows only
        //   (lease_token is NULL on every other row), covering.
        // - <table>_purge (purge_at): cleanup; NULL on every live row.
        new(1, $"the task table '{_table}', its indexes, the lock rows '{_usersTable}' and perfectqueue_schema",
        [
            new("create_table", $"""
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
                    PRIMARY KEY (id)
                ) {TableOptions}
                """),
            // Each index by itself, so Initialize makes again one that went missing (MySQL 8.0 has no CREATE INDEX IF NOT EXISTS).
            Index("index_key", "UNIQUE INDEX", "_key", "task_key"),
            Index("index_due", "INDEX", "_due", "finished_at, due_at, id"),
            Index("index_user_due", "INDEX", "_user_due", "finished_at, user_name, due_at, id, max_running"),
            Index("index_leased", "INDEX", "_leased", "lease_token, user_name, due_at, finished_at"),
            Index("index_purge", "INDEX", "_purge", "purge_at"),
            // One row per user that ever had a task with max_running: acquire locks it (FOR UPDATE SKIP LOCKED,
            // held to commit) while it counts and leases that user's tasks.
            new("create_users_table", $"CREATE TABLE IF NOT EXISTS {_u} (user_name VARCHAR(256) NOT NULL, PRIMARY KEY (user_name)) {TableOptions}"),
            new("create_schema_table", CreateSchemaTableSql),
        ]),
        // One row per running worker: small, so no index beyond the key.
        new(2, $"the sessions table '{_workersTable}'",
        [
            new("create_workers_table", $"""
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
                    PRIMARY KEY (id)
                ) {TableOptions}
                """),
        ]),
        // Nullable columns at the end: a change of the catalog only (instant on MariaDB 10.3+ and MySQL 8.0.12+).
        // MySQL has no ADD COLUMN IF NOT EXISTS, so the catalog is asked first.
        new(3, $"the columns {SchemaUpgrade.TimeoutColumn} and {SchemaUpgrade.ProcessorTypeColumn} in '{_workersTable}'",
        [
            new("add_timeout_ms", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.TimeoutColumn} BIGINT NULL", ColumnExists(_table, SchemaUpgrade.TimeoutColumn)),
            new("add_processor_type", $"ALTER TABLE {_w} ADD COLUMN {SchemaUpgrade.ProcessorTypeColumn} VARCHAR(32) NULL", ColumnExists(_workersTable, SchemaUpgrade.ProcessorTypeColumn)),
        ]),
        // One row per schedule: few rows, read whole by every worker's firer, so no index beyond the key.
        new(4, $"the schedules table '{SchedulesTable}'",
        [
            new("create_schedules_table", $"""
                CREATE TABLE IF NOT EXISTS {QuotedSchedules} (
                    schedule_name VARCHAR(256) NOT NULL,
                    cron_expression VARCHAR(256) NOT NULL,
                    time_zone VARCHAR(128) NOT NULL,
                    task_type VARCHAR(256) NOT NULL,
                    user_name VARCHAR(256) NULL,
                    data LONGBLOB NULL,
                    max_running INT NULL,
                    overlap VARCHAR(16) NOT NULL,
                    missed_runs VARCHAR(16) NOT NULL,
                    paused SMALLINT NOT NULL DEFAULT 0,
                    next_fire_at BIGINT NOT NULL,
                    last_fire_at BIGINT NULL,
                    last_fire_key VARCHAR(256) NULL,
                    skip_count BIGINT NOT NULL DEFAULT 0,
                    last_skip_at BIGINT NULL,
                    missed_count BIGINT NOT NULL DEFAULT 0,
                    last_missed_at BIGINT NULL,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    PRIMARY KEY (schedule_name)
                ) {TableOptions}
                """),
        ]),
        // One row per pause (docs/pause.md): a handful at most, read by every acquire; the key is the scope.
        new(5, $"{SchemaUpgrade.PausesDescription} '{_pausesTable}'",
        [
            new("create_pauses_table", $"""
                CREATE TABLE IF NOT EXISTS {_p} (
                    task_type VARCHAR(256) NOT NULL,
                    user_name VARCHAR(256) NOT NULL,
                    paused_at BIGINT NOT NULL,
                    reason TEXT NULL,
                    paused_by VARCHAR(512) NULL,
                    PRIMARY KEY (task_type, user_name)
                ) {TableOptions}
                """),
        ]),
        // One row per ended attempt (docs/history.md); read and deleted by task id, so indexed by it. MEDIUMTEXT: the
        // output is bounded to 64 KB of UTF-8, a little more than TEXT holds with its cut marker.
        new(6, $"the attempts table '{AttemptsTable}'",
        [
            new("create_attempts_table", $"""
                CREATE TABLE IF NOT EXISTS {QuotedAttempts} (
                    id BIGINT NOT NULL AUTO_INCREMENT,
                    task_id BIGINT NOT NULL,
                    task_created_at BIGINT NOT NULL,
                    task_key VARCHAR(256) NOT NULL,
                    attempt INT NOT NULL,
                    started_at BIGINT NOT NULL,
                    ended_at BIGINT NOT NULL,
                    host VARCHAR(256) NOT NULL,
                    session_id VARCHAR(256) NULL,
                    processor VARCHAR(16) NOT NULL,
                    outcome VARCHAR(16) NOT NULL,
                    message TEXT NULL,
                    output MEDIUMTEXT NULL,
                    PRIMARY KEY (id),
                    KEY {Quote(AttemptsTable + "_task")} (task_id, id)
                ) {TableOptions}
                """),
        ]),
        // Who runs a task, since when, and how long its last attempt ran (docs/worker.md): nullable, as in version 3
        // (an instant change of the table's definition on MySQL 8 and MariaDB 10.3+).
        new(7, $"{SchemaUpgrade.RunColumnsDescription} in '{_table}'",
        [
            new("add_leased_by", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.LeasedByColumn} VARCHAR(64) NULL", ColumnExists(_table, SchemaUpgrade.LeasedByColumn)),
            new("add_leased_at", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.LeasedAtColumn} BIGINT NULL", ColumnExists(_table, SchemaUpgrade.LeasedAtColumn)),
            new("add_last_run_ms", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.LastRunColumn} BIGINT NULL", ColumnExists(_table, SchemaUpgrade.LastRunColumn)),
        ]),
        // The submit's trace context (docs/telemetry.md): nullable, as in version 3. A W3C traceparent is 55 characters.
        new(8, $"{SchemaUpgrade.TraceParentDescription} in '{_table}'",
        [
            new("add_trace_parent", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.TraceParentColumn} VARCHAR(64) NULL", ColumnExists(_table, SchemaUpgrade.TraceParentColumn)),
        ]),
    ];

    // -Force: the tables and this queue's version row go first, whatever version they have.
    private IReadOnlyList<SchemaStatement> DropSchemaStatements() =>
    [
        new("drop_tables", $"DROP TABLE IF EXISTS {_t}, {_w}, {_u}"),
        new("drop_schedules_table", $"DROP TABLE IF EXISTS {QuotedSchedules}"),
        new("drop_pauses_table", $"DROP TABLE IF EXISTS {_p}"),
        new("drop_attempts_table", $"DROP TABLE IF EXISTS {QuotedAttempts}"),
        new("create_schema_table", CreateSchemaTableSql),
        new("forget_version", $"DELETE FROM perfectqueue_schema WHERE table_name = '{_table}'"),
    ];

    public async Task InitializeAsync(bool force, CancellationToken ct)
    {
        await SchemaMigrator.InitializeAsync(new SchemaDialect(this), SchemaSteps(), _table, Description, force ? DropSchemaStatements() : null, ct).ConfigureAwait(false);
        _upgrade.MarkDone();
    }

    // Before the first statement of each store (a read too), a table an older version created is brought up to this one.
    private Task EnsureUpgradedAsync(CancellationToken ct) => _upgrade.EnsureAsync(() =>
        SchemaMigrator.UpgradeAsync(new SchemaDialect(this), SchemaSteps(), _table, Description, ct), ct);

    /// <summary>For tests: the runner's view of this store, to run other step lists against its database.</summary>
    public string SchemaWhere => Description;

    public ISchemaDialect SchemaDialectForTests() => new SchemaDialect(this);

    // The sessions table went missing after this store upgraded (dropped by hand): Initialize makes it again.
    private QueueNotInitializedException WorkersTableMissing() => SchemaUpgrade.WorkersTableMissing(_table, Description);

    // A locked session holds the named schema lock (GET_LOCK waits at most LockTimeoutSeconds) and releases it in
    // finally: named locks belong to the session, not to a transaction, and the connection goes back to the pool.
    // lock_wait_timeout bounds an ALTER's wait for the table's metadata lock behind long transactions.
    private sealed class SchemaDialect(MySqlQueueStore store) : ISchemaDialect
    {
        public Task<T> InSessionAsync<T>(bool locked, Func<ISchemaSession, Task<T>> work, CancellationToken ct) => store.Run(async c =>
        {
            if (!locked) return await work(new Session(store, c)).ConfigureAwait(false);
            var got = await c.ExecuteScalarAsync<long?>(Command(
                $"SET SESSION lock_wait_timeout = {SchemaUpgrade.LockTimeoutSeconds}; SELECT GET_LOCK('{SchemaLock}', {SchemaUpgrade.LockTimeoutSeconds})", null, ct)).ConfigureAwait(false);
            if (got != 1)
                throw new PerfectQueueException($"Another session is changing PerfectQueue tables in {store.Description} and did not finish within {SchemaUpgrade.LockTimeoutSeconds} seconds; try again.");
            try
            {
                return await work(new Session(store, c)).ConfigureAwait(false);
            }
            finally
            {
                try { await c.ExecuteAsync(new CommandDefinition($"DO RELEASE_LOCK('{SchemaLock}')", cancellationToken: CancellationToken.None)).ConfigureAwait(false); }
                catch (Exception e) when (e is MySqlException or InvalidOperationException or IOException) { /* the session is gone, and its lock with it */ }
            }
        }, RetrySafety.Always, ct, checkTable: false); // a step runs again safely: it reads the recorded version under the lock

        public bool IsPermissionError(Exception error) => error is MySqlException e && MySqlErrors.IsNoPermission(e.Number);
    }

    private sealed class Session(MySqlQueueStore store, MySqlConnection c) : ISchemaSession
    {
        public async Task<SchemaState> ReadStateAsync(CancellationToken ct)
        {
            var (tableExists, schemaTableExists) = await c.QuerySingleAsync<(long, long)>(Command(
                $"SELECT ({TableExistsSql("@queue")}), ({TableExistsSql("'perfectqueue_schema'")})", new { queue = store._table }, ct)).ConfigureAwait(false);
            var recorded = schemaTableExists != 0
                ? await c.ExecuteScalarAsync<int?>(Command("SELECT version FROM perfectqueue_schema WHERE table_name = @table", new { table = store._table }, ct)).ConfigureAwait(false)
                : null;
            return new SchemaState(tableExists != 0, recorded);
        }

        public async Task RunAsync(SchemaStatement statement, CancellationToken ct)
        {
            if (statement.DoneIf is null || await c.ExecuteScalarAsync<long>(Command(statement.DoneIf, null, ct)).ConfigureAwait(false) == 0)
                await c.ExecuteAsync(Command(statement.Sql, null, ct)).ConfigureAwait(false);
        }

        public Task RecordVersionAsync(int version, CancellationToken ct) => c.ExecuteAsync(Command(
            $"INSERT INTO perfectqueue_schema (table_name, version, created_at) VALUES (@table, @version, {Now}) ON DUPLICATE KEY UPDATE version = @version",
            new { table = store._table, version }, ct));
    }
}
