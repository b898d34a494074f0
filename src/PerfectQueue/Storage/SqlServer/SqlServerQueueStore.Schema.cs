using Dapper;
using Microsoft.Data.SqlClient;
using PerfectQueue.Storage.Postgres;

namespace PerfectQueue.Storage.SqlServer;

// The schema: its creation (Initialize), its versions and the upgrade of tables an older version created.
internal sealed partial class SqlServerQueueStore
{
    // 1: the task table; 2: the sessions table <table>_workers beside it (created lazily for version 1 queues);
    // 3: timeout_ms and processor_type (SchemaUpgrade), added to older tables at first use.
    public const int SchemaVersion = SchemaUpgrade.Version;

    private readonly UpgradeOnce _upgrade = new();

    // ---- schema version 3 on tables an older version created (SchemaUpgrade, docs/schema.md) ----
    // IF NOT EXISTS ... CREATE TABLE leaves an existing table as it was: add what version 3 added. Each is a
    // change of the catalog only (nullable, no default). LOCK_TIMEOUT: the ALTER waits for the table's schema
    // lock at most this long behind long transactions, so it never holds up the queue's own statements for
    // long (the next command tries again).
    private string Version3StateSql => $"""
        SELECT CAST(CASE WHEN OBJECT_ID(@name, N'U') IS NULL THEN 0 ELSE 1 END AS bit) AS QueueExists,
            CAST(CASE WHEN COL_LENGTH(@name, N'{SchemaUpgrade.TimeoutColumn}') IS NOT NULL
                AND (OBJECT_ID(@workers, N'U') IS NULL OR COL_LENGTH(@workers, N'{SchemaUpgrade.ProcessorTypeColumn}') IS NOT NULL)
                THEN 1 ELSE 0 END AS bit) AS IsCurrent;
        """;
    private string AddVersion3ColumnsSql => $"""
        SET LOCK_TIMEOUT {SchemaUpgrade.LockTimeoutSeconds * 1000};
        IF OBJECT_ID(N'{_t}', N'U') IS NOT NULL AND COL_LENGTH(N'{_t}', N'{SchemaUpgrade.TimeoutColumn}') IS NULL
            ALTER TABLE {_t} ADD {SchemaUpgrade.TimeoutColumn} bigint NULL;
        IF OBJECT_ID(N'{_w}', N'U') IS NOT NULL AND COL_LENGTH(N'{_w}', N'{SchemaUpgrade.ProcessorTypeColumn}') IS NULL
            ALTER TABLE {_w} ADD {SchemaUpgrade.ProcessorTypeColumn} nvarchar(32) NULL;
        SET LOCK_TIMEOUT -1;
        """;
    // The version this queue's row records (NULL: none, or no perfectqueue_schema yet): a newer one is refused.
    private string RecordedVersionSql => """
        IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NOT NULL
            SELECT version FROM perfectqueue_schema WHERE table_name = @table;
        ELSE
            SELECT CAST(NULL AS int) AS version;
        """;
    // A version-1 queue stays recorded as 1 until its sessions table exists (the first worker start).
    private string RecordUpgradeSql => $"""
        IF OBJECT_ID(N'{_w}', N'U') IS NOT NULL AND OBJECT_ID(N'perfectqueue_schema', N'U') IS NOT NULL
            UPDATE perfectqueue_schema SET version = @version WHERE table_name = @table AND version < @version;
        """;

