using System.Text.Json.Nodes;
using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Attempt history and failure notices on every backend (<c>&lt;table&gt;_attempts</c>, schema version 6, docs/history.md):
/// a row per ended attempt, written with the fenced write that ended it and only when that write applied; gaps shown
/// as Lost; cleaned with the task; never inherited by a task that reuses its key (and row); a TaskFailed notice
/// submitted once, in the same transaction, and never at the cost of the task's own write.
/// </summary>
public abstract class HistoryConformance(IBackendTarget target) : BackendSuite(target)
{
    private static readonly TimeSpan LiveLease = TimeSpan.FromMinutes(5);

    private Queue OpenFast(int? maxAttempts = null, TimeSpan? retention = null) => Open(c =>
    {
        c.RetryWait = TimeSpan.Zero;
        c.MaxAttempts = maxAttempts;
        if (retention is { } r) c.RetentionTime = r;
    });

    private static AcquiredTask PollKey(Queue q, string key, TimeSpan? lease = null) =>
        Eventually.Get(() => q.Poll(lease ?? LiveLease) is { } t ? (t.Key == key ? t : throw new InvalidOperationException($"polled {t.Key}")) : null, $"task {key} to be due");

    private long AttemptRows(Queue q, string key)
    {
        using var c = Target.Connect(q.Settings);
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT COUNT(*) FROM \"{q.Settings.Table}_attempts\" WHERE task_key = '{key}'";
        return Convert.ToInt64(cmd.ExecuteScalar());
    }

    [BackendFact]
    public void A_task_retried_twice_then_finished_has_three_attempts_with_their_outputs_in_order()
    {
        var q = OpenFast();
        q.Submit("h1", "backup");
        for (var n = 1; n <= 2; n++)
        {
            var t = PollKey(q, "h1");
            Assert.Equal(n, t.Attempt);
            t.Output.Append("output", $"try {n}");
            t.Output.Append("warning", $"careful {n}");
            Assert.True(t.Retry($"boom {n}", TimeSpan.Zero));
        }
        var last = PollKey(q, "h1");
        last.WorkerSession = "host:1:abc";
        last.ProcessorName = "thread";
        last.Output.Append("output", "done at last");
        last.Finish("ok");

        var history = q.GetHistory("h1")!;
        Assert.Equal([1, 2, 3], history.Select(a => a.Attempt));
        Assert.Equal(["Retried", "Retried", "Succeeded"], history.Select(a => a.Outcome));
        Assert.Equal(["boom 1", "boom 2", "ok"], history.Select(a => a.Message));
        Assert.Equal("[output] try 1\n[warning] careful 1", history[0].Output);
        Assert.Equal("[output] try 2\n[warning] careful 2", history[1].Output);
        Assert.Equal("[output] done at last", history[2].Output);
        Assert.Equal(["client", "client", "thread"], history.Select(a => a.Processor));
        Assert.Equal("host:1:abc", history[2].WorkerSession);
        Assert.Null(history[0].WorkerSession);
        Assert.All(history, a =>
        {
            Assert.Equal("h1", a.Key);
            Assert.Equal(Environment.MachineName, a.Host);
            Assert.True(a.StartedAt <= a.EndedAt, $"{a.StartedAt:O} <= {a.EndedAt:O}");
            Assert.True(a.Duration >= TimeSpan.Zero);
        });
        Assert.True(history[0].EndedAt <= history[1].StartedAt && history[1].EndedAt <= history[2].StartedAt);
        Assert.Null(q.GetHistory("no-such-task"));
    }

    [BackendFact]
    public void A_write_whose_lease_was_lost_records_no_attempt_and_the_gap_shows_as_Lost()
    {
        var q = OpenFast();
        var other = OpenAnother(q);
        q.Submit("h2", "backup");
        var stale = q.Poll(TimeSpan.FromMilliseconds(300))!;
        Eventually.True(() => q.Now() > stale.LeaseExpiresAt, "the first lease to expire");
        var live = PollKey(other, "h2");
        stale.Output.Append("output", "from the stale holder");
        Assert.Throws<PreemptedException>(() => stale.Finish("stale"));
        Assert.Equal(0, AttemptRows(q, "h2"));

        // While the second attempt runs, the first has no row: Lost; the running one is not listed yet.
        var running = q.GetHistory("h2")!;
        Assert.Equal([(1, "Lost")], running.Select(a => (a.Attempt, a.Outcome)));
        Assert.Null(running[0].StartedAt);

        live.Finish("fine");
        var history = q.GetHistory("h2")!;
        Assert.Equal([(1, "Lost"), (2, "Succeeded")], history.Select(a => (a.Attempt, a.Outcome)));
        Assert.Equal(1, AttemptRows(q, "h2"));
    }

