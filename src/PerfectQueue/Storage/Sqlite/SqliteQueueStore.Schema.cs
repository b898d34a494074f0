using Dapper;
using Microsoft.Data.Sqlite;
using PerfectQueue.Storage.Relational;

namespace PerfectQueue.Storage.Sqlite;

// The schema: its versions as steps (SchemaMigrator runs them), creation (Initialize) and the upgrade of tables an
// older version created (docs/schema.md, "Upgrades").
internal sealed partial class SqliteQueueStore
{
    private readonly UpgradeOnce _upgrade = new();

    /// <summary>The schema versions, in order. A new version is one more step here (and in the other backends).</summary>
    public IReadOnlyList<SchemaStep> SchemaSteps() =>
    [
        // Why the indexes: due serves acquire's ORDER BY over live tasks only; leased serves the running count
        // per user; user_due serves acquire's per-user candidates; purge serves cleanup; key enforces unique task keys.
        new(1, $"the task table '{_table}', its indexes and perfectqueue_schema",
        [
            new("create_table", $"""
                CREATE TABLE IF NOT EXISTS {_t} (
                    id INTEGER PRIMARY KEY,
                    task_key TEXT NOT NULL,
                    task_type TEXT NOT NULL,
                    user_name TEXT NULL,
                    data BLOB NULL,
                    max_running INTEGER NULL,
                    created_at INTEGER NOT NULL,
                    due_at INTEGER NULL,
                    lease_token INTEGER NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    cancel_requested INTEGER NOT NULL DEFAULT 0,
                    finished_at INTEGER NULL,
                    outcome TEXT NULL,
                    message TEXT NULL,
                    purge_at INTEGER NULL)
                """),
            new("index_key", $"CREATE UNIQUE INDEX IF NOT EXISTS {Quote(_table + "_key")} ON {_t} (task_key)"),
            new("index_due", $"CREATE INDEX IF NOT EXISTS {Quote(_table + "_due")} ON {_t} (due_at, id) WHERE finished_at IS NULL"),
            new("index_leased", $"CREATE INDEX IF NOT EXISTS {Quote(_table + "_leased")} ON {_t} (user_name, due_at) WHERE finished_at IS NULL AND lease_token IS NOT NULL"),
            new("index_user_due", $"CREATE INDEX IF NOT EXISTS {Quote(_table + "_user_due")} ON {_t} (user_name, due_at, id) WHERE finished_at IS NULL"),
            new("index_purge", $"CREATE INDEX IF NOT EXISTS {Quote(_table + "_purge")} ON {_t} (purge_at) WHERE finished_at IS NOT NULL"),
            new("create_schema_table", CreateSchemaTableSql),
        ]),
        // One row per running worker: small (a row per worker), so no index beyond the key.
        new(2, $"the sessions table '{_workersTable}'",
        [
            new("create_workers_table", $"""
                CREATE TABLE IF NOT EXISTS {_w} (
                    id TEXT PRIMARY KEY,
                    host TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    processors INTEGER NOT NULL,
                    running INTEGER NOT NULL DEFAULT 0,
                    started_at INTEGER NOT NULL,
                    last_beat_at INTEGER NOT NULL,
                    alive_until INTEGER NOT NULL,
                    stop_requested INTEGER NOT NULL DEFAULT 0)
                """),
        ]),
        // Nullable, no default: a change of the catalog only. SQLite has no ADD COLUMN IF NOT EXISTS: the catalog is asked.
        new(3, $"the columns {SchemaUpgrade.TimeoutColumn} and {SchemaUpgrade.ProcessorTypeColumn} in '{_workersTable}'",
        [
            new("add_timeout_ms", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.TimeoutColumn} INTEGER NULL",
                DoneIf: HasColumnSql(_table, SchemaUpgrade.TimeoutColumn)),
            new("add_processor_type", $"ALTER TABLE {_w} ADD COLUMN {SchemaUpgrade.ProcessorTypeColumn} TEXT NULL",
                DoneIf: HasColumnSql(_workersTable, SchemaUpgrade.ProcessorTypeColumn)),
        ]),
        // One row per schedule: few rows, read whole by every worker's firer, so no index beyond the key.
        new(4, $"the schedules table '{SchedulesTable}'",
        [
            new("create_schedules_table", $"""
                CREATE TABLE IF NOT EXISTS {QuotedSchedules} (
                    schedule_name TEXT PRIMARY KEY,
                    cron_expression TEXT NOT NULL,
                    time_zone TEXT NOT NULL,
                    task_type TEXT NOT NULL,
                    user_name TEXT NULL,
                    data BLOB NULL,
                    max_running INTEGER NULL,
                    overlap TEXT NOT NULL,
                    missed_runs TEXT NOT NULL,
                    paused INTEGER NOT NULL DEFAULT 0,
                    next_fire_at INTEGER NOT NULL,
                    last_fire_at INTEGER NULL,
                    last_fire_key TEXT NULL,
                    skip_count INTEGER NOT NULL DEFAULT 0,
                    last_skip_at INTEGER NULL,
                    missed_count INTEGER NOT NULL DEFAULT 0,
                    last_missed_at INTEGER NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL)
                """),
        ]),
        // One row per pause (docs/pause.md): a handful at most, read by every acquire; the key is the scope.
        new(5, $"{SchemaUpgrade.PausesDescription} '{_pausesTable}'",
        [
            new("create_pauses_table", $"""
                CREATE TABLE IF NOT EXISTS {_p} (
                    task_type TEXT NOT NULL,
                    user_name TEXT NOT NULL,
                    paused_at INTEGER NOT NULL,
                    reason TEXT NULL,
                    paused_by TEXT NULL,
                    PRIMARY KEY (task_type, user_name))
                """),
        ]),
        // One row per ended attempt (docs/history.md); read and deleted by task id, so indexed by it.
        new(6, $"the attempts table '{AttemptsTable}'",
        [
            new("create_attempts_table", $"""
                CREATE TABLE IF NOT EXISTS {QuotedAttempts} (
                    id INTEGER PRIMARY KEY,
                    task_id INTEGER NOT NULL,
                    task_created_at INTEGER NOT NULL,
                    task_key TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    started_at INTEGER NOT NULL,
                    ended_at INTEGER NOT NULL,
                    host TEXT NOT NULL,
                    session_id TEXT NULL,
                    processor TEXT NOT NULL,
                    outcome TEXT NOT NULL,
                    message TEXT NULL,
                    output TEXT NULL)
                """),
            new("index_attempts_task", $"CREATE INDEX IF NOT EXISTS {Quote(AttemptsTable + "_task")} ON {QuotedAttempts} (task_id, id)"),
        ]),
        // Who runs a task, since when, and how long its last attempt ran (docs/worker.md): nullable, as in version 3.
        new(7, $"{SchemaUpgrade.RunColumnsDescription} in '{_table}'",
        [
            new("add_leased_by", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.LeasedByColumn} TEXT NULL", DoneIf: HasColumnSql(_table, SchemaUpgrade.LeasedByColumn)),
            new("add_leased_at", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.LeasedAtColumn} INTEGER NULL", DoneIf: HasColumnSql(_table, SchemaUpgrade.LeasedAtColumn)),
            new("add_last_run_ms", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.LastRunColumn} INTEGER NULL", DoneIf: HasColumnSql(_table, SchemaUpgrade.LastRunColumn)),
        ]),
        // The submit's trace context (docs/telemetry.md): nullable, as in version 3.
        new(8, $"{SchemaUpgrade.TraceParentDescription} in '{_table}'",
        [
            new("add_trace_parent", $"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.TraceParentColumn} TEXT NULL", DoneIf: HasColumnSql(_table, SchemaUpgrade.TraceParentColumn)),
        ]),
    ];

    private const string CreateSchemaTableSql =
        "CREATE TABLE IF NOT EXISTS perfectqueue_schema (table_name TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at INTEGER NOT NULL)";

    // Names are validated (SqlIdentifiers), so they may stand in the text.
    private static string HasColumnSql(string table, string column) => $"SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = '{column}'";

    // -Force: the tables and this queue's version row go first, whatever version they have.
    private IReadOnlyList<SchemaStatement> DropSchemaStatements() =>
    [
        new("drop_table", $"DROP TABLE IF EXISTS {_t}"),
        new("drop_workers_table", $"DROP TABLE IF EXISTS {_w}"),
        new("drop_schedules_table", $"DROP TABLE IF EXISTS {QuotedSchedules}"),
        new("drop_pauses_table", $"DROP TABLE IF EXISTS {_p}"),
        new("drop_attempts_table", $"DROP TABLE IF EXISTS {QuotedAttempts}"),
        new("create_schema_table", CreateSchemaTableSql),
        new("forget_version", $"DELETE FROM perfectqueue_schema WHERE table_name = '{_table}'"),
    ];

    public Task InitializeAsync(bool force, CancellationToken ct) => Run(ct, () =>
    {
        CreatePrivately();
        SchemaMigrator.InitializeAsync(new SchemaDialect(this, create: true), SchemaSteps(), _table, FilePath, force ? DropSchemaStatements() : null, ct)
            .GetAwaiter().GetResult(); // completes synchronously: every SQLite call underneath does
        _upgrade.MarkDone();
        return true;
    });

    // Before the first statement of each store (a read too: a listing must not fail on an older table), a table an
    // older version created is brought up to this one.
    private void EnsureUpgraded(CancellationToken ct) => _upgrade.Ensure(() =>
        File.Exists(FilePath) // no file: the operation says so, and nothing is created
        && SchemaMigrator.UpgradeAsync(new SchemaDialect(this, create: false), SchemaSteps(), _table, FilePath, ct).GetAwaiter().GetResult(), ct);

    /// <summary>For tests: the runner's view of this store, to run other step lists against its file (created if missing).</summary>
    public string SchemaWhere => FilePath;

    public ISchemaDialect SchemaDialectForTests() => new SchemaDialect(this, create: true);

    // The sessions table went missing after this store upgraded (dropped by hand): Initialize makes it again.
    private QueueNotInitializedException WorkersTableMissing() => SchemaUpgrade.WorkersTableMissing(_table, FilePath);

    private static bool TableExists(SqliteConnection c, string name) =>
        c.ExecuteScalar<long>("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = @name", new { name }) > 0;

    // The schema lock is SQLite's write lock: BEGIN IMMEDIATE, and DDL is transactional, so a step and its
    // recorded version commit together. The calls are synchronous; the tasks come back completed.
    private sealed class SchemaDialect(SqliteQueueStore store, bool create) : ISchemaDialect
    {
        public Task<T> InSessionAsync<T>(bool locked, Func<ISchemaSession, Task<T>> work, CancellationToken ct)
        {
            if (locked) return Task.FromResult(store.Write(ct, (c, now) => work(new Session(store, c, now)).GetAwaiter().GetResult(), checkTable: false, create));
            if (File.Exists(store.FilePath)) return Task.FromResult(store.Read(c => work(new Session(store, c, 0)).GetAwaiter().GetResult(), checkTable: false));
            // No file: it has no tables, as an empty database has none; looking creates nothing.
            using var empty = new SqliteConnection("Data Source=:memory:");
            empty.Open();
            return work(new Session(store, empty, 0));
        }

        public bool IsPermissionError(Exception error) => error is SqliteException e && SqliteErrors.IsNoPermission(e);
    }

    private sealed class Session(SqliteQueueStore store, SqliteConnection c, long now) : ISchemaSession
    {
        public Task<SchemaState> ReadStateAsync(CancellationToken ct) => Task.FromResult(new SchemaState(
            TableExists(c, store._table),
            TableExists(c, "perfectqueue_schema")
                ? c.ExecuteScalar<int?>("SELECT version FROM perfectqueue_schema WHERE table_name = @table", new { table = store._table })
                : null));

        public Task RunAsync(SchemaStatement statement, CancellationToken ct)
        {
            if (statement.DoneIf is null || c.ExecuteScalar<long>(statement.DoneIf) == 0) c.Execute(statement.Sql);
            return Task.CompletedTask;
        }

        public Task RecordVersionAsync(int version, CancellationToken ct)
        {
            c.Execute("""
                INSERT INTO perfectqueue_schema (table_name, version, created_at) VALUES (@table, @version, @now)
                ON CONFLICT (table_name) DO UPDATE SET version = excluded.version
                """, new { table = store._table, version, now });
            return Task.CompletedTask;
        }
    }
}
