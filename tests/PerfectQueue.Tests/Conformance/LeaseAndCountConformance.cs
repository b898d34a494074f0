using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Conformance cases for expired leases and what counts as running or waiting (issue 9): a heartbeat never
/// revives an expired lease, an orphaned task neither blocks its user's max_running nor survives a cancel,
/// and the summary's oldest waiting age looks only at waiting tasks. Runs on every backend.
/// </summary>
public abstract class LeaseAndCountConformance(IBackendTarget target) : BackendSuite(target)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(10);

    private static int RunningOf(Queue q, string user) =>
        q.List(new TaskFilter { Statuses = [TaskState.Running], Users = [user] }).Count;

    [BackendFact]
    public void A_heartbeat_of_an_expired_lease_is_refused_so_max_running_is_never_exceeded()
    {
        var q = Open();
        var other = OpenAnother(q);
        var now = q.Now();
        q.Submit("a", "t", options: new SubmitOptions { User = "u", MaxRunning = 1, RunAt = now.AddSeconds(-20) });
        q.Submit("b", "t", options: new SubmitOptions { User = "u", MaxRunning = 1, RunAt = now.AddSeconds(-10) });

        var first = q.Poll(TimeSpan.FromSeconds(1))!;                          // holder 1 leases a briefly, then stalls
        Assert.Equal("a", first.Key);
        Assert.Null(other.Poll(Long));                                        // u is at its limit while a's lease lasts
        var second = Eventually.Get(() => other.Poll(Long), "a's lease to expire so u has a free slot");
        Assert.Equal("b", second.Key);                                        // b is due longer than a (a is due since its lease ran out)
        Assert.Equal(1, RunningOf(q, "u"));

        var report = q.Heartbeat([first]).Single();                           // holder 1 wakes up
        Assert.Equal(HeartbeatResult.Preempted, report.Result);
        Assert.Equal(PreemptionReason.LeaseExpired, report.Error!.Reason);
        Assert.True(first.CancellationToken.IsCancellationRequested);
        Assert.Equal(1, RunningOf(q, "u"));                                   // never two Running for u
        Assert.Equal(TaskState.Waiting, q["a"].GetInfo().Status);
        Assert.Equal(HeartbeatResult.Alive, second.Heartbeat());              // a current lease still beats
        second.Finish();
        Assert.Equal("a", other.Poll(Long)!.Key);                             // a is handed out again, to one holder
    }

    [BackendFact]
    public void An_orphaned_task_does_not_count_as_running_so_its_user_is_served_again()
    {
        var q = Open();
        var now = q.Now();
        q.Submit("a", "t", options: new SubmitOptions { User = "u", MaxRunning = 1, RunAt = now.AddSeconds(-10) });
        q.Submit("b", "t", options: new SubmitOptions { User = "u", MaxRunning = 1, RunAt = now.AddSeconds(-5) });
        Assert.Equal("a", q.Poll(TimeSpan.FromSeconds(1))!.Key);               // its worker dies: never finished
        Assert.Null(q.Poll(Long));                                             // (while the lease lasts, u is full)

        var next = Eventually.Get(() => q.Poll(Long), "the dead worker's lease to expire", seconds: 10);
        Assert.Equal("b", next.Key);
        next.Finish();
        var again = q.Poll(Long)!;                                             // and the orphaned task itself
        Assert.Equal("a", again.Key);
        Assert.Equal(2, again.Attempt);
    }

    [BackendFact]
    public void A_cancel_request_on_an_orphaned_task_finishes_it_at_once()
    {
        var q = Open();
        q.Submit("k", "t");
        Assert.NotNull(q.Poll(TimeSpan.FromMilliseconds(200)));              // its worker dies
        Eventually.True(() => q["k"].GetInfo().Status == TaskState.Waiting, "the lease to expire");

        Assert.Equal(TaskState.Finished, q["k"].CancelRequest());              // nobody holds it: done now, not flagged
        var info = q["k"].GetInfo();
        Assert.Equal(TaskState.Finished, info.Status);
        Assert.Equal(TaskOutcome.Cancelled, info.Outcome);
        Assert.Null(q.Poll(Long));
    }

    [BackendFact]
    public void The_oldest_waiting_age_ignores_tasks_that_are_not_waiting()
    {
        var q = Open(c => c.RetentionTime = Long);
        var now = q.Now();
        q.Submit("finished", "t", options: new SubmitOptions { RunAt = now.AddMinutes(-50) });
        q.Submit("running", "t", options: new SubmitOptions { RunAt = now.AddMinutes(-40) });
        q.Submit("cancel-requested", "t", options: new SubmitOptions { RunAt = now.AddMinutes(-30) });
        q.Submit("scheduled", "t", options: new SubmitOptions { Delay = TimeSpan.FromHours(1) });
        var held = q.PollMulti(3, Long).ToDictionary(t => t.Key);
        held["finished"].Finish();
        q["cancel-requested"].CancelRequest();                                 // held: flagged, not finished

        var summary = q.Summarize();
        Assert.Equal(0, summary.CountOf(TaskState.Waiting));
        Assert.Null(summary.OldestWaitingAge);                                 // none waits, whatever the others' times

        // A cancel-requested task whose lease ran out long ago is CancelRequested, not Waiting.
        var longAgo = now.AddMinutes(-60).ToUnixTimeMilliseconds();
        new StoreHook(q).Sql($"UPDATE \"{q.Config.Table}\" SET due_at = {longAgo} WHERE task_key = 'cancel-requested'");
        q.Submit("waiting", "t", options: new SubmitOptions { RunAt = now.AddMinutes(-10) });
        summary = q.Summarize();
        Assert.Equal(1, summary.CountOf(TaskState.Waiting));
        Assert.Equal(1, summary.CountOf(TaskState.CancelRequested));
        Assert.InRange(summary.OldestWaitingAge!.Value.TotalMinutes, 9.9, 11);
    }
}