    // Why the indexes: see docs/schema.md and docs/backends-sqlserver.md. The filtered indexes mirror
    // the partial ones of the other backends; the clustered key is the monotonic id.
    private string Index(string suffix, string definition) =>
        $"IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'{_t}', N'U') AND name = N'{_table}_{suffix}') {definition};";
    private (string Name, string Sql)[] InitializeSql =>
    [
        // Concurrent initializers would race in IF ... CREATE: serialize them. One lock for the whole
        // database, because perfectqueue_schema is shared by every queue table.
        ("initialize.lock", """
            DECLARE @granted int;
            EXEC @granted = sp_getapplock @Resource = N'perfectqueue:schema', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 20000;
            IF @granted < 0 THROW 51000, N'PerfectQueue: another session is creating queue tables and did not finish within 20 seconds; try again.', 1;
            """),
        ("initialize.drop_table", $"IF OBJECT_ID(N'{_t}', N'U') IS NOT NULL DROP TABLE {_t};"),
        ("initialize.drop_workers_table", $"IF OBJECT_ID(N'{_w}', N'U') IS NOT NULL DROP TABLE {_w};"),
        ("initialize.forget_version", "IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NOT NULL DELETE FROM perfectqueue_schema WHERE table_name = @table;"),
        ("initialize.create_table", $"""
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
                timeout_ms bigint NULL,
                CONSTRAINT {Quote(_table + "_pk")} PRIMARY KEY CLUSTERED (id));
            """),
        ("initialize.index_key", Index("key", $"CREATE UNIQUE NONCLUSTERED INDEX {Quote(_table + "_key")} ON {_t} (task_key)")),
        ("initialize.index_due", Index("due", $"CREATE NONCLUSTERED INDEX {Quote(_table + "_due")} ON {_t} (due_at, id) WHERE finished_at IS NULL")),
        ("initialize.index_leased", Index("leased", $"CREATE NONCLUSTERED INDEX {Quote(_table + "_leased")} ON {_t} (user_name, due_at) WHERE finished_at IS NULL AND lease_token IS NOT NULL")),
        ("initialize.index_user_due", Index("user_due", $"CREATE NONCLUSTERED INDEX {Quote(_table + "_user_due")} ON {_t} (user_name, due_at, id) WHERE finished_at IS NULL")),
        ("initialize.index_purge", Index("purge", $"CREATE NONCLUSTERED INDEX {Quote(_table + "_purge")} ON {_t} (purge_at) WHERE finished_at IS NOT NULL")),
        ("initialize.create_workers_table", WorkersTableSql()),
        ("initialize.add_version3_columns", AddVersion3ColumnsSql),
        ("initialize.create_schema_table", """
            IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NULL
            CREATE TABLE perfectqueue_schema (table_name nvarchar(128) NOT NULL PRIMARY KEY, version int NOT NULL, created_at bigint NOT NULL);
            """),
        ("initialize.record_version", $"""
            IF NOT EXISTS (SELECT 1 FROM perfectqueue_schema WHERE table_name = @table)
            INSERT INTO perfectqueue_schema (table_name, version, created_at) VALUES (@table, @version, {NowSql});
            """),
        ("initialize.upgrade_version", UpgradeVersionSql),
    ];

    private string WorkersTableSql() => $"""
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
            processor_type nvarchar(32) NULL,
            CONSTRAINT {Quote(_workersTable + "_pk")} PRIMARY KEY CLUSTERED (id));
        """;

    // A queue created by an older version is recorded as upgraded once the newer schema's objects exist.
    private const string UpgradeVersionSql = "UPDATE perfectqueue_schema SET version = @version WHERE table_name = @table AND version < @version;";

    private object TableArgs() => new { table = _table, version = SchemaVersion };
    private object UpgradeStateArgs() => new { name = _t, workers = _w };
    private object RecordedVersionArgs() => new { table = _table };

    // The schema statements of Statements(), the inventory the T-SQL tests check.
    private IEnumerable<(string Name, string Sql, object? Parameters)> SchemaStatements()
    {
        foreach (var (name, sql) in InitializeSql) yield return (name, sql, TableArgs());
        yield return ("upgrade.recorded_version", RecordedVersionSql, RecordedVersionArgs());
        yield return ("upgrade.state", Version3StateSql, UpgradeStateArgs());
        // (the columns themselves: initialize.add_version3_columns above)
        yield return ("upgrade.record_version", RecordUpgradeSql, TableArgs());
    }

