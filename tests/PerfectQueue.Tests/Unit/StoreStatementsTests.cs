using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>
/// Every store lists its statement texts under the shared operation names (StoreStatements), so one operation
/// reads side by side across dialects. No server is needed: the stores are only constructed.
/// </summary>
public sealed class StoreStatementsTests
{
    private const string Table = "inventory_q";

    /// <summary>Every backend of the registry: a new one is checked without a line here.</summary>
    public static TheoryData<string> Stores() => [.. QueueBackends.Providers];

    private static IEnumerable<(string Name, string Sql)> StatementsOf(string provider)
    {
        var backend = QueueBackends.ForProvider(provider)!;
        // The first URL example builds a store without connecting (no server, no file is touched).
        using var store = backend.OpenUrl(backend.UrlExamples[0], Table);
        var inventory = Assert.IsAssignableFrom<StoreStatements.IInventory>(store);
        return inventory.Statements().ToList();
    }

    // Statements SQL Server sends besides the operations: its schema, upgrade and error-probing batches.
    private static bool IsSqlServerExtra(string name) =>
        name.StartsWith("schema.", StringComparison.Ordinal) || name.StartsWith("initialize.", StringComparison.Ordinal)
        || name is "is_initialized" or "probe_missing_table" or "rollback_open_transaction" or "worker.tables";

    [Theory]
    [MemberData(nameof(Stores))]
    public void Every_store_lists_a_statement_for_every_operation(string backend)
    {
        var listed = StatementsOf(backend).Select(s => StoreStatements.OperationOf(s.Name)).ToHashSet();
        var missing = StoreStatements.Operations.Except(listed).ToList();
        Assert.True(missing.Count == 0, $"{backend} lists no statement for: {string.Join(", ", missing)}");
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public void Every_listed_statement_belongs_to_an_operation_and_names_the_queue_tables(string backend)
    {
        foreach (var (name, sql) in StatementsOf(backend).Where(s => !(backend == "sqlserver" && IsSqlServerExtra(s.Name))))
        {
            Assert.Contains(StoreStatements.OperationOf(name), StoreStatements.Operations);
            // The queue table listing is database-wide: it reads perfectqueue_schema, not one queue's table.
            var expected = name == "tables" ? StoreNames.SchemaTable : Table;
            if (name != "now") Assert.True(sql.Contains(expected, StringComparison.Ordinal), $"{backend} {name} does not name {expected}: {sql}");
        }
    }

    [Fact]
    public void Statement_names_map_to_their_operation()
    {
        Assert.Equal("apply", StoreStatements.OperationOf("apply.finish"));
        Assert.Equal("list", StoreStatements.OperationOf("list(keys,first)"));
        Assert.Equal("worker.beat", StoreStatements.OperationOf("worker.beat"));
        Assert.Equal("request_cancel", StoreStatements.OperationOf("request_cancel.key_visible"));
        Assert.Equal("acquire", StoreStatements.OperationOf("acquire.lock_users"));
    }
}
