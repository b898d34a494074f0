using Dapper;

namespace PerfectQueue.Storage.SqlServer;

// The database's queue tables, for tab completion of -Table (IQueueStore.ListQueueTablesAsync).
internal sealed partial class SqlServerQueueStore
{
    // Without perfectqueue_schema the batch selects nothing (deferred name resolution lets the IF guard it).
    private const string ListQueueTablesSql = """
        IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NOT NULL
            SELECT TOP (1000) table_name FROM perfectqueue_schema
            WHERE OBJECT_ID(QUOTENAME(table_name), N'U') IS NOT NULL
            ORDER BY table_name;
        """;

    public Task<IReadOnlyList<string>> ListQueueTablesAsync(CancellationToken ct) =>
        Run(async c => (IReadOnlyList<string>)(await c.QueryAsync<string>(Command(ListQueueTablesSql, null, null, ct)).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct, checkTable: false);
}
