using Dapper;
using Microsoft.Data.SqlClient;
using PerfectQueue.Storage.Postgres;
using PerfectQueue.Storage.Relational;

namespace PerfectQueue.Storage.SqlServer;

// The schema: its versions as steps (SchemaMigrator runs them), creation (Initialize) and the upgrade of tables an
// older version created (docs/schema.md, "Upgrades"). Every statement is listed by SchemaStatements() for the
// T-SQL tests, which read the tables the other statements use from these.
internal sealed partial class SqlServerQueueStore
{
    private readonly UpgradeOnce _upgrade = new();

    /// <summary>The schema versions, in order. A new version is one more step here (and in the other backends).</summary>
    public IReadOnlyList<SchemaStep> SchemaSteps() =>
    [
        // Why the indexes: see docs/schema.md and docs/backends-sqlserver.md. The filtered indexes mirror
        // the partial ones of the other backends; the clustered key is the monotonic id.
        new(1, $"the task table '{_table}', its indexes and perfectqueue_schema",
        [
            new("create_table", $"""
                IF OBJECT_ID(N'{_t}', N'U') IS NULL
                CREATE TABLE {_t} (
                    id bigint IDENTITY(1,1) NOT NULL,
                    task_key nvarchar(256) COLLATE {Exact} NOT NULL,
                    task_type nvarchar(256) COLLATE {Exact} NOT NULL,
                    user_name nvarchar(256) COLLATE {Exact} NULL,
                    data varbinary(max) NULL,
                    max_running int NULL,
                    created_at bigint NOT NULL,
                    due_at bigint NULL,
                    lease_token bigint NULL,
                    attempts int NOT NULL DEFAULT 0,
                    cancel_requested smallint NOT NULL DEFAULT 0,
                    finished_at bigint NULL,
                    outcome nvarchar(32) NULL,
                    message nvarchar(max) NULL,
                    purge_at bigint NULL,
                    CONSTRAINT {Quote(_table + "_pk")} PRIMARY KEY CLUSTERED (id));
                """),
            new("index_key", Index("key", $"CREATE UNIQUE NONCLUSTERED INDEX {Quote(_table + "_key")} ON {_t} (task_key)")),
            new("index_due", Index("due", $"CREATE NONCLUSTERED INDEX {Quote(_table + "_due")} ON {_t} (due_at, id) WHERE finished_at IS NULL")),
            new("index_leased", Index("leased", $"CREATE NONCLUSTERED INDEX {Quote(_table + "_leased")} ON {_t} (user_name, due_at) WHERE finished_at IS NULL AND lease_token IS NOT NULL")),
            new("index_user_due", Index("user_due", $"CREATE NONCLUSTERED INDEX {Quote(_table + "_user_due")} ON {_t} (user_name, due_at, id) WHERE finished_at IS NULL")),
            new("index_purge", Index("purge", $"CREATE NONCLUSTERED INDEX {Quote(_table + "_purge")} ON {_t} (purge_at) WHERE finished_at IS NOT NULL")),
            new("create_schema_table", """
                IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NULL
                CREATE TABLE perfectqueue_schema (table_name nvarchar(128) NOT NULL PRIMARY KEY, version int NOT NULL, created_at bigint NOT NULL);
                """),
        ]),
        new(2, $"the sessions table '{_workersTable}'",
        [
            new("create_workers_table", $"""
                IF OBJECT_ID(N'{_w}', N'U') IS NULL
                CREATE TABLE {_w} (
                    id nvarchar(64) COLLATE {Exact} NOT NULL,
                    host nvarchar(256) NOT NULL,
                    pid int NOT NULL,
                    processors int NOT NULL,
                    running int NOT NULL DEFAULT 0,
                    started_at bigint NOT NULL,
                    last_beat_at bigint NOT NULL,
                    alive_until bigint NOT NULL,
                    stop_requested smallint NOT NULL DEFAULT 0,
                    CONSTRAINT {Quote(_workersTable + "_pk")} PRIMARY KEY CLUSTERED (id));
                """),
        ]),
        // Nullable, no default: a change of the catalog only. LOCK_TIMEOUT: the ALTER waits for the table's schema
        // lock at most this long behind long transactions, so it never holds up the queue's own statements for long
        // (the next command tries again); reset after, since the connection goes back to the pool.
        new(3, $"the columns {SchemaUpgrade.TimeoutColumn} and {SchemaUpgrade.ProcessorTypeColumn} in '{_workersTable}'",
        [
            new("add_timeout_ms", AddColumn(_t, SchemaUpgrade.TimeoutColumn, "bigint")),
            new("add_processor_type", AddColumn(_w, SchemaUpgrade.ProcessorTypeColumn, "nvarchar(32)")),
        ]),
        // One row per schedule: few rows, read whole by every worker's firer, so no index beyond the clustered key.
        new(4, $"the schedules table '{SchedulesTable}'",
        [
            new("create_schedules_table", $"""
                IF OBJECT_ID(N'{QuotedSchedules}', N'U') IS NULL
                CREATE TABLE {QuotedSchedules} (
                    schedule_name nvarchar(256) COLLATE {Exact} NOT NULL,
                    cron_expression nvarchar(256) NOT NULL,
                    time_zone nvarchar(128) NOT NULL,
                    task_type nvarchar(256) COLLATE {Exact} NOT NULL,
                    user_name nvarchar(256) COLLATE {Exact} NULL,
                    data varbinary(max) NULL,
                    max_running int NULL,
                    overlap nvarchar(16) NOT NULL,
                    missed_runs nvarchar(16) NOT NULL,
                    paused smallint NOT NULL DEFAULT 0,
                    next_fire_at bigint NOT NULL,
                    last_fire_at bigint NULL,
                    last_fire_key nvarchar(256) COLLATE {Exact} NULL,
                    skip_count bigint NOT NULL DEFAULT 0,
                    last_skip_at bigint NULL,
                    missed_count bigint NOT NULL DEFAULT 0,
                    last_missed_at bigint NULL,
                    created_at bigint NOT NULL,
                    updated_at bigint NOT NULL,
                    CONSTRAINT {Quote(SchedulesTable + "_pk")} PRIMARY KEY CLUSTERED (schedule_name));
                """),
        ]),
        // One row per pause (docs/pause.md): a handful at most, read by every acquire; the key is the scope. Its two
        // nvarchar(256) columns may reach 1,024 bytes, over the 900 of a clustered key: a nonclustered key takes 1,700.
        new(5, $"{SchemaUpgrade.PausesDescription} '{_pausesTable}'",
        [
            new("create_pauses_table", $"""
                IF OBJECT_ID(N'{_p}', N'U') IS NULL
                CREATE TABLE {_p} (
                    task_type nvarchar(256) COLLATE {Exact} NOT NULL,
                    user_name nvarchar(256) COLLATE {Exact} NOT NULL,
                    paused_at bigint NOT NULL,
                    reason nvarchar(max) NULL,
                    paused_by nvarchar(512) NULL,
                    CONSTRAINT {Quote(_pausesTable + "_pk")} PRIMARY KEY NONCLUSTERED (task_type, user_name));
                """),
        ]),
        // One row per ended attempt (docs/history.md): a monotonic clustered key, and an index by task id, which
        // history reads and cleanup deletes by.
        new(6, $"the attempts table '{AttemptsTable}'",
        [
            new("create_attempts_table", $"""
                IF OBJECT_ID(N'{QuotedAttempts}', N'U') IS NULL
                CREATE TABLE {QuotedAttempts} (
                    id bigint IDENTITY(1,1) NOT NULL,
                    task_id bigint NOT NULL,
                    task_created_at bigint NOT NULL,
                    task_key nvarchar(256) COLLATE {Exact} NOT NULL,
                    attempt int NOT NULL,
                    started_at bigint NOT NULL,
                    ended_at bigint NOT NULL,
                    host nvarchar(256) NOT NULL,
                    session_id nvarchar(256) NULL,
                    processor nvarchar(16) NOT NULL,
                    outcome nvarchar(16) NOT NULL,
                    message nvarchar(max) NULL,
                    output nvarchar(max) NULL,
                    CONSTRAINT {Quote(AttemptsTable + "_pk")} PRIMARY KEY CLUSTERED (id));
                """),
            new("index_attempts_task", $"IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'{QuotedAttempts}', N'U') AND name = N'{AttemptsTable}_task') " +
                $"CREATE NONCLUSTERED INDEX {Quote(AttemptsTable + "_task")} ON {QuotedAttempts} (task_id, id);"),
        ]),
        // Who runs a task, since when, and how long its last attempt ran (docs/worker.md): nullable, no default, a
        // change of metadata only, as in version 3.
        new(7, $"{SchemaUpgrade.RunColumnsDescription} in '{_table}'",
        [
            new("add_leased_by", AddColumn(_t, SchemaUpgrade.LeasedByColumn, "nvarchar(64)")),
            new("add_leased_at", AddColumn(_t, SchemaUpgrade.LeasedAtColumn, "bigint")),
            new("add_last_run_ms", AddColumn(_t, SchemaUpgrade.LastRunColumn, "bigint")),
        ]),
        // The submit's trace context (docs/telemetry.md): nullable, a change of metadata only, as in version 3.
        new(8, $"{SchemaUpgrade.TraceParentDescription} in '{_table}'",
        [
            new("add_trace_parent", AddColumn(_t, SchemaUpgrade.TraceParentColumn, "nvarchar(64)")),
        ]),
    ];

