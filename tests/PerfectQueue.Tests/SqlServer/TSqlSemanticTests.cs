using PerfectQueue.Storage;
using PerfectQueue.Storage.SqlServer;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

/// <summary>
/// Deeper than parsing, still without a server (issue 11): over every statement the SQL Server store lists,
/// columns resolve against the store's own CREATE TABLE statements (and table variables, CTEs, derived
/// tables, OPENJSON WITH lists), parameters are the ones the store passes with a suitable type, READPAST
/// always has READCOMMITTEDLOCK beside it, OUTPUT on the store's tables always goes INTO a table variable,
/// and acquire's largest batch stays below lock escalation. Each check is shown to fail on a broken copy
/// of a real statement.
/// </summary>
public sealed class TSqlSemanticTests
{
    private const string Table = "tasks_test";
    private static readonly SqlServerQueueStore Store = new("Server=localhost;Database=pq;Integrated Security=true", Table, "sqlserver://localhost/pq (table tasks_test)");
    private static readonly IReadOnlyList<(string Name, string Sql, object? Parameters)> All = Store.Statements().ToList();
    private static (string Name, string Sql, object? Parameters) Statement(string name) => All.Single(s => s.Name == name);

    // The tables as the store's schema steps make them, in order: the task table, its sessions table and
    // perfectqueue_schema, with the version-3 columns and every index.
    private static readonly TSqlSchema Schema = TSqlSchema.From(All.Where(s => s.Name.StartsWith("schema.v", StringComparison.Ordinal)).Select(s => s.Sql));

    public static TheoryData<string> StatementNames() => new(All.Select(s => s.Name));