    public Task InitializeAsync(bool force, CancellationToken ct) => Run(async c =>
    {
        // OPENJSON exists only at compatibility level 130 (SQL Server 2016) and later: refuse early and clearly.
        var level = await c.ExecuteScalarAsync<int?>(Command(CompatibilityLevelSql, null, null, ct)).ConfigureAwait(false);
        if (level is < MinCompatibilityLevel) throw IncompatibleDatabase(level.Value, null);
        await using var tx = (SqlTransaction)await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        if (!force && await c.ExecuteScalarAsync<int?>(Command(RecordedVersionSql, RecordedVersionArgs(), tx, ct)).ConfigureAwait(false) is { } recorded && recorded > SchemaVersion)
            throw SchemaUpgrade.TooNew(_table, Description, recorded);
        foreach (var (name, sql) in InitializeSql)
        {
            if (!force && name is "initialize.drop_table" or "initialize.drop_workers_table" or "initialize.forget_version") continue;
            await c.ExecuteAsync(Command(sql, TableArgs(), tx, ct)).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        _upgrade.MarkDone();
        return true;
    }, RetrySafety.Always, ct, checkTable: false);

    // Permission errors of an ALTER TABLE by a user who may not alter the table: object not found or no
    // permission (1088), permission denied (229, 297), CREATE/ALTER permission denied (262), no permission (15247).
    private static readonly HashSet<int> NoPermissionNumbers = [1088, 229, 262, 297, 15247];

    // Before the first statement that uses the version-3 columns, once per store: a table an older version
    // created gains them, whatever command comes first (a read too: adding a nullable column changes the
    // catalog only, and a listing must not fail on an older table).
    private Task EnsureUpgradedAsync(CancellationToken ct) => _upgrade.EnsureAsync(async () =>
    {
        if (await Run(c => c.ExecuteScalarAsync<int?>(Command(RecordedVersionSql, RecordedVersionArgs(), null, ct)), RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false) is { } recorded
            && recorded > SchemaVersion)
            throw SchemaUpgrade.TooNew(_table, Description, recorded);
        var (queueExists, current) = await Run(c => c.QuerySingleAsync<(bool, bool)>(Command(Version3StateSql, UpgradeStateArgs(), null, ct)),
            RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        if (!queueExists) return false; // the operation says so
        if (current) return true;
        try
        {
            await Run(async c =>
            {
                await using var tx = (SqlTransaction)await c.BeginTransactionAsync(ct).ConfigureAwait(false);
                foreach (var (name, sql) in InitializeSql)
                    if (name is "initialize.lock") await c.ExecuteAsync(Command(sql, TableArgs(), tx, ct)).ConfigureAwait(false);
                await c.ExecuteAsync(Command(AddVersion3ColumnsSql, null, tx, ct)).ConfigureAwait(false);
                await c.ExecuteAsync(Command(RecordUpgradeSql, TableArgs(), tx, ct)).ConfigureAwait(false);
                await tx.CommitAsync(ct).ConfigureAwait(false);
                return true;
            }, RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        }
        catch (SqlException e) when (SqlServerErrors.Numbers(e).Any(NoPermissionNumbers.Contains))
        {
            throw SchemaUpgrade.CannotUpgrade(_table, Description, e);
        }
        return true;
    }, ct);

    private async Task<T> UpgradedAsync<T>(CancellationToken ct, Func<Task<T>> operation)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await operation().ConfigureAwait(false);
    }

    // A queue of schema version 1 has no sessions table: the first worker that registers creates it (and records
    // the version), serialized with every other schema change.
    private Task CreateWorkersTableAsync(CancellationToken ct) => Run(async c =>
    {
        await using var tx = (SqlTransaction)await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        foreach (var (name, sql) in InitializeSql)
            if (name is "initialize.lock" or "initialize.create_workers_table" or "initialize.create_schema_table" or "initialize.upgrade_version")
                await c.ExecuteAsync(Command(sql, TableArgs(), tx, ct)).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return true;
    }, RetrySafety.Always, ct, checkTable: false);
}
