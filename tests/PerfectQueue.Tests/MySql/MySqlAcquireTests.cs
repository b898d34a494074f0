using System.Collections.Concurrent;
using MySqlConnector;
using PerfectQueue.Tests.Conformance;
using Xunit;
using Xunit.Abstractions;

namespace PerfectQueue.Tests.MySql;

/// <summary>
/// How the MySQL/MariaDB acquire keeps max_running without a global lock (per-user lock rows in
/// <c>&lt;table&gt;_users</c>, FOR UPDATE SKIP LOCKED), and that connections killed in the middle of acquires and
/// writes lose no task (docs/backends-mysql.md, "Acquire").
/// </summary>
[Backend("mysql")]
public sealed class MySqlAcquireTests(MySqlTarget target, ITestOutputHelper output) : BackendSuite(target), IClassFixture<MySqlTarget>
{
    private static SubmitOptions Limited(string user, int max) => new() { User = user, MaxRunning = max };

    private static void Exec(MySqlConnection c, string sql)
    {
        using var cmd = new MySqlCommand(sql, c);
        cmd.ExecuteNonQuery();
    }

    [BackendFact]
    public void A_user_whose_lock_row_another_transaction_holds_is_skipped_and_everyone_else_is_served()
    {
        var q = Open();
        var table = q.Config.Table;
        for (var i = 0; i < 3; i++) q.Submit($"a{i}", "t", null, Limited("a", 2));
        q.Submit("b0", "t", null, Limited("b", 1));
        q.Submit("free", "t");

        // Another acquirer, as it were, in the middle of its transaction: it holds user a's lock row.
        using var other = MySqlServer.Connect();
        Exec(other, $"INSERT INTO `{table}_users` (user_name) VALUES ('a') ON DUPLICATE KEY UPDATE user_name = user_name");
        using var tx = other.BeginTransaction();
        using (var cmd = new MySqlCommand($"SELECT user_name FROM `{table}_users` WHERE user_name = 'a' FOR UPDATE", other, tx)) cmd.ExecuteScalar();

        var first = q.PollMulti(10).Select(t => t.Key).Order().ToList();
        Assert.Equal(["b0", "free"], first);                  // no wait, and nothing of a's

        tx.Rollback();                                         // the other acquirer is done
        var second = q.PollMulti(10).Select(t => t.Key).ToList();
        Assert.Equal(2, second.Count);                        // a's limit, no more
        Assert.All(second, k => Assert.StartsWith("a", k));
        Assert.Empty(q.PollMulti(10));
    }

