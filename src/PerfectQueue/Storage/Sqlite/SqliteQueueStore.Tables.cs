using Dapper;

namespace PerfectQueue.Storage.Sqlite;

// The database's queue tables, for tab completion of -Table (IQueueStore.ListQueueTablesAsync).
internal sealed partial class SqliteQueueStore
{
    private const string ListQueueTablesSql = """
        SELECT s.table_name FROM perfectqueue_schema s
        WHERE EXISTS (SELECT 1 FROM sqlite_master m WHERE m.type = 'table' AND m.name = s.table_name)
        ORDER BY s.table_name LIMIT 1000
        """;

    public Task<IReadOnlyList<string>> ListQueueTablesAsync(CancellationToken ct) => Run(ct, () =>
        !File.Exists(FilePath) ? [] // a listing creates no database file
        : Read(c => TableExists(c, StoreNames.SchemaTable)
            ? (IReadOnlyList<string>)c.Query<string>(ListQueueTablesSql).AsList()
            : [], checkTable: false));
}
