using Dapper;
using Npgsql;

namespace PerfectQueue.Storage.Postgres;

// The database's queue tables, for tab completion of -Table (IQueueStore.ListQueueTablesAsync).
internal sealed partial class PostgresQueueStore
{
    // to_regclass resolves on the search_path, as the store's own statements do; quote_ident keeps the name's case.
    private const string ListQueueTablesSql = """
        SELECT table_name FROM perfectqueue_schema
        WHERE to_regclass(quote_ident(table_name)) IS NOT NULL
        ORDER BY table_name LIMIT 1000
        """;

    public async Task<IReadOnlyList<string>> ListQueueTablesAsync(CancellationToken ct)
    {
        try
        {
            return await Run(async c => (IReadOnlyList<string>)(await c.QueryAsync<string>(new CommandDefinition(ListQueueTablesSql, cancellationToken: ct)).ConfigureAwait(false)).AsList(),
                RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return []; // no perfectqueue_schema: no queue was initialized in this database
        }
    }
}