    [BackendFact]
    public void Acquirers_on_eight_connections_at_once_lease_exactly_each_users_limit()
    {
        var q = Open();
        var limits = new Dictionary<string, int> { ["u1"] = 1, ["u2"] = 3, ["u3"] = 4 };
        var batch = new List<TaskSubmission>();
        foreach (var (user, max) in limits)
            for (var i = 0; i < 30; i++) batch.Add(new TaskSubmission($"{user}-{i}", "t", null, Limited(user, max)));
        for (var i = 0; i < 20; i++) batch.Add(new TaskSubmission($"none-{i}", "t", null, null));
        Assert.All(q.SubmitMany(batch), Assert.True);

        var clients = Enumerable.Range(0, 8).Select(_ => OpenAnother(q)).ToList();
        var leased = new ConcurrentBag<AcquiredTask>();
        using var start = new Barrier(clients.Count);
        var threads = clients.Select(client => new Thread(() =>
        {
            start.SignalAndWait();
            for (var round = 0; round < 6; round++)
                foreach (var t in client.PollMulti(4, TimeSpan.FromMinutes(5))) leased.Add(t);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        var byUser = leased.Where(t => t.User is not null).GroupBy(t => t.User!).ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine(string.Join(", ", byUser.Select(kv => $"{kv.Key}: {kv.Value}")));
        foreach (var (user, max) in limits) Assert.Equal(max, byUser.GetValueOrDefault(user));
        Assert.Equal(20, leased.Count(t => t.User is null));
        Assert.Equal(leased.Count, leased.Select(t => t.Key).Distinct().Count()); // nothing leased twice
        // And the database agrees: what runs per user is what was handed out.
        var running = q.List(new TaskFilter { Statuses = [TaskState.Running] }).Where(t => t.User is not null).GroupBy(t => t.User!).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(byUser, running);
    }

    [BackendFact]
    public async Task Connections_killed_in_the_middle_of_acquires_and_finishes_lose_no_task()
    {
        var q = Open();
        var table = q.Config.Table;
        const int total = 200;
        Assert.All(q.SubmitMany(Enumerable.Range(0, total).Select(i =>
            new TaskSubmission($"k{i:D2}", "t", null, i % 3 == 0 ? Limited($"u{i % 2}", 2) : null))), Assert.True);
        var alive = TimeSpan.FromSeconds(2); // a lease a killed commit left behind expires soon

        using var killing = new CancellationTokenSource();
        var killsInAcquire = 0;
        var kills = 0;
        // The workers start once the killer is connected: under load its connect alone could outlast the drain.
        var killerReady = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var killer = Task.Run(() =>
        {
            using var admin = MySqlServer.Connect();
            killerReady.SetResult();
            while (!killing.IsCancellationRequested)
            {
                var victims = new List<(long Id, string Info)>();
                using (var list = new MySqlCommand(
                    "SELECT id, info FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND info LIKE @table", admin))
                {
                    list.Parameters.AddWithValue("@table", $"%`{table}`%");
                    using var r = list.ExecuteReader();
                    while (r.Read()) victims.Add((r.GetInt64(0), r.GetString(1)));
                }
                foreach (var (id, info) in victims.Take(1))
                {
                    try { Exec(admin, $"KILL CONNECTION {id}"); }
                    catch (MySqlException) { continue; } // it ended by itself
                    kills++;
                    if (info.Contains("SKIP LOCKED", StringComparison.Ordinal) || info.Contains("ROW_NUMBER", StringComparison.Ordinal) || info.Contains("lease_token = @token", StringComparison.Ordinal))
                        killsInAcquire++;
                }
                Thread.Sleep(2);
            }
        });

        await killerReady.Task;
        var errors = new ConcurrentQueue<string>();
        var workers = Enumerable.Range(0, 4).Select(_ => OpenAnother(q)).Select(client => Task.Run(() =>
        {
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (DateTime.UtcNow < deadline)
            {
                try
                {
                    var got = client.PollMulti(3, alive);
                    foreach (var t in got)
                    {
                        try { t.Finish(); }
                        catch (Exception e) when (e is not OutOfMemoryException) { errors.Enqueue("finish: " + e.GetType().Name); }
                    }
                    if (got.Count > 0) Thread.Sleep(30); // work, so that the drain outlasts a good part of the kills
                    if (got.Count == 0 && killing.IsCancellationRequested && !client.List(new TaskFilter { Statuses = [TaskState.Waiting, TaskState.Running, TaskState.Scheduled] }).Any())
                        return;
                }
                catch (Exception e) when (e is not OutOfMemoryException) { errors.Enqueue("poll: " + e.GetType().Name); }
            }
        })).ToList();

        // The kills go on for 3 s while the workers drain, and longer (up to 20 s) until one hit an acquire.
        var killingFor = System.Diagnostics.Stopwatch.StartNew();
        while (killingFor.Elapsed < TimeSpan.FromSeconds(3) || (Volatile.Read(ref killsInAcquire) == 0 && killingFor.Elapsed < TimeSpan.FromSeconds(20)))
            await Task.Delay(50);
        killing.Cancel();
        await killer;
        await Task.WhenAll(workers);

        output.WriteLine($"{kills} connections killed, {killsInAcquire} in an acquire; client errors: {string.Join(", ", errors.GroupBy(e => e).Select(g => $"{g.Key} x{g.Count()}"))}");
        Assert.True(killsInAcquire > 0, $"the test should kill connections in the middle of acquires ({kills} kills, none in one)");
        var tasks = q.List();
        Assert.Equal(total, tasks.Count);
        Assert.All(tasks, t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome)); // nothing stuck, nothing lost
    }
}
