using PerfectQueue.Tests.Workers;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Pauses (issue 12, docs/pause.md), on every backend: acquire leases no waiting task a pause covers (the whole
/// queue, a type, a user, or a type of a user) and every other one as before; a resume makes them acquirable
/// again; running tasks, submits, cancels and force finishes are unaffected; max_running holds; pausing is
/// idempotent and resuming removes exactly the scope named; UntilEmpty does not wait for paused tasks.
/// </summary>
public abstract class PauseConformance(IBackendTarget target) : BackendSuite(target)
{
    private static readonly TimeSpan Alive = TimeSpan.FromSeconds(30);

    private static void Submit(Queue q, string key, string type, string? user = null, int? maxRunning = null) =>
        q.Submit(key, type, null, new SubmitOptions { User = user, MaxRunning = maxRunning });

    private static List<string> Keys(IEnumerable<AcquiredTask> tasks) => tasks.Select(t => t.Key).Order(StringComparer.Ordinal).ToList();

    [BackendFact]
    public void A_whole_queue_pause_stops_every_acquire_accepts_submits_and_a_resume_frees_the_tasks()
    {
        var q = Open();
        Submit(q, "a", "backup");
        Submit(q, "b", "report", "team-a", maxRunning: 2);
        var pause = q.Pause(reason: "database maintenance");
        Assert.True(pause.Created);
        Assert.True(pause.IsWholeQueue);
        Assert.Equal("database maintenance", pause.Reason);
        Assert.Contains("@", pause.PausedBy);

        Assert.Empty(q.PollMulti(10, Alive));
        Assert.Empty(OpenAnother(q).PollMulti(10, Alive));    // another client sees the pause at once
        Submit(q, "c", "backup");                            // submits are still accepted
        Assert.Empty(q.PollMulti(10, Alive));
        Assert.Equal(TaskState.Waiting, q["c"].GetInfo().Status);

        var resumed = q.Resume();
        Assert.NotNull(resumed);
        Assert.True(resumed.IsWholeQueue);
        Assert.Equal(["a", "b", "c"], Keys(q.PollMulti(10, Alive)));
    }

    [BackendFact]
    public void A_type_pause_holds_back_only_that_type_and_its_resume_frees_it()
    {
        var q = Open();
        Submit(q, "b1", "backup");
        Submit(q, "b2", "backup", "team-a", maxRunning: 5);
        Submit(q, "r1", "report");
        Submit(q, "r2", "report", "team-a", maxRunning: 5);
        q.Pause("backup");

        Assert.Equal(["r1", "r2"], Keys(q.PollMulti(10, Alive)));
        Assert.Empty(q.PollMulti(10, Alive));
        Assert.NotNull(q.Resume("backup"));
        Assert.Equal(["b1", "b2"], Keys(q.PollMulti(10, Alive)));
    }

    [BackendFact]
    public void A_user_pause_holds_back_that_users_tasks_limited_or_not_and_nobody_elses()
    {
        var q = Open();
        Submit(q, "a1", "t", "team-a", maxRunning: 2);
        Submit(q, "a2", "t", "team-a", maxRunning: 2);
        Submit(q, "a3", "t", "team-a");                       // unlimited task of the same user
        Submit(q, "b1", "t", "team-b", maxRunning: 1);
        Submit(q, "n1", "t");                                 // no user: only a whole-queue pause holds it
        q.Pause(user: "team-a");

        Assert.Equal(["b1", "n1"], Keys(q.PollMulti(10, Alive)));
        Assert.Empty(q.PollMulti(10, Alive));
        q.Resume(user: "team-a");
        Assert.Equal(["a1", "a2", "a3"], Keys(q.PollMulti(10, Alive)));
    }

    [BackendFact]
    public void A_pause_of_a_type_of_one_user_holds_back_only_that_combination()
    {
        var q = Open();
        Submit(q, "ab", "backup", "team-a");
        Submit(q, "ar", "report", "team-a");
        Submit(q, "bb", "backup", "team-b");
        Submit(q, "nb", "backup");
        var pause = q.Pause("backup", "team-a");
        Assert.Equal("type 'backup' of user 'team-a'", pause.Scope);

        Assert.Equal(["ar", "bb", "nb"], Keys(q.PollMulti(10, Alive)));
        Assert.Null(q.Resume("backup"));                      // not this scope: nothing changes
        Assert.Null(q.Resume(user: "team-a"));
        Assert.Empty(q.PollMulti(10, Alive));
        Assert.NotNull(q.Resume("backup", "team-a"));
        Assert.Equal(["ab"], Keys(q.PollMulti(10, Alive)));
    }

    [BackendFact]
    public void Pausing_again_keeps_the_first_pause_and_resume_removes_exactly_the_scope_named()
    {
        var q = Open();
        var first = q.Pause("backup", reason: "first");
        var again = q.Pause("backup", reason: "second");
        Assert.True(first.Created);
        Assert.False(again.Created);
        Assert.Equal("first", again.Reason);
        Assert.Equal(first.Since, again.Since);
        q.Pause();
        q.Pause(user: "team-a");
        Assert.Equal(["the whole queue", "type 'backup'", "user 'team-a'"], q.ListPauses().Select(p => p.Scope).Order(StringComparer.Ordinal).ToList());

        Assert.Equal("type 'backup'", q.Resume("backup")!.Scope);
        Assert.Null(q.Resume("backup"));                      // resumed already
        Assert.Equal(["the whole queue", "user 'team-a'"], q.ListPauses().Select(p => p.Scope).Order(StringComparer.Ordinal).ToList());
        Submit(q, "x", "backup");
        Assert.Empty(q.PollMulti(10, Alive));                 // the whole-queue pause still holds
    }

    [BackendFact]
    public async Task A_task_running_when_the_pause_comes_heartbeats_and_finishes_and_waiting_ones_can_be_cancelled_or_finished()
    {
        var q = Open();
        Submit(q, "run", "backup");
        var running = Assert.Single(q.PollMulti(1, Alive));
        Submit(q, "wait1", "backup");
        Submit(q, "wait2", "backup");
        Submit(q, "wait3", "backup");
        q.Pause();

        Assert.Equal(HeartbeatResult.Alive, running.Heartbeat(Alive));
        await running.UpdateDataAsync(new Dictionary<string, object?> { ["step"] = 2 });
        running.Finish("done");
        Assert.Equal(TaskOutcome.Succeeded, q["run"].GetInfo().Outcome);
        Assert.Equal(TaskState.Finished, q["wait1"].CancelRequest());      // a paused waiting task is nobody's: cancelled at once
        q["wait2"].ForceFinish("not needed");
        Assert.Equal(TaskOutcome.ForceFinished, q["wait2"].GetInfo().Outcome);
        Assert.Empty(q.PollMulti(10, Alive));
        q.Resume();
        Assert.Equal(["wait3"], Keys(q.PollMulti(10, Alive)));
    }

    [BackendFact]
    public void Max_running_is_kept_for_a_user_while_another_is_paused()
    {
        var q = Open();
        for (var i = 0; i < 3; i++) Submit(q, $"a{i}", "t", "team-a", maxRunning: 2);
        for (var i = 0; i < 3; i++) Submit(q, $"b{i}", "t", "team-b", maxRunning: 2);
        q.Pause(user: "team-b");
        Assert.Equal(["a0", "a1"], Keys(q.PollMulti(10, Alive)));
        Assert.Empty(q.PollMulti(10, Alive));                 // team-a at its limit, team-b paused
        q.Resume(user: "team-b");
        Assert.Equal(["b0", "b1"], Keys(q.PollMulti(10, Alive)));
        Assert.Empty(q.PollMulti(10, Alive));
    }

    [BackendFact]
    public void Listing_with_counts_says_how_many_waiting_tasks_each_pause_holds_back()
    {
        var q = Open();
        Submit(q, "b1", "backup", "team-a");
        Submit(q, "b2", "backup");
        Submit(q, "r1", "report", "team-a");
        q.Submit("later", "backup", null, new SubmitOptions { Delay = TimeSpan.FromHours(1) }); // scheduled: not waiting
        Assert.Equal(0, q.CountPaused());
        q.Pause("backup");
        q.Pause(user: "team-a");

        var pauses = q.ListPauses(counts: true).ToDictionary(p => p.Scope);
        Assert.Equal(2, pauses["type 'backup'"].Waiting);
        Assert.Equal(2, pauses["user 'team-a'"].Waiting);
        Assert.Null(q.ListPauses().First().Waiting);          // without counts: not counted
        Assert.Equal(3, q.CountPaused());                     // b1 is held by both pauses, counted once
    }

    [BackendFact]
    public async Task UntilEmpty_does_not_wait_for_paused_tasks_and_says_how_many_it_left()
    {
        var q = Open();
        Submit(q, "b1", "backup");
        Submit(q, "b2", "backup");
        Submit(q, "r1", "report");
        q.Pause("backup");
        Assert.True(await q.AnyDueOrRunningAsync(default));   // r1 is due and not paused

        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var options = new WorkerOptions { Processors = 2, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = Alive, HeartbeatInterval = TimeSpan.FromMilliseconds(200), UntilEmpty = true };
        var worker = new Worker(q, options, _ => new DelegateProcessor((_, _) => Task.CompletedTask), e => log.Enqueue(e.Message));
        var summary = await worker.RunAsync(default, default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(1, summary.Succeeded);                   // r1 ran; the paused ones were left
        Assert.False(await q.AnyDueOrRunningAsync(default));
        Assert.Contains(log, m => m.StartsWith("paused: type 'backup'", StringComparison.Ordinal));
        Assert.Contains(log, m => m.StartsWith("2 waiting task(s) are paused", StringComparison.Ordinal));
        Assert.Equal(TaskState.Waiting, q["b1"].GetInfo().Status);
        q.Resume("backup");
        Assert.True(await q.AnyDueOrRunningAsync(default));
    }

    [BackendFact]
    public async Task No_acquire_that_starts_after_a_pause_was_stored_leases_a_task_of_its_scope_under_concurrent_acquirers()
    {
        var q = Open();
        q.SubmitMany(Enumerable.Range(0, 1200).Select(i => new TaskSubmission($"k{i:D4}", i % 2 == 0 ? "backup" : "report", null,
            new SubmitOptions { User = i % 3 == 0 ? $"u{i % 4}" : null, MaxRunning = i % 3 == 0 ? 50 : null })));
        var paused = 0;                                       // 1 once Pause has returned: the pause is committed
        var violations = new System.Collections.Concurrent.ConcurrentBag<string>();
        var acquiresAfter = 0;
        var clients = Enumerable.Range(0, 4).Select(_ => OpenAnother(q)).ToList();
        var acquirers = clients.Select(c => Task.Run(() =>
        {
            while (Volatile.Read(ref acquiresAfter) < 40)
            {
                var startedAfterPause = Volatile.Read(ref paused) == 1;
                var got = c.PollMulti(5, Alive);
                if (!startedAfterPause) continue;
                Interlocked.Increment(ref acquiresAfter);
                foreach (var t in got.Where(t => t.Type == "backup")) violations.Add(t.Key);
                if (got.Count == 0) break;                    // nothing but paused tasks left
            }
        })).ToList();
        while (q.List(new TaskFilter { Statuses = [TaskState.Running] }).Count < 20) await Task.Delay(1);
        q.Pause("backup");
        Volatile.Write(ref paused, 1);
        await Task.WhenAll(acquirers).WaitAsync(TimeSpan.FromSeconds(120));
        Assert.Empty(violations);
        Assert.True(acquiresAfter > 0);
    }

    [BackendFact]
    public void A_scope_no_task_could_have_is_refused_and_nothing_is_stored()
    {
        var q = Open();
        var e = Assert.Throws<ArgumentException>(() => q.Pause(" backup"));
        Assert.Contains("white space", e.Message);
        Assert.Throws<ArgumentException>(() => q.Pause(user: new string('u', 300)));
        Assert.Throws<ArgumentException>(() => q.Resume("bad\u0000type"));
        Assert.Empty(q.ListPauses());
        Submit(q, "k", "backup");
        Assert.Single(q.PollMulti(10, Alive));
    }

    [BackendFact]
    public void A_long_reason_is_cut_and_a_blank_one_is_none()
    {
        var q = Open();
        Assert.Null(q.Pause("a", reason: "   ").Reason);
        var cut = q.Pause("b", reason: new string('r', 10_000)).Reason!;
        Assert.True(cut.Length <= Queue.MaxPauseReasonLength);
        Assert.Equal(cut, q.ListPauses().Single(p => p.Type == "b").Reason);
    }
}