    [BackendFact]
    public void Released_and_timed_out_attempts_are_recorded_and_a_release_does_not_count()
    {
        var q = OpenFast();
        q.Submit("h3", "backup");
        PollKey(q, "h3").Release();
        var t = PollKey(q, "h3");
        Assert.Equal(1, t.Attempt);
        t.RetriedAs = "TimedOut";
        t.Retry("timed out after 1 s", TimeSpan.Zero);
        PollKey(q, "h3").Finish(TaskOutcome.Cancelled, "stop");
        Assert.Equal([(1, "Released"), (1, "TimedOut"), (2, "Cancelled")], q.GetHistory("h3")!.Select(a => (a.Attempt, a.Outcome)));
    }

    [BackendFact]
    public void A_group_commit_records_the_attempts_of_exactly_the_writes_that_applied()
    {
        var q = OpenFast();
        foreach (var k in new[] { "g1", "g2", "g3", "g4" }) q.Submit(k, "backup");
        var tasks = q.PollMulti(4, LiveLease).OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        Assert.Equal(4, tasks.Count);
        AttemptRecord Rec(AcquiredTask t, string outcome) => new(t.StoredCreatedAt, t.Key, t.Attempt, 0, "h", null, "thread", outcome, null, "[output] " + t.Key);
        var stale = new Lease(tasks[3].Lease.Id, tasks[3].Lease.Token + 1_000_000); // a token the row never had
        var applied = q.Store.ApplyAsync(
        [
            new LeaseWrite(tasks[0].Lease, LeaseWriteKind.Finish, "Succeeded", "ok", RetentionMs: 60_000) { Attempt = Rec(tasks[0], "Succeeded") },
            new LeaseWrite(tasks[1].Lease, LeaseWriteKind.Retry, Message: "again", DelayMs: 0) { Attempt = Rec(tasks[1], "Retried") },
            new LeaseWrite(tasks[2].Lease, LeaseWriteKind.Release) { Attempt = Rec(tasks[2], "Released") },
            new LeaseWrite(stale, LeaseWriteKind.Finish, "Succeeded", "stale", RetentionMs: 60_000) { Attempt = Rec(tasks[3], "Succeeded") },
        ], default).GetAwaiter().GetResult();
        Assert.Equal(new[] { tasks[0].Lease.Id, tasks[1].Lease.Id, tasks[2].Lease.Id }.Order(), applied.Order());
        Assert.Equal("Succeeded", Assert.Single(q.GetHistory("g1")!).Outcome);
        Assert.Equal("[output] g2", Assert.Single(q.GetHistory("g2")!).Output);
        Assert.Equal("Released", Assert.Single(q.GetHistory("g3")!).Outcome);
        Assert.Equal(0, AttemptRows(q, "g4"));
    }

    private static TaskInfo? Notice(Queue q, string key) =>
        q.List(new TaskFilter { Types = [Notices.DefaultType] }).SingleOrDefault(n => (string?)n.Data["key"] == key);

    [BackendFact]
    public void A_task_that_spends_its_attempts_submits_one_TaskFailed_notice_with_its_data()
    {
        var q = OpenFast(maxAttempts: 2);
        q.Submit("f1", "backup");
        var created = q["f1"].GetInfo().CreatedAt;
        Assert.True(PollKey(q, "f1").Retry("disk full"));
        Assert.False(PollKey(q, "f1").Retry("disk still full"));
        Assert.Equal(TaskOutcome.Failed, q["f1"].GetInfo().Outcome);

        var notices = q.List(new TaskFilter { Types = [Notices.DefaultType] });
        var notice = Assert.Single(notices);
        Assert.Equal(Notices.FailedKey("f1", created), notice.Key);
        Assert.Equal("TaskFailed", (string?)notice.Data["event"]);
        Assert.Equal("f1", (string?)notice.Data["key"]);
        Assert.Equal("backup", (string?)notice.Data["type"]);
        Assert.Equal(2, (int?)notice.Data["attempts"]);
        Assert.Contains("disk still full", (string?)notice.Data["message"]);
        Assert.Equal([(1, "Retried"), (2, "Failed")], q.GetHistory("f1")!.Select(a => (a.Attempt, a.Outcome)));
    }

