using Microsoft.SqlServer.TransactSql.ScriptDom;
using PerfectQueue.Storage.SqlServer;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

/// <summary>
/// The shape of SQL Server's restart, remove and filtered listings (no server here; TSqlParseTests and
/// TSqlSemanticTests parse and resolve them with every other statement).
/// </summary>
public sealed class TSqlFinishedTaskTests
{
    private static readonly SqlServerQueueStore Store = new("Server=localhost;Database=pq;Integrated Security=true", "tasks_test", "d");
    private static string Sql(string name) => Store.Statements().Single(s => s.Name == name).Sql;

    [Fact]
    public void Restart_changes_only_a_visible_finished_row_and_records_it_for_the_answer()
    {
        var sql = Sql("restart");
        var update = Assert.Single(TSqlTree.Find<UpdateSpecification>(TSqlTree.Parse(sql, new TSql160Parser(true))));
        Assert.NotNull(update.OutputIntoClause);
        var where = sql.Substring(update.WhereClause.StartOffset, update.WhereClause.FragmentLength);
        Assert.Contains("task_key = @key AND finished_at IS NOT NULL AND (purge_at IS NULL OR purge_at > @now)", where);
        foreach (var set in new[] { "attempts = 0", "lease_token = NULL", "cancel_requested = 0", "finished_at = NULL", "outcome = NULL", "message = NULL", "purge_at = NULL",
            "due_at = COALESCE(@runAt, @now + COALESCE(@delay, 0))" })
            Assert.Contains(set, sql);
        Assert.Contains("N'Live'", sql);
    }

    [Fact]
    public void Remove_deletes_only_a_visible_finished_row_and_its_attempts_in_one_transaction()
    {
        var sql = Sql("remove");
        var tree = TSqlTree.Parse(sql, new TSql160Parser(true));
        var deletes = TSqlTree.Find<DeleteSpecification>(tree).ToList();
        Assert.Equal(2, deletes.Count);
        var task = deletes[0];
        Assert.NotNull(task.OutputIntoClause);
        Assert.Contains("finished_at IS NOT NULL", sql.Substring(task.WhereClause.StartOffset, task.WhereClause.FragmentLength));
        var attempts = sql.Substring(deletes[1].StartOffset, deletes[1].FragmentLength);
        Assert.Contains("tasks_test_attempts", attempts);
        Assert.Contains("task_id IN (SELECT id FROM @hit)", attempts);
        Assert.Single(TSqlTree.Find<BeginTransactionStatement>(tree));
        Assert.Single(TSqlTree.Find<CommitTransactionStatement>(tree));
    }

    [Fact]
    public void Key_patterns_match_under_the_binary_collation_and_newest_orders_by_creation()
    {
        var sql = Sql("list(statuses,outcomes,patterns,newest)");
        Assert.Contains("task_key LIKE kp.v COLLATE Latin1_General_100_BIN2", sql);
        Assert.Contains("outcome IN ('Failed')", sql);
        Assert.Contains("TOP (@newest)", sql);
        Assert.Contains("ORDER BY created_at DESC, id DESC", sql);
        Assert.Contains("(task_key IN (SELECT v COLLATE Latin1_General_100_BIN2", Sql("list(keys,patterns,first)"));
    }
}
