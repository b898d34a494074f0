using Dapper;
using Microsoft.Data.Sqlite;

namespace PerfectQueue.Storage.Sqlite;

// The schema: its creation (Initialize), its versions and the upgrade of tables an older version created.
internal sealed partial class SqliteQueueStore
{
    // 1: the task table; 2: the sessions table <table>_workers beside it (created lazily for version 1 queues);
    // 3: timeout_ms and processor_type (SchemaUpgrade), added to older tables at first use.
    public const int SchemaVersion = SchemaUpgrade.Version;

    private readonly UpgradeOnce _upgrade = new();

    public Task InitializeAsync(bool force, CancellationToken ct) => Run(ct, () =>
    {
        CreatePrivately();
        Write(ct, (c, now) =>
        {
            if (force)
            {
                c.Execute($"DROP TABLE IF EXISTS {_t}");
                c.Execute($"DROP TABLE IF EXISTS {_w}");
                c.Execute("CREATE TABLE IF NOT EXISTS perfectqueue_schema (table_name TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at INTEGER NOT NULL)");
                c.Execute("DELETE FROM perfectqueue_schema WHERE table_name = @table", new { table = _table });
            }
            if (!force && RecordedVersion(c) is { } recorded && recorded > SchemaVersion)
                throw SchemaUpgrade.TooNew(_table, FilePath, (int)recorded);
            c.Execute(SchemaSql());
            AddVersion3Columns(c);
            c.Execute("INSERT INTO perfectqueue_schema (table_name, version, created_at) VALUES (@table, @version, @now) ON CONFLICT (table_name) DO NOTHING",
                new { table = _table, version = SchemaVersion, now });
            c.Execute(UpgradeVersionSql, new { table = _table, version = SchemaVersion });
            return 0;
        }, checkTable: false, create: true);
        _upgrade.MarkDone();
        return true;
    });

    // ---- schema version 3 on tables an older version created (SchemaUpgrade, docs/schema.md) ----

    private static bool HasColumn(SqliteConnection c, string table, string column) =>
        c.ExecuteScalar<long>("SELECT COUNT(*) FROM pragma_table_info(@table) WHERE name = @column", new { table, column }) > 0;

    // The version perfectqueue_schema records for this queue (null: none recorded, or no such table yet).
    private long? RecordedVersion(SqliteConnection c) => TableExists(c, "perfectqueue_schema")
        ? c.ExecuteScalar<long?>("SELECT version FROM perfectqueue_schema WHERE table_name = @table", new { table = _table })
        : null;

    private static bool TableExists(SqliteConnection c, string name) =>
        c.ExecuteScalar<long>("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = @name", new { name }) > 0;

    // CREATE TABLE IF NOT EXISTS leaves an existing table as it was: add what version 3 added. SQLite has no
    // ADD COLUMN IF NOT EXISTS, so the catalog is asked first (under the write lock: no other writer races it).
    private void AddVersion3Columns(SqliteConnection c)
    {
        if (!HasColumn(c, _table, SchemaUpgrade.TimeoutColumn))
            c.Execute($"ALTER TABLE {_t} ADD COLUMN {SchemaUpgrade.TimeoutColumn} INTEGER NULL");
        if (TableExists(c, _workersTable) && !HasColumn(c, _workersTable, SchemaUpgrade.ProcessorTypeColumn))
            c.Execute($"ALTER TABLE {_w} ADD COLUMN {SchemaUpgrade.ProcessorTypeColumn} TEXT NULL");
    }

    // Before the first statement that uses the version-3 columns, once per store: a table an older version
    // created gains them, whatever command comes first (a read too: the change is to the catalog only, and a
    // listing must not fail on an older table). A version-1 queue stays recorded as 1 until its sessions table exists.
    private void EnsureUpgraded(CancellationToken ct) => _upgrade.Ensure(() =>
    {
        if (!File.Exists(FilePath)) return false;
        if (Read(RecordedVersion, checkTable: false) is { } recorded && recorded > SchemaVersion)
            throw SchemaUpgrade.TooNew(_table, FilePath, (int)recorded);
        var current = Read(c => !TableExists(c, _table) ? (bool?)null
            : HasColumn(c, _table, SchemaUpgrade.TimeoutColumn)
              && (!TableExists(c, _workersTable) || HasColumn(c, _workersTable, SchemaUpgrade.ProcessorTypeColumn)), checkTable: false);
        if (current is null) return false; // no queue table: the operation says so
        if (current.Value) return true;
        try
        {
            Write(ct, (c, _) =>
            {
                AddVersion3Columns(c);
                if (TableExists(c, _workersTable)) c.Execute(UpgradeVersionSql, new { table = _table, version = SchemaVersion });
                return 0;
            }, checkTable: false);
        }
        // SQLITE_PERM (3), SQLITE_READONLY (8), SQLITE_AUTH (23): this process may read the file but not change it.
        catch (SqliteException e) when (e.SqliteErrorCode is 3 or 8 or 23)
        {
            throw SchemaUpgrade.CannotUpgrade(_table, FilePath, e);
        }
        return true;
    }, ct);

    // Why the indexes: due serves acquire's ORDER BY over live tasks only; leased serves the running count
    // per user; user_due serves acquire's per-user candidates; purge serves cleanup; key enforces unique task keys.
    private string SchemaSql() => $"""
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
            purge_at INTEGER NULL,
            timeout_ms INTEGER NULL);
        CREATE UNIQUE INDEX IF NOT EXISTS {Quote(_table + "_key")} ON {_t} (task_key);
        CREATE INDEX IF NOT EXISTS {Quote(_table + "_due")} ON {_t} (due_at, id) WHERE finished_at IS NULL;
        CREATE INDEX IF NOT EXISTS {Quote(_table + "_leased")} ON {_t} (user_name, due_at) WHERE finished_at IS NULL AND lease_token IS NOT NULL;
        CREATE INDEX IF NOT EXISTS {Quote(_table + "_user_due")} ON {_t} (user_name, due_at, id) WHERE finished_at IS NULL;
        CREATE INDEX IF NOT EXISTS {Quote(_table + "_purge")} ON {_t} (purge_at) WHERE finished_at IS NOT NULL;
        CREATE TABLE IF NOT EXISTS perfectqueue_schema (table_name TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at INTEGER NOT NULL);
        {WorkersSchemaSql()}
        """;

    // One row per running worker: small (a row per worker), so no index beyond the key.
    private string WorkersSchemaSql() => $"""
        CREATE TABLE IF NOT EXISTS {_w} (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            processors INTEGER NOT NULL,
            running INTEGER NOT NULL DEFAULT 0,
            started_at INTEGER NOT NULL,
            last_beat_at INTEGER NOT NULL,
            alive_until INTEGER NOT NULL,
            stop_requested INTEGER NOT NULL DEFAULT 0,
            processor_type TEXT NULL);
        """;

    // A queue created by an older version is recorded as upgraded once the newer schema's objects exist.
    private const string UpgradeVersionSql = "UPDATE perfectqueue_schema SET version = @version WHERE table_name = @table AND version < @version";

    // A queue of schema version 1 has no sessions table: the first worker that registers creates it (and
    // records the version), inside the registration's write transaction.
    private void CreateWorkersTableIfMissing(SqliteConnection c)
    {
        if (!WorkersTableExists(c))
        {
            c.Execute(WorkersSchemaSql());
            c.Execute(UpgradeVersionSql, new { table = _table, version = SchemaVersion });
        }
    }
}