    [BackendFact]
    public void A_notice_key_already_taken_neither_fails_the_finish_nor_replaces_the_notice()
    {
        var q = OpenFast(maxAttempts: 1);
        q.Submit("f2", "backup");
        var key = Notices.FailedKey("f2", q["f2"].GetInfo().CreatedAt);
        q.Submit(key, Notices.DefaultType, new { note = "already here" }, new SubmitOptions { Delay = TimeSpan.FromHours(1) });
        Assert.False(PollKey(q, "f2").Retry("broken"));

        var info = q["f2"].GetInfo();
        Assert.Equal(TaskOutcome.Failed, info.Outcome);
        Assert.Contains("broken", info.Message);
        var kept = q[key].GetInfo();
        Assert.Equal("already here", (string?)kept.Data["note"]);
        Assert.Equal(TaskState.Scheduled, kept.Status);
        Assert.Equal("Failed", Assert.Single(q.GetHistory("f2")!).Outcome);
    }

    [BackendFact]
    public void A_failed_notice_submits_no_notice_of_itself()
    {
        var q = OpenFast(maxAttempts: 1);
        q.Submit("n1", Notices.DefaultType, new { @event = "TaskFailed" });
        Assert.False(PollKey(q, "n1").Retry("webhook down"));
        Assert.Equal(["n1"], q.List().Select(t => t.Key));
    }

    [BackendFact]
    public void Notices_off_submit_nothing()
    {
        var q = Open(c => { c.RetryWait = TimeSpan.Zero; c.MaxAttempts = 1; c.NoticeType = ""; });
        q.Submit("f3", "backup");
        Assert.False(PollKey(q, "f3").Retry("x"));
        Assert.Equal(["f3"], q.List().Select(t => t.Key));
    }

    [BackendFact]
    public void A_task_failed_at_acquire_because_its_last_attempt_was_lost_submits_a_notice()
    {
        var q = OpenFast(maxAttempts: 1);
        q.Submit("f4", "backup");
        var dead = q.Poll(TimeSpan.FromMilliseconds(300))!; // its worker dies: it never writes
        Eventually.True(() => q.Now() > dead.LeaseExpiresAt, "the lease to expire");
        Assert.Null(q.Poll(LiveLease)); // the acquire finishes it instead of handing it out
        Assert.Equal(TaskOutcome.Failed, q["f4"].GetInfo().Outcome);
        var notice = Notice(q, "f4");
        Assert.NotNull(notice);
        Assert.Equal(1, (int?)notice.Data["attempts"]);
        Assert.Equal([(1, "Lost")], q.GetHistory("f4")!.Select(a => (a.Attempt, a.Outcome)));
    }

    [BackendFact]
    public void Cleanup_deletes_the_attempts_with_their_task()
    {
        var q = OpenFast(retention: TimeSpan.FromMilliseconds(200));
        q.Submit("c1", "backup");
        q.Submit("c2", "backup", options: new SubmitOptions { Delay = TimeSpan.FromHours(1) });
        PollKey(q, "c1").Finish("done");
        Assert.Equal(1, AttemptRows(q, "c1"));
        Eventually.True(() => q.Store.CleanupAsync(100, default).GetAwaiter().GetResult() > 0 || AttemptRows(q, "c1") == 0, "cleanup to delete the finished row");
        Assert.Equal(0, AttemptRows(q, "c1"));
        Assert.Null(q.GetHistory("c1"));
    }

    [BackendFact]
    public void A_key_resubmitted_after_its_retention_starts_with_no_history()
    {
        var q = OpenFast(retention: TimeSpan.FromMilliseconds(200));
        q.Submit("r1", "backup");
        PollKey(q, "r1").Retry("first life", TimeSpan.Zero);
        PollKey(q, "r1").Finish("old");
        Assert.Equal(2, AttemptRows(q, "r1")); // counted in SQL: the short retention may already hide the task from readers
        Eventually.True(() =>
        {
            try { q.Submit("r1", "backup"); return true; }
            catch (AlreadyExistsException) { return false; }
        }, "the key to be free again");
        Assert.Empty(q.GetHistory("r1")!);
        PollKey(q, "r1").Finish("new");
        var history = q.GetHistory("r1")!;
        Assert.Equal([(1, "Succeeded", "new")], history.Select(a => (a.Attempt, a.Outcome, a.Message)));
    }

    [BackendFact]
    public void Deleting_the_attempts_of_task_ids_removes_only_theirs()
    {
        var q = OpenFast();
        q.Submit("d1", "backup");
        q.Submit("d2", "backup");
        PollKey(q, "d1").Finish("a");
        PollKey(q, "d2").Finish("b");
        var id = q.Store.GetAsync("d1", default).GetAwaiter().GetResult()!.Id;
        Assert.Equal(1, ((IHistoryStore)q.Store).DeleteAttemptsAsync([id], default).GetAwaiter().GetResult());
        Assert.Equal(0, AttemptRows(q, "d1"));
        Assert.Equal(1, AttemptRows(q, "d2"));
    }