    private string Index(string suffix, string definition) =>
        $"IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'{_t}', N'U') AND name = N'{_table}_{suffix}') {definition};";

    private static string AddColumn(string table, string column, string type) => $"""
        SET LOCK_TIMEOUT {SchemaUpgrade.LockTimeoutSeconds * 1000};
        IF COL_LENGTH(N'{table}', N'{column}') IS NULL
            ALTER TABLE {table} ADD {column} {type} NULL;
        SET LOCK_TIMEOUT -1;
        """;

    // -Force: the tables and this queue's version row go first, whatever version they have.
    private IReadOnlyList<SchemaStatement> DropSchemaStatements() =>
    [
        new("drop_table", $"IF OBJECT_ID(N'{_t}', N'U') IS NOT NULL DROP TABLE {_t};"),
        new("drop_workers_table", $"IF OBJECT_ID(N'{_w}', N'U') IS NOT NULL DROP TABLE {_w};"),
        new("drop_schedules_table", $"IF OBJECT_ID(N'{QuotedSchedules}', N'U') IS NOT NULL DROP TABLE {QuotedSchedules};"),
        new("drop_pauses_table", $"IF OBJECT_ID(N'{_p}', N'U') IS NOT NULL DROP TABLE {_p};"),
        new("drop_attempts_table", $"IF OBJECT_ID(N'{QuotedAttempts}', N'U') IS NOT NULL DROP TABLE {QuotedAttempts};"),
        new("forget_version", $"IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NOT NULL DELETE FROM perfectqueue_schema WHERE table_name = N'{_table}';"),
    ];

