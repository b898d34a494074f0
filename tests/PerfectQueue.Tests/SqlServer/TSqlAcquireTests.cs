using Microsoft.SqlServer.TransactSql.ScriptDom;
using PerfectQueue.Storage.SqlServer;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

/// <summary>
/// The shape of SQL Server's acquire (issue 9), checked without a server: candidates per user beside the
/// oldest due tasks, and only the rows leased are locked (rank first, then lock in rank order up to @max).
/// </summary>
public sealed class TSqlAcquireTests
{
    private const string Table = "tasks_test";
    private static readonly SqlServerQueueStore Store = new("Server=localhost;Database=pq;Integrated Security=true", Table, "sqlserver://localhost/pq (table tasks_test)");
    private static string Sql(string name) => Store.Statements().Single(s => s.Name == name).Sql;

    [Fact]
    public void Acquire_locks_only_up_to_max_rows_in_rank_order()
    {
        var sql = Sql("acquire");
        var fragment = TSqlTree.Parse(sql);
        var locking = TSqlTree.Find<NamedTableReference>(fragment).Where(t => t.TableHints.Any(h => h.HintKind == TableHintKind.UpdLock)).ToList();
        var locked = Assert.Single(locking);
        Assert.Contains(locked.TableHints, h => h.HintKind == TableHintKind.ReadPast);
        // The locking read is an INSERT ... SELECT TOP (@max) over the ranked rows, in rank order, with the
        // ranked rows driving the seeks, so it stops locking once @max rows are held.
        var insert = Assert.Single(TSqlTree.Find<InsertSpecification>(fragment), i => sql.Substring(i.StartOffset, i.FragmentLength).Contains("UPDLOCK"));
        var select = (QuerySpecification)((SelectInsertSource)insert.InsertSource).Select;
        Assert.Equal("@max", Assert.IsType<VariableReference>(((ParenthesisExpression)select.TopRowFilter.Expression).Expression).Name);
        Assert.Equal("r.ord", sql.Substring(select.OrderByClause.OrderByElements[0].StartOffset, select.OrderByClause.OrderByElements[0].FragmentLength));
        var text = sql.Substring(insert.StartOffset, sql.IndexOf("OPTION (FORCE ORDER, LOOP JOIN, MAXDOP 1)", insert.StartOffset, StringComparison.Ordinal) - insert.StartOffset);
        Assert.Contains("FROM @ranked AS r", text);
        // No other read of the table holds locks: every other reference reads past locks without taking them.
        Assert.All(TSqlTree.Find<NamedTableReference>(fragment).Where(t => t.SchemaObject.BaseIdentifier.Value == Table && t != locked),
            t => Assert.DoesNotContain(t.TableHints, h => h.HintKind is TableHintKind.UpdLock or TableHintKind.XLock or TableHintKind.HoldLock));
        // The ranking is counted for the caller, before the rows (the last result is the task rows).
        Assert.True(sql.IndexOf("SELECT COUNT(*) AS [Ranked] FROM @ranked", StringComparison.Ordinal) > sql.IndexOf("COMMIT TRANSACTION", StringComparison.Ordinal));
    }

    [Fact]
    public void Acquire_gathers_a_quota_of_candidates_per_user_beside_the_oldest_due_tasks()
    {
        var sql = Sql("acquire");
        Assert.Contains("WHILE @next IS NOT NULL", sql);                                  // the loose scan over users
        Assert.Contains("user_name > @next ORDER BY user_name", sql);
        Assert.Equal(2, CountOf(sql, "SELECT TOP (@quota) id, user_name, max_running, due_at"));   // before and after the user locks
        Assert.Equal(2, CountOf(sql, "SELECT TOP (@scan) c.id"));
        // A user's @quota oldest due tasks are read whatever their limit and only the limited ones kept, so the seek
        // is bounded (filtering on max_running inside it walked every task of a user without one; docs/performance.md).
        Assert.Contains("WHERE user_name = a.u AND finished_at IS NULL AND due_at <= @now AND", sql);
        Assert.DoesNotContain("WHERE user_name = a.u AND finished_at IS NULL AND due_at <= @now AND max_running IS NOT NULL", sql);
        Assert.Contains("WHERE p.max_running IS NOT NULL AND NOT", sql);
        Assert.Contains("SELECT DISTINCT cu FROM chosen WHERE ord <= @scan", sql);         // at most @scan users are try-locked
    }

    [Fact]
    public void The_per_user_candidates_have_a_filtered_index()
    {
        var sql = Sql("schema.v1.index_user_due");
        var index = Assert.Single(TSqlTree.Find<CreateIndexStatement>(TSqlTree.Parse(sql)));
        Assert.Equal(["user_name", "due_at", "id"], index.Columns.Select(c => c.Column.MultiPartIdentifier.Identifiers[^1].Value));
        Assert.EndsWith("WHERE finished_at IS NULL", sql.TrimEnd(';', ' ', '\n'));
    }

    [Fact]
    public void A_heartbeat_never_extends_an_expired_lease()
    {
        Assert.Contains("t.lease_token = w.wtok AND t.finished_at IS NULL AND t.due_at > @now", Sql("heartbeat"));
    }

    private static int CountOf(string text, string part)
    {
        var n = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
