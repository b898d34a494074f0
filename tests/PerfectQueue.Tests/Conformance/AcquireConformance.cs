using System.Collections.Concurrent;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Conformance cases for acquire (issue 9): fairness reaches users whose tasks lie beyond the oldest due
/// tasks, max_running holds there too under concurrent acquirers, and concurrent acquirers never come back
/// empty while due tasks nobody holds remain. Runs on every backend.
/// </summary>
public abstract class AcquireConformance(IBackendTarget target) : BackendSuite(target)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(10);

    private static IEnumerable<TaskSubmission> Tasks(string prefix, int count, DateTimeOffset from, string? user = null, int? maxRunning = null) =>
        Enumerable.Range(0, count).Select(i => new TaskSubmission($"{prefix}{i:D5}", "t", null,
            new SubmitOptions { User = user, MaxRunning = maxRunning, RunAt = from.AddMilliseconds(i) }));

    [BackendFact]
    public void The_weight_reaches_a_user_whose_tasks_are_behind_another_users_backlog()
    {
        // The review's numbers: A (max_running 1000) has 600 due tasks; B (max_running 5, none running)
        // submits 5 later. By the weight, A's k-th running task weighs 1000 / k, B's first 5: B's turn comes
        // once A runs 200 (1000/200 = 5 ties, and ties go by due time), at poll 201. Before candidates were
        // picked per user, B was not even looked at until A's backlog shrank to the scan window (poll ~498).
        var q = Open();
        var now = q.Now();
        Assert.All(q.SubmitMany(Tasks("a", 600, now.AddMinutes(-10), "A", 1000)), Assert.True);
        Assert.All(q.SubmitMany(Tasks("b", 5, now.AddMinutes(-1), "B", 5)), Assert.True);

        var firstB = 0;
        for (var poll = 1; poll <= 600 && firstB == 0; poll++)
            if (q.Poll(Long)!.User == "B") firstB = poll;
        Assert.InRange(firstB, 200, 202);
    }

    [BackendFact]
    public void A_user_with_spare_capacity_is_served_at_once_after_another_users_backlog_of_ten_thousand()
    {
        var q = Open();
        var now = q.Now();
        Assert.All(q.SubmitMany(Tasks("a", 10_000, now.AddMinutes(-30), "A")), Assert.True);             // no limit: weight 1
        Assert.All(q.SubmitMany(Tasks("c", 3, now, "C", 5)), Assert.True);                               // weights 5, 5/2, 5/3; the newest of all

        var users = Enumerable.Range(0, 4).Select(_ => q.Poll(Long)!.User).ToList();
        Assert.Equal(["C", "C", "C", "A"], users);                                                        // C from the first poll on
    }

    [BackendFact]
    public void Max_running_holds_for_users_beyond_the_oldest_due_tasks_under_concurrent_acquirers()
    {
        var limits = new Dictionary<string, int> { ["u1"] = 1, ["u2"] = 2, ["u3"] = 3 };
        var q = Open();
        var now = q.Now();
        var total = 0;
        // A backlog of unlimited tasks comes first, so the limited users' tasks are found per user.
        Assert.All(q.SubmitMany(Tasks("flood", 400, now.AddMinutes(-10), "flood")), Assert.True);
        total += 400;
        foreach (var (user, max) in limits)
        {
            Assert.All(q.SubmitMany(Tasks(user, 40, now.AddMinutes(-1), user, max)), Assert.True);
            total += 40;
        }

        var violations = new ConcurrentQueue<string>();
        var failures = new ConcurrentQueue<Exception>();
        var holding = new ConcurrentDictionary<string, int>();
        var done = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var threads = Enumerable.Range(0, 8).Select(_ => new Thread(() =>
        {
            try
            {
                using var mine = OpenAnother(q);
                while (Volatile.Read(ref done) < total && !stop.IsCancellationRequested)
                {
                    var batch = mine.PollMulti(3, Long);
                    if (batch.Count == 0) { Thread.Sleep(1); continue; }
                    foreach (var t in batch)
                        if (limits.TryGetValue(t.User!, out var max) && holding.AddOrUpdate(t.User!, 1, (_, n) => n + 1) > max)
                            violations.Enqueue($"{holding[t.User!]} held for {t.User} (max {max})");
                    foreach (var t in batch)
                    {
                        if (limits.ContainsKey(t.User!)) holding.AddOrUpdate(t.User!, 0, (_, n) => n - 1);
                        t.Finish();
                        Interlocked.Increment(ref done);
                    }
                }
            }
            catch (Exception e) { failures.Enqueue(e); stop.Cancel(); }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.Empty(failures);
        Assert.False(stop.IsCancellationRequested, "the acquirers did not drain the queue in time");
        Assert.Empty(violations);
        Assert.Equal(total, Volatile.Read(ref done));
    }

    [BackendFact]
    public void Concurrent_one_task_polls_never_come_back_empty_while_due_tasks_nobody_holds_remain()
    {
        // 16 pollers, each polling twice back to back, over 40 due tasks: at most 16 polls are in flight, so
        // at least 40 - 32 tasks are due and unheld throughout, and no poll may come back empty.
        const int pollers = 16, pollsEach = 2, due = 40, rounds = 5;
        var q = Open();
        var clients = Enumerable.Range(0, pollers).Select(_ => OpenAnother(q)).ToList();
        var empties = 0;
        var failures = new ConcurrentQueue<Exception>();
        for (var round = 0; round < rounds; round++)
        {
            Assert.All(q.SubmitMany(Tasks($"r{round}-", due, q.Now().AddSeconds(-1))), Assert.True);
            var held = new ConcurrentBag<AcquiredTask>();
            using var start = new Barrier(pollers);
            var threads = clients.Select(client => new Thread(() =>
            {
                try
                {
                    start.SignalAndWait();
                    for (var i = 0; i < pollsEach; i++)
                    {
                        if (client.Poll(Long) is { } t) held.Add(t);
                        else Interlocked.Increment(ref empties);
                    }
                }
                catch (Exception e) { failures.Enqueue(e); }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.Empty(failures);
            Assert.Equal(held.Count, held.Select(t => t.Key).Distinct().Count());   // no task handed out twice
            foreach (var t in held) t.Finish();
        }
        Assert.Equal(0, empties);
    }
}
