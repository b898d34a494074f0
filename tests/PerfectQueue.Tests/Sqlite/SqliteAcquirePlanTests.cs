using System.Data.Common;
using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests.Sqlite;

/// <summary>Acquire reads O(batch) rows, never the backlog (docs/performance.md); checked on the plan SQLite picks.</summary>
[Backend("sqlite")]
public sealed class SqliteAcquirePlanTests(SqliteTarget target) : IClassFixture<SqliteTarget>
{
    // Once ANALYZE has run, SQLite counted running tasks through <table>_user_due, which also holds every task due
    // later: each acquire read all delayed tasks (seen with tasks of no user, or all of one user). The count
    // must read only leased rows. (Seen with the sqlite3 shell's 3.40; the bundled 3.53 picks <table>_leased
    // here by itself, so this guards the hint rather than reproducing the choice.)
    [BackendFact]
    public void The_running_count_reads_only_leased_rows_after_analyze()
    {
        var config = target.NewConfig();
        using var queue = Queue.Open(config);
        queue.Initialize();
        var acquire = ((StoreStatements.IInventory)queue.Store).Statements().Single(s => s.Name == "acquire").Sql;
        using var c = target.Connect(config);
        FillWithoutUsers(c, config.Table);
        var plan = Plan(c, acquire, ("now", 20000L), ("alive", 60_000L), ("max", 4), ("scan", AcquireSql.Scan(4)), ("quota", AcquireSql.Quota(4)), ("token", 65536L), ("session", DBNull.Value));
        var running = plan.Single(s => s.Detail == "MATERIALIZE running");
        var scans = plan.Where(s => s.Parent == running.Id).Select(s => s.Detail).ToList();
        Assert.True(scans.Any(d => d.Contains($"INDEX {config.Table}_leased", StringComparison.Ordinal)), string.Join(" | ", scans));
        Assert.DoesNotContain(scans, d => d.Contains("_user_due", StringComparison.Ordinal));
    }

    // Without users there is nothing to rank: the lease takes the @max oldest due tasks straight off <table>_due, in
    // index order (no sort of the backlog, no candidate window), and is chosen only while no unfinished task has a user.
    [BackendFact]
    public void A_queue_without_users_leases_off_the_due_index_and_the_probe_reads_the_user_index()
    {
        var config = target.NewConfig();
        using var queue = Queue.Open(config);
        queue.Initialize();
        var statements = ((StoreStatements.IInventory)queue.Store).Statements().ToDictionary(s => s.Name, s => s.Sql);
        using var c = target.Connect(config);
        FillWithoutUsers(c, config.Table);
        var lease = Plan(c, statements["acquire.without_users"], ("now", 20000L), ("alive", 60_000L), ("max", 4), ("token", 65536L), ("session", DBNull.Value)).ConvertAll(s => s.Detail);
        Assert.Contains(lease, d => d.Contains($"INDEX {config.Table}_due", StringComparison.Ordinal));
        Assert.False(lease.Any(d => d.Contains("TEMP B-TREE", StringComparison.Ordinal) || d is "SCAN c" || d.StartsWith($"SCAN {config.Table}", StringComparison.Ordinal)), string.Join(" | ", lease));
        var probe = Plan(c, statements["acquire.any_user"]).ConvertAll(s => s.Detail);
        Assert.Contains(probe, d => d.Contains($"INDEX {config.Table}_user_due", StringComparison.Ordinal));
        Assert.DoesNotContain(probe, d => d.Contains("TEMP B-TREE", StringComparison.Ordinal));
    }

    // 11,000 due tasks of no user, one in eleven due far later, then ANALYZE.
    private static void FillWithoutUsers(DbConnection c, string table) => Exec(c, $"""
        WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 11000)
        INSERT INTO "{table}" (task_key, task_type, user_name, created_at, due_at, attempts, cancel_requested)
        SELECT 'k' || n, 't', NULL, 0, CASE WHEN n % 11 = 0 THEN 9000000000000 ELSE n END, 0, 0 FROM g;
        ANALYZE
        """);

    private static List<(long Id, long Parent, string Detail)> Plan(DbConnection c, string sql, params (string Name, object Value)[] values)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "EXPLAIN QUERY PLAN " + sql;
        foreach (var (name, value) in values)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = "@" + name;
            p.Value = value;
            cmd.Parameters.Add(p);
        }
        var plan = new List<(long Id, long Parent, string Detail)>();
        using (var r = cmd.ExecuteReader())
            while (r.Read()) plan.Add((r.GetInt64(0), r.GetInt64(1), r.GetString(3)));
        return plan;
    }

    private static void Exec(DbConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
