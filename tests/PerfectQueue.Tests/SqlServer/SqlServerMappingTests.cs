using System.Data;
using Dapper;
using Microsoft.SqlServer.TransactSql.ScriptDom;
using PerfectQueue.Storage;
using PerfectQueue.Storage.SqlServer;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

/// <summary>
/// The rows SQL Server returns carry SqlClient's CLR types (bigint: Int64, smallint: Int16, ...). Without a
/// server, this feeds a reader with exactly the columns a statement selects (names from its aliases, types
/// from the table definition) to the same Dapper mapping the store uses.
/// </summary>
public sealed class SqlServerMappingTests
{
    private static readonly SqlServerQueueStore Store = new("Server=localhost;Database=pq;Integrated Security=true", "tasks_test", "d");
    private static readonly Dictionary<string, (string Name, string Sql, object? Parameters)> Statements = Store.Statements().ToDictionary(s => s.Name);

    private static TSqlFragment Parse(string sql) => TSqlTree.Parse(sql, new TSql160Parser(true));

    private static List<T> Find<T>(TSqlFragment fragment) where T : TSqlFragment => TSqlTree.Find<T>(fragment);

    private static Type ClrType(SqlDataTypeOption type) => type switch
    {
        SqlDataTypeOption.BigInt => typeof(long),
        SqlDataTypeOption.Int => typeof(int),
        SqlDataTypeOption.SmallInt => typeof(short),
        SqlDataTypeOption.NVarChar => typeof(string),
        SqlDataTypeOption.VarBinary => typeof(byte[]),
        SqlDataTypeOption.Bit => typeof(bool),
        _ => throw new InvalidOperationException(type.ToString()),
    };

    // The tables as the schema steps make them (version 3's columns included).
    private static readonly TSqlSchema Schema = TSqlSchema.From(Store.Statements().Where(s => s.Name.StartsWith("schema.v", StringComparison.Ordinal)).Select(s => s.Sql));

    private static Dictionary<string, Type> TypesOf(string table) =>
        Schema.Tables[table].ToDictionary(c => c.Key, c => ClrType(((SqlDataTypeReference)c.Value!).SqlDataTypeOption));

    private static readonly Dictionary<string, Type> ColumnTypes = TypesOf("tasks_test");

    // The result columns of the statement's last SELECT, typed as SqlClient would return them.
    private static DataTable ResultOf(string statement)
    {
        var select = (QuerySpecification)Find<SelectStatement>(Parse(Statements[statement].Sql)).Last().QueryExpression;
        var table = new DataTable();
        foreach (var element in select.SelectElements.Cast<SelectScalarExpression>())
        {
            var type = element.Expression switch
            {
                ColumnReferenceExpression c => ColumnTypes[c.MultiPartIdentifier.Identifiers[^1].Value],
                VariableReference { Name: "@now" } => typeof(long),
                _ => throw new InvalidOperationException(element.Expression.GetType().Name),
            };
            table.Columns.Add(element.ColumnName.Value, type);
        }
        return table;
    }