    // One lock for the whole database, because perfectqueue_schema is shared by every queue table: concurrent
    // initializers would race in IF ... CREATE.
    private static readonly string SchemaLockSql = $"""
        DECLARE @granted int;
        EXEC @granted = sp_getapplock @Resource = N'perfectqueue:schema', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = {SchemaUpgrade.LockTimeoutSeconds * 1000};
        IF @granted < 0 THROW 51000, N'PerfectQueue: another session is changing queue tables and did not finish within {SchemaUpgrade.LockTimeoutSeconds} seconds; try again.', 1;
        """;

    // The table's existence and the version its row records (NULL: none, or no perfectqueue_schema yet).
    private const string SchemaStateSql = """
        DECLARE @version int = NULL;
        IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NOT NULL
            SELECT @version = version FROM perfectqueue_schema WHERE table_name = @table;
        SELECT CAST(CASE WHEN OBJECT_ID(@name, N'U') IS NULL THEN 0 ELSE 1 END AS bit) AS TableExists, @version AS RecordedVersion;
        """;

    private static readonly string RecordVersionSql = $"""
        SET NOCOUNT ON;
        UPDATE perfectqueue_schema SET version = @version WHERE table_name = @table;
        IF @@ROWCOUNT = 0
            INSERT INTO perfectqueue_schema (table_name, version, created_at) VALUES (@table, @version, {NowSql});
        """;

    private object SchemaStateArgs() => new { table = _table, name = _t };
    private object RecordVersionArgs(int version) => new { table = _table, version };

    // The schema statements of Statements(), the inventory the T-SQL tests check, in the order they run.
    private IEnumerable<(string Name, string Sql, object? Parameters)> SchemaStatements()
    {
        yield return ("schema.lock", SchemaLockSql, null);
        yield return ("schema.state", SchemaStateSql, SchemaStateArgs());
        foreach (var statement in DropSchemaStatements()) yield return ($"schema.force.{statement.Name}", statement.Sql, null);
        foreach (var step in SchemaSteps())
            foreach (var statement in step.Statements)
            {
                if (statement.DoneIf is not null) yield return ($"schema.v{step.Version}.{statement.Name}.done_if", statement.DoneIf, null);
                yield return ($"schema.v{step.Version}.{statement.Name}", statement.Sql, null);
            }
        yield return ("schema.record_version", RecordVersionSql, RecordVersionArgs(SchemaUpgrade.Version));
    }

