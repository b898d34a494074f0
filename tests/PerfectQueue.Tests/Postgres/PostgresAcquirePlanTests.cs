using System.Text.Json;
using Npgsql;
using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests.Postgres;

/// <summary>
/// Acquire reads O(batch + limited users) rows, never the backlog (docs/performance.md): each case runs both
/// acquire statements under EXPLAIN (ANALYZE, FORMAT JSON) on a backlog of 3,000 due tasks and counts the rows
/// its scans read (returned plus removed by a filter). Counted rows, not time: the same on a loaded machine.
/// </summary>
[Backend("postgresql")]
public sealed class PostgresAcquirePlanTests(PostgresTarget target) : IClassFixture<PostgresTarget>
{
    private const int Backlog = 3000;

    // Users without a limit: the per-user seek read every due task of each while looking for limited ones.
    [BackendFact]
    public void Users_without_a_limit_are_not_walked() => AssertBounded("'u' || (g % 10)", "NULL");

    // One limited user: the loose scan's last row (NULL, no more users) reached the per-user seek, which then
    // walked the whole due index.
    [BackendFact]
    public void One_limited_user_does_not_walk_the_due_index() => AssertBounded("'u'", "4");

    // A table autovacuum has not analyzed yet (every fresh queue for its first minute): the re-check of the chosen
    // rows filtered the table by `id = ANY(ids)`, and without statistics the planner walked the due index for it.
    [BackendFact]
    public void A_table_never_analyzed_is_not_walked() => AssertBounded("NULL", "NULL", analyze: false);

    // No task has a user: nothing to rank for, so acquire walks the due index under SKIP LOCKED and reads only
    // what it leases (a batch of 4 and the same rows again by primary key for the lease), never the 116 candidates.
    [BackendFact]
    public void A_queue_without_users_reads_only_the_rows_it_leases()
    {
        AssertBounded("NULL", "NULL", analyze: false, most: 12);
        AssertBounded("NULL", "NULL", most: 12);
    }

    private void AssertBounded(string user, string maxRunning, bool analyze = true, long most = 1000)
    {
        var config = target.NewConfig();
        using var queue = Queue.Open(config);
        queue.Initialize();
        var statements = ((StoreStatements.IInventory)queue.Store).Statements().ToDictionary(s => s.Name, s => s.Sql);
        using var c = PostgresTarget.Connect();
        Exec(c, $"""
            INSERT INTO "{config.Table}" (task_key, task_type, user_name, max_running, created_at, due_at)
            SELECT 'k' || g, 't', {user}, {maxRunning}, 0, g FROM generate_series(1, {Backlog}) AS g;
            {(analyze ? $"ANALYZE \"{config.Table}\"" : $"ALTER TABLE \"{config.Table}\" SET (autovacuum_enabled = false)")}
            """);
        using var tx = c.BeginTransaction();
        Exec(c, Storage.Postgres.PostgresQueueStore.AcquirePlannerSettings, tx); // as the store's acquire transaction
        var read = RowsRead(c, tx, statements["acquire.lock_users"]) + RowsRead(c, tx, statements["acquire"]);
        // A batch of 4 looks at Scan(4) = 116 rows plus Quota(4) per user, each read about twice across the two
        // statements; a walk of the backlog reads thousands.
        Assert.InRange(read, 1, most);
        tx.Rollback();
    }

    private static long RowsRead(NpgsqlConnection c, NpgsqlTransaction tx, string sql)
    {
        using var cmd = new NpgsqlCommand("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, c, tx);
        foreach (var (name, value) in new (string, object)[] { ("scan", AcquireSql.Scan(4)), ("quota", AcquireSql.Quota(4)), ("ns", 1), ("max", 4), ("alive", 60_000L), ("token", 65536L) })
            cmd.Parameters.AddWithValue(name, value);
        cmd.Parameters.Add(new NpgsqlParameter("session", NpgsqlTypes.NpgsqlDbType.Text) { Value = DBNull.Value });
        using var plan = JsonDocument.Parse((string)cmd.ExecuteScalar()!);
        return ScanRows(plan.RootElement[0].GetProperty("Plan"));
    }

    // Rows that index and table scans of the task table produced or filtered out, over all their loops.
    private static long ScanRows(JsonElement node)
    {
        long rows = 0;
        if (node.GetProperty("Node Type").GetString()!.Contains("Scan", StringComparison.Ordinal) && node.TryGetProperty("Relation Name", out var relation)
            && !relation.GetString()!.EndsWith("_pauses", StringComparison.Ordinal))
        {
            var removed = node.TryGetProperty("Rows Removed by Filter", out var r) ? r.GetDouble() : 0;
            rows += (long)((node.GetProperty("Actual Rows").GetDouble() + removed) * node.GetProperty("Actual Loops").GetDouble());
        }
        if (node.TryGetProperty("Plans", out var children))
            foreach (var child in children.EnumerateArray()) rows += ScanRows(child);
        return rows;
    }

    private static void Exec(NpgsqlConnection c, string sql, NpgsqlTransaction? tx = null)
    {
        using var cmd = new NpgsqlCommand(sql, c, tx);
        cmd.ExecuteNonQuery();
    }
}