    [Fact]
    public void The_schema_is_read_from_the_stores_own_create_table_statements()
    {
        Assert.Equal(["perfectqueue_schema", Table, Table + "_attempts", Table + "_pauses", Table + "_schedules", Table + "_workers"], Schema.Tables.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("timeout_ms", Schema.Tables[Table].Keys);
        Assert.Contains("processor_type", Schema.Tables[Table + "_workers"].Keys);
        Assert.Contains(Schema.Indexes, i => i.Index == Table + "_due");
    }

    [Theory]
    [MemberData(nameof(StatementNames))]
    public void Every_column_resolves_against_what_the_statement_reads(string name) =>
        Assert.Empty(TSqlChecks.UnresolvedColumns(name, Statement(name).Sql, Schema));

    [Theory]
    [MemberData(nameof(StatementNames))]
    public void Every_parameter_is_one_the_store_passes_with_a_suitable_type(string name)
    {
        var (_, sql, parameters) = Statement(name);
        Assert.Empty(TSqlChecks.ParameterProblems(name, sql, parameters, Schema));
    }

    [Theory]
    [MemberData(nameof(StatementNames))]
    public void Every_READPAST_has_READCOMMITTEDLOCK_beside_it(string name) =>
        Assert.Empty(TSqlChecks.ReadPastWithoutReadCommittedLock(name, Statement(name).Sql));

    [Theory]
    [MemberData(nameof(StatementNames))]
    public void No_OUTPUT_on_the_stores_tables_goes_to_the_client(string name) =>
        Assert.Empty(TSqlChecks.OutputWithoutInto(name, Statement(name).Sql, Schema));

    [Fact]
    public void The_largest_acquire_batch_stays_below_lock_escalation()
    {
        // Queue.MaxBatch is the most one acquire is asked for (Receive-PQTask, the worker): the locking read
        // holds at most that many rows (TOP (@max), checked in TSqlAcquireTests) and the lease UPDATE moves them.
        Assert.Empty(TSqlChecks.LockEscalationProblems("acquire", Statement("acquire").Sql, Schema, Table, Queue.MaxBatch));
        // The reads that gather candidates (READCOMMITTEDLOCK: a lock per row, released as the row is read)
        // keep none; even so, the most rows one of them visits stays below the threshold.
        Assert.True(AcquireSql.Scan(Queue.MaxBatch) < TSqlChecks.LockEscalationThreshold);
        // Cleanup deletes at most its limit a statement (the engine asks for 1000), a key lock per index per row.
        Assert.Empty(TSqlChecks.LockEscalationProblems("cleanup", Statement("cleanup").Sql, Schema, Table, 1000));
    }

    // ---- each check fails on a broken copy of a real statement ----

    private static string Broken(string name, string part, string replacement)
    {
        var sql = Statement(name).Sql;
        Assert.Contains(part, sql);
        var at = sql.IndexOf(part, StringComparison.Ordinal);
        return sql[..at] + replacement + sql[(at + part.Length)..];
    }

    [Theory]
    [InlineData("apply", "t.lease_token = w.wtok", "t.lease_tokn = w.wtok", "t.lease_tokn is not a column of tasks_test")]           // a table column
    [InlineData("apply", "t.lease_token = w.wtok", "t.lease_token = w.wtoken", "w.wtoken is not a column of OPENJSON")]              // an OPENJSON WITH column
    [InlineData("acquire", "INSERT INTO @ranked (ord, id)", "INSERT INTO @ranked (ord, cid)", "cid is not a column of any table")]   // a table variable's column
    [InlineData("acquire", "SELECT DISTINCT cu FROM chosen", "SELECT DISTINCT cuser FROM chosen", "cuser is not a column of any table")] // a CTE's column
    [InlineData("heartbeat", "inserted.cancel_requested", "inserted.cancel_request", "inserted.cancel_request is not a column of the target tasks_test")]
    [InlineData("worker.list", "ORDER BY started_at", "ORDER BY start_at", "start_at is not a column of any table")]              // the sessions table
    [InlineData("get", "FROM [tasks_test] WHERE", "FROM [tasks_tset] WHERE", "table 'tasks_tset' is not one the store creates")]
    public void The_column_check_reports_a_misspelled_column(string name, string part, string replacement, string problem)
    {
        var problems = TSqlChecks.UnresolvedColumns(name, Broken(name, part, replacement), Schema);
        Assert.Contains(problems, p => p.StartsWith(name + ": ", StringComparison.Ordinal) && p.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void The_parameter_check_reports_an_undeclared_parameter()
    {
        var (_, _, parameters) = Statement("heartbeat");
        var problems = TSqlChecks.ParameterProblems("heartbeat", Broken("heartbeat", "@now + @alive", "@now + @alive_ms"), parameters, Schema);
        Assert.Contains(problems, p => p.StartsWith("heartbeat: @alive_ms is neither declared in the batch nor passed by the store", StringComparison.Ordinal));
    }

    [Fact]
    public void The_parameter_check_reports_a_parameter_of_the_wrong_type()
    {
        // data as hex text where the column is varbinary(max): SQL Server would refuse the implicit conversion.
        var sql = Statement("update_data").Sql;
        var problems = TSqlChecks.ParameterProblems("update_data", sql, new { data = "0x7B7D", id = 42L, token = 7L }, Schema);
        Assert.Contains("update_data: @data is passed as String (text) but column data (VarBinary) needs binary", problems);
        problems = TSqlChecks.ParameterProblems("cleanup", Statement("cleanup").Sql, new { limit = "1000" }, Schema);
        Assert.Contains("cleanup: @limit is passed as String (text) but TOP needs integer", problems);
        // A comparison with a column, and a position in an INSERT ... SELECT.
        problems = TSqlChecks.ParameterProblems("get", Statement("get").Sql, new { key = 1L }, Schema);
        Assert.Contains("get: @key is passed as Int64 (integer) but column task_key (NVarChar) needs text", problems);
        // (the names the store passes, with pid as text)
        Assert.Equal(["alive", "host", "id", "pid", "processorType", "processors", "running"],
            Statement("worker.register").Parameters!.GetType().GetProperties().Select(p => p.Name).Order(StringComparer.Ordinal));
        problems = TSqlChecks.ParameterProblems("worker.register", Statement("worker.register").Sql,
            new { id = "w", host = "h", pid = "4242", processors = 4, running = 2, alive = 300_000L, processorType = "process" }, Schema);
        Assert.Contains("worker.register: @pid is passed as String (text) but column pid (Int) needs integer", problems);
    }

    [Fact]
    public void The_parameter_check_reports_a_parameter_declared_twice()
    {
        var (_, sql, _) = Statement("get");
        var problems = TSqlChecks.ParameterProblems("get", sql, new { key = "k1", now = 1L }, Schema);
        Assert.Contains(problems, p => p.StartsWith("get: the store passes @now, which the batch also declares", StringComparison.Ordinal));
    }

    [Fact]
    public void The_READPAST_check_reports_READPAST_alone()
    {
        var problems = TSqlChecks.ReadPastWithoutReadCommittedLock("cleanup", Broken("cleanup", "WITH (ROWLOCK, READPAST, READCOMMITTEDLOCK)", "WITH (ROWLOCK, READPAST)"));
        Assert.Equal(["cleanup: READPAST on tasks_test without READCOMMITTEDLOCK (error 650 under READ_COMMITTED_SNAPSHOT)"], problems);
        problems = TSqlChecks.ReadPastWithoutReadCommittedLock("acquire", Broken("acquire", "AS c WITH (READPAST, READCOMMITTEDLOCK)", "AS c WITH (READPAST)"));
        Assert.Equal(["acquire: READPAST on tasks_test AS c without READCOMMITTEDLOCK (error 650 under READ_COMMITTED_SNAPSHOT)"], problems);
    }

    [Fact]
    public void The_OUTPUT_check_reports_OUTPUT_without_INTO()
    {
        var problems = TSqlChecks.OutputWithoutInto("apply", Broken("apply", "OUTPUT inserted.id INTO @done (id)", "OUTPUT inserted.id"), Schema);
        Assert.Equal(["apply: OUTPUT without INTO on table tasks_test (fails with error 334 when the table has a trigger): OUTPUT ... INTO a table variable and select from it"], problems);
        // The heartbeat as it was before issue 11, and an OUTPUT on the sessions table.
        problems = TSqlChecks.OutputWithoutInto("heartbeat", """
            DECLARE @now bigint = 0;
            UPDATE t SET due_at = @now + @alive
            OUTPUT inserted.id AS [Id], inserted.cancel_requested AS [CancelRequested]
            FROM OPENJSON(@batch) WITH (wid bigint '$.id', wtok bigint '$.token') AS w
            INNER JOIN [tasks_test] AS t WITH (ROWLOCK, FORCESEEK) ON t.id = w.wid
            WHERE t.lease_token = w.wtok AND t.finished_at IS NULL AND t.due_at > @now;
            """, Schema);
        Assert.Equal(["heartbeat: OUTPUT without INTO on table tasks_test (fails with error 334 when the table has a trigger): OUTPUT ... INTO a table variable and select from it"], problems);
        problems = TSqlChecks.OutputWithoutInto("worker.request_stop", Broken("worker.request_stop",
            "INTO @hit (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)", ""), Schema);
        Assert.Single(problems, p => p.StartsWith("worker.request_stop: OUTPUT without INTO on table tasks_test_workers", StringComparison.Ordinal));
    }

    [Fact]
    public void The_lock_escalation_check_reports_an_oversized_batch()
    {
        // 2,500 rows: 5,000 key locks on each index whose keys the lease moves (due_at is in _due, _leased, _user_due).
        var problems = TSqlChecks.LockEscalationProblems("acquire", Statement("acquire").Sql, Schema, Table, 2500);
        Assert.Contains(problems, p => p.StartsWith($"acquire: updating 2500 rows takes about 5000 key locks on index {Table}_due", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.Contains($"index {Table}_key ", StringComparison.Ordinal)); // task_key does not change
        problems = TSqlChecks.LockEscalationProblems("acquire", Statement("acquire").Sql, Schema, Table, 5000);
        Assert.Contains(problems, p => p.Contains("takes 5000 locks on the clustered key of tasks_test", StringComparison.Ordinal));
    }
}