    [Theory]
    [InlineData("get")]
    [InlineData("get_by_ids")]
    [InlineData("acquire")]
    [InlineData("list(keys,types,users,statuses,first)")]
    public void Task_rows_map_every_column(string statement)
    {
        var table = ResultOf(statement);
        Assert.Equal(21, table.Columns.Count);
        var values = new Dictionary<string, object>
        {
            ["Id"] = 42L, ["Key"] = "k1", ["Type"] = "backup", ["User"] = "team-a", ["Data"] = new byte[] { 0x7B, 0x7D, 0x00 },
            ["MaxRunning"] = 2, ["CreatedAt"] = 1_700_000_000_000L, ["DueAt"] = 1_700_000_030_000L, ["LeaseToken"] = 0x3FFF_FFFF_FFFF_0001L,
            ["Attempts"] = 3, ["CancelRequested"] = (short)1, ["FinishedAt"] = 1_700_000_040_000L, ["Outcome"] = "Succeeded",
            ["Message"] = "done", ["PurgeAt"] = 1_700_000_340_000L, ["TimeoutMs"] = 600_000L, ["Now"] = 1_700_000_000_500L,
            ["LeasedBy"] = "0123456789ab", ["LeasedAt"] = 1_700_000_000_100L, ["LastRunMs"] = 1_234L,
            ["TraceParent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        };
        table.Rows.Add(table.Columns.Cast<DataColumn>().Select(c => values[c.ColumnName]).ToArray());
        var row = Assert.Single(table.CreateDataReader().Parse<TaskRow>());
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", row.TraceParent);
        Assert.Equal(42, row.Id);
        Assert.Equal("k1", row.Key);
        Assert.Equal("backup", row.Type);
        Assert.Equal("team-a", row.User);
        Assert.Equal([0x7B, 0x7D, 0x00], row.Data);
        Assert.Equal(2, row.MaxRunning);
        Assert.Equal(1_700_000_000_000L, row.CreatedAt);
        Assert.Equal(1_700_000_030_000L, row.DueAt);
        Assert.Equal(0x3FFF_FFFF_FFFF_0001L, row.LeaseToken);
        Assert.Equal(3, row.Attempts);
        Assert.True(row.CancelRequested);
        Assert.Equal(1_700_000_040_000L, row.FinishedAt);
        Assert.Equal("Succeeded", row.Outcome);
        Assert.Equal("done", row.Message);
        Assert.Equal(1_700_000_340_000L, row.PurgeAt);
        Assert.Equal(600_000L, row.TimeoutMs);
        Assert.Equal("0123456789ab", row.LeasedBy);
        Assert.Equal(1_700_000_000_100L, row.LeasedAt);
        Assert.Equal(1_234L, row.LastRunMs);
        Assert.Equal(1_700_000_000_500L, row.Now);
    }

    [Fact]
    public void Nulls_map_to_nullable_members()
    {
        var table = ResultOf("get");
        var row = table.NewRow();
        foreach (DataColumn c in table.Columns) row[c] = DBNull.Value;
        row["Id"] = 1L; row["Key"] = "k"; row["Type"] = "t"; row["CreatedAt"] = 5L; row["Attempts"] = 0; row["CancelRequested"] = (short)0; row["Now"] = 6L;
        table.Rows.Add(row);
        var mapped = Assert.Single(table.CreateDataReader().Parse<TaskRow>());
        Assert.Null(mapped.User);
        Assert.Null(mapped.Data);
        Assert.Null(mapped.MaxRunning);
        Assert.Null(mapped.DueAt);
        Assert.Null(mapped.LeaseToken);
        Assert.Null(mapped.FinishedAt);
        Assert.Null(mapped.PurgeAt);
        Assert.Null(mapped.TimeoutMs);
        Assert.Null(mapped.LeasedBy);
        Assert.Null(mapped.LeasedAt);
        Assert.Null(mapped.LastRunMs);
        Assert.Null(mapped.TraceParent);
        Assert.False(mapped.CancelRequested);
    }

    [Theory]
    [InlineData("worker.list")]
    [InlineData("worker.request_stop")]
    public void Worker_session_rows_map_every_column_and_a_null_processor_type(string statement)
    {
        var types = TypesOf("tasks_test_workers");
        var select = (QuerySpecification)Find<SelectStatement>(Parse(Statements[statement].Sql)).Last().QueryExpression;
        var table = new DataTable();
        foreach (var element in select.SelectElements.Cast<SelectScalarExpression>())
            table.Columns.Add(element.ColumnName.Value, element.Expression is ColumnReferenceExpression c ? types[c.MultiPartIdentifier.Identifiers[^1].Value] : typeof(long));
        Assert.Equal(11, table.Columns.Count);
        table.Rows.Add("3f9a1c07be42", "host-a", 4242, 4, 2, 1L, 2L, 3L, (short)1, "process", 4L);
        table.Rows.Add("3f9a1c07be43", "host-a", 4243, 4, 2, 1L, 2L, 3L, (short)0, DBNull.Value, 4L);
        var rows = table.CreateDataReader().Parse<WorkerSessionRow>().ToList();
        Assert.Equal("process", rows[0].ProcessorType);
        Assert.True(rows[0].StopRequested);
        Assert.Equal(3L, rows[0].AliveUntil);
        Assert.Null(rows[1].ProcessorType);
    }

    [Fact]
    public void Heartbeat_rows_map_to_id_and_cancel_flag()
    {
        // The rows are selected from the table variable the UPDATE's OUTPUT went INTO, with its declared types.
        var fragment = Parse(Statements["heartbeat"].Sql);
        var declared = Assert.Single(Find<DeclareTableVariableBody>(fragment)).Definition.ColumnDefinitions
            .ToDictionary(c => c.ColumnIdentifier.Value, c => ClrType(((SqlDataTypeReference)c.DataType).SqlDataTypeOption));
        var select = (QuerySpecification)Find<SelectStatement>(fragment).Last().QueryExpression;
        var table = new DataTable();
        foreach (var element in select.SelectElements.Cast<SelectScalarExpression>())
        {
            var column = ((ColumnReferenceExpression)element.Expression).MultiPartIdentifier.Identifiers[^1].Value;
            Assert.Equal(ColumnTypes[column], declared[column]); // as in the task table
            table.Columns.Add(element.ColumnName.Value, declared[column]);
        }
        Assert.Equal([typeof(long), typeof(short)], table.Columns.Cast<DataColumn>().Select(c => c.DataType));
        table.Rows.Add(42L, (short)1);
        var (id, cancel) = Assert.Single(table.CreateDataReader().Parse<(long Id, short CancelRequested)>());
        Assert.Equal(42, id);
        Assert.Equal(1, cancel);
    }
}
