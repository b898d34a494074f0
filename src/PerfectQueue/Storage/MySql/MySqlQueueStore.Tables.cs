using Dapper;
using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

// The database's queue tables, for tab completion of -Table (IQueueStore.ListQueueTablesAsync).
internal sealed partial class MySqlQueueStore
{
    // information_schema names are utf8 with their own collation: compare as binary, since table names on disk are exact.
    private const string ListQueueTablesSql = """
        SELECT s.table_name FROM perfectqueue_schema s
        WHERE EXISTS (SELECT 1 FROM information_schema.tables t
                      WHERE t.table_schema = DATABASE() AND CAST(t.table_name AS BINARY) = CAST(s.table_name AS BINARY))
        ORDER BY s.table_name LIMIT 1000
        """;

    public async Task<IReadOnlyList<string>> ListQueueTablesAsync(CancellationToken ct)
    {
        try
        {
            return await Run(async c => (IReadOnlyList<string>)(await c.QueryAsync<string>(Command(ListQueueTablesSql, null, ct)).ConfigureAwait(false)).AsList(),
                RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        }
        catch (MySqlException e) when (MySqlErrors.IsMissingTable(e.Number))
        {
            return []; // no perfectqueue_schema: no queue was initialized in this database
        }
    }
}