    [BackendFact]
    public void Output_is_bounded_and_cut_with_a_marker_and_unstorable_characters_are_replaced()
    {
        var q = OpenFast();
        q.Submit("o1", "backup");
        var t = PollKey(q, "o1");
        t.Output.Append("output", "nul\0 and esc\u001b[31m here");
        for (var i = 0; i < 2000; i++) t.Output.Append("output", new string('x', 100));
        t.Finish();
        var output = Assert.Single(q.GetHistory("o1")!).Output!;
        Assert.StartsWith("[output] nul\uFFFD and esc\uFFFD[31m here\n", output);
        Assert.EndsWith(AttemptOutput.CutMarker, output);
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(output) <= AttemptOutput.MaxBytes);
    }

    // Remove-PQTask and Restart-PQTask with the history (issue 12's branches where they meet).

    private Queue OpenWithoutNotices(int maxAttempts) => Open(c =>
    {
        c.RetryWait = TimeSpan.Zero;
        c.MaxAttempts = maxAttempts;
        c.NoticeType = null; // a failure's notice would be the next task polled
    });

    [BackendFact]
    public void Removing_a_finished_task_deletes_its_attempt_rows_and_a_new_task_with_the_key_starts_empty()
    {
        var q = OpenFast();
        q.Submit("rm2", "backup");
        PollKey(q, "rm2").Finish("kept");
        q.Submit("rm1", "backup");
        Assert.True(PollKey(q, "rm1").Retry("again", TimeSpan.Zero));
        PollKey(q, "rm1").Finish("done");
        Assert.Equal(2, AttemptRows(q, "rm1"));

        q.Remove("rm1");
        Assert.Equal(0, AttemptRows(q, "rm1"));
        Assert.Equal(1, AttemptRows(q, "rm2")); // another task's history stays
        Assert.Null(q.GetHistory("rm1"));

        q.Submit("rm1", "backup");
        Assert.Empty(q.GetHistory("rm1")!);
        PollKey(q, "rm1").Finish("new");
        Assert.Equal([(1, "Succeeded", "new")], q.GetHistory("rm1")!.Select(a => (a.Attempt, a.Outcome, a.Message)));
    }

    [BackendFact]
    public void A_restarted_task_continues_its_history_from_attempt_1_without_inventing_Lost_attempts()
    {
        var q = OpenWithoutNotices(maxAttempts: 2);
        q.Submit("rs1", "backup");
        Assert.True(PollKey(q, "rs1").Retry("disk full"));
        Assert.False(PollKey(q, "rs1").Retry("disk still full"));
        q.Restart("rs1");
        PollKey(q, "rs1").Finish("fixed");
        Assert.Equal([(1, "Retried"), (2, "Failed"), (1, "Succeeded")], q.GetHistory("rs1")!.Select(a => (a.Attempt, a.Outcome)));
    }

    [BackendFact]
    public void A_restart_neither_hides_the_earlier_runs_Lost_attempts_nor_the_new_runs()
    {
        var q = OpenWithoutNotices(maxAttempts: 2);
        var other = OpenAnother(q);
        q.Submit("rs2", "backup");
        // First run: attempt 1's lease expires (Lost), attempt 2 fails.
        var stale = q.Poll(TimeSpan.FromMilliseconds(300))!;
        Eventually.True(() => q.Now() > stale.LeaseExpiresAt, "the first lease to expire");
        Assert.False(PollKey(other, "rs2").Retry("broken"));
        q.Restart("rs2");
        // Second run: attempt 1 succeeds.
        PollKey(q, "rs2").Finish("fixed");
        Assert.Equal([(1, "Lost"), (2, "Failed"), (1, "Succeeded")], q.GetHistory("rs2")!.Select(a => (a.Attempt, a.Outcome)));

        q.Submit("rs3", "backup");
        Assert.True(PollKey(q, "rs3").Retry("disk full"));
        Assert.False(PollKey(q, "rs3").Retry("disk still full"));
        q.Restart("rs3");
        // Second run: attempt 1's lease expires (Lost), attempt 2 succeeds.
        var lost = q.Poll(TimeSpan.FromMilliseconds(300))!;
        Eventually.True(() => q.Now() > lost.LeaseExpiresAt, "the restarted run's first lease to expire");
        PollKey(other, "rs3").Finish("fixed");
        Assert.Equal([(1, "Retried"), (2, "Failed"), (1, "Lost"), (2, "Succeeded")], q.GetHistory("rs3")!.Select(a => (a.Attempt, a.Outcome)));
    }
}