    public async Task InitializeAsync(bool force, CancellationToken ct)
    {
        // OPENJSON exists only at compatibility level 130 (SQL Server 2016) and later: refuse early and clearly.
        var level = await Run(c => c.ExecuteScalarAsync<int?>(Command(CompatibilityLevelSql, null, null, ct)), RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        if (level is < MinCompatibilityLevel) throw IncompatibleDatabase(level.Value, null);
        await SchemaMigrator.InitializeAsync(new SchemaDialect(this), SchemaSteps(), _table, Description, force ? DropSchemaStatements() : null, ct).ConfigureAwait(false);
        _upgrade.MarkDone();
    }

    // Permission errors of an ALTER TABLE or CREATE TABLE by a user who may not make it: object not found or no
    // permission (1088), permission denied (229, 297), CREATE/ALTER permission denied (262), no permission (15247).
    private static readonly HashSet<int> NoPermissionNumbers = [1088, 229, 262, 297, 15247];

    // Before the first statement of each store (a read too: a listing must not fail on an older table), a table an
    // older version created is brought up to this one.
    private Task EnsureUpgradedAsync(CancellationToken ct) => _upgrade.EnsureAsync(() =>
        SchemaMigrator.UpgradeAsync(new SchemaDialect(this), SchemaSteps(), _table, Description, ct), ct);

    private async Task<T> UpgradedAsync<T>(CancellationToken ct, Func<Task<T>> operation)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await operation().ConfigureAwait(false);
    }

    /// <summary>For tests: the runner's view of this store, to run other step lists against its database.</summary>
    public string SchemaWhere => Description;

    public ISchemaDialect SchemaDialectForTests() => new SchemaDialect(this);

    // The sessions table went missing after this store upgraded (dropped by hand): Initialize makes it again.
    private QueueNotInitializedException WorkersTableMissing() => SchemaUpgrade.WorkersTableMissing(_table, Description);

    // A locked session is one transaction (SQL Server's DDL is transactional) holding the schema applock to its end.
    private sealed class SchemaDialect(SqlServerQueueStore store) : ISchemaDialect
    {
        public Task<T> InSessionAsync<T>(bool locked, Func<ISchemaSession, Task<T>> work, CancellationToken ct) => store.Run(async c =>
        {
            if (!locked) return await work(new Session(store, c, null)).ConfigureAwait(false);
            await using var tx = (SqlTransaction)await c.BeginTransactionAsync(ct).ConfigureAwait(false);
            await c.ExecuteAsync(Command(SchemaLockSql, null, tx, ct)).ConfigureAwait(false);
            var result = await work(new Session(store, c, tx)).ConfigureAwait(false);
            await tx.CommitAsync(ct).ConfigureAwait(false);
            return result;
        }, RetrySafety.Always, ct, checkTable: false); // a step runs again safely: it reads the recorded version under the lock

        public bool IsPermissionError(Exception error) => error is SqlException e && SqlServerErrors.Numbers(e).Any(NoPermissionNumbers.Contains);
    }

    private sealed class Session(SqlServerQueueStore store, SqlConnection c, SqlTransaction? tx) : ISchemaSession
    {
        public async Task<SchemaState> ReadStateAsync(CancellationToken ct)
        {
            var (exists, recorded) = await c.QuerySingleAsync<(bool, int?)>(Command(SchemaStateSql, store.SchemaStateArgs(), tx, ct)).ConfigureAwait(false);
            return new SchemaState(exists, recorded);
        }

        public async Task RunAsync(SchemaStatement statement, CancellationToken ct)
        {
            if (statement.DoneIf is null || await c.ExecuteScalarAsync<long>(Command(statement.DoneIf, null, tx, ct)).ConfigureAwait(false) == 0)
                await c.ExecuteAsync(Command(statement.Sql, null, tx, ct)).ConfigureAwait(false);
        }

        public Task RecordVersionAsync(int version, CancellationToken ct) =>
            c.ExecuteAsync(Command(RecordVersionSql, store.RecordVersionArgs(version), tx, ct));
    }
}
