using PerfectQueue.Storage;
using PerfectQueue.Tests.Workers;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Who runs what, on every backend (schema version 7, docs/worker.md "Who runs what"): an acquire records the worker
/// session and the start on the task row; listings show a held task's worker, host, start and running time, and each
/// session's running keys; a finish or retry records how long the attempt ran, a release does not, and a resubmit
/// after retention starts with nothing of the old task.
/// </summary>
public abstract class RunningTaskConformance(IBackendTarget target) : BackendSuite(target)
{
    private static readonly TimeSpan Alive = TimeSpan.FromMinutes(1);

    private static async Task<AcquiredTask> AcquireOne(Queue q, string? session, TimeSpan? alive = null) =>
        Assert.Single((await q.AcquireAsync(1, alive ?? Alive, default, session)).Tasks);

    private static void WaitForClock(Queue q, DateTimeOffset after) =>
        Eventually.True(() => q.Now() >= after, "the database clock to move on");

    [BackendFact]
    public async Task A_held_task_names_its_worker_host_and_start_and_each_session_lists_the_keys_it_runs()
    {
        var q = Open();
        var a = Queue.NewWorkerId();
        var b = Queue.NewWorkerId();
        Assert.NotNull(await q.RegisterWorkerAsync(new WorkerBeat(a, "host-a", 11, 2, 0, 60_000)));
        Assert.NotNull(await q.RegisterWorkerAsync(new WorkerBeat(b, "host-b", 22, 2, 0, 60_000)));
        q.Submit("k1", "t");
        q.Submit("k2", "t");
        q.Submit("k3", "t");
        q.Submit("k4", "t");
        var k1 = await AcquireOne(q, a);
        var k2 = await AcquireOne(q, b);
        var k3 = await AcquireOne(q, a);
        var k4 = await AcquireOne(q, null); // a holder that is no worker (Receive-PQTask, Queue.Poll)
        Assert.Equal(["k1", "k2", "k3", "k4"], new[] { k1.Key, k2.Key, k3.Key, k4.Key });

        var sessions = q.ListWorkers().ToDictionary(w => w.Id);
        Assert.Equal(["k1", "k3"], sessions[a].RunningKeys);   // oldest lease first
        Assert.Equal(["k2"], sessions[b].RunningKeys);

        var listed = q.List().ToDictionary(t => t.Key);
        Assert.Equal(TaskState.Running, listed["k1"].Status);
        Assert.Equal(a, listed["k1"].Worker);
        Assert.Equal("host-a", listed["k1"].Host);
        Assert.Equal(b, listed["k2"].Worker);
        Assert.Equal("host-b", listed["k2"].Host);
        Assert.True(listed["k1"].StartedAt >= k1.CreatedAt);
        Assert.InRange(listed["k1"].StartedAt!.Value, q.Now().AddMinutes(-1), q.Now());
        Assert.True(listed["k1"].RunningFor >= TimeSpan.Zero);
        Assert.Null(listed["k1"].LastDuration);                // no attempt has ended
        Assert.Null(listed["k4"].Worker);
        Assert.Null(listed["k4"].Host);
        Assert.NotNull(listed["k4"].StartedAt);                 // it runs, only not under a worker

        // By key too (Get-PQTask -Key, Complete-PQTask -PassThru), with the host from the session row.
        var one = q["k2"].GetInfo();
        Assert.Equal(b, one.Worker);
        Assert.Equal("host-b", one.Host);
        Assert.Equal(listed["k2"].StartedAt, one.StartedAt);

        // A cancel request keeps the task held: it still names its worker until the holder gives it back.
        q["k3"].CancelRequest();
        Assert.Equal(TaskState.CancelRequested, q["k3"].GetInfo().Status);
        Assert.Equal(a, q["k3"].GetInfo().Worker);

        // Once a session row is gone (a worker's clean exit) its held task still names the session, without a host.
        await q.RemoveWorkerAsync(b);
        Assert.Equal(b, q["k2"].GetInfo().Worker);
        Assert.Null(q["k2"].GetInfo().Host);
        Assert.DoesNotContain(q.ListWorkers(), w => w.Id == b);
    }

    [BackendFact]
    public async Task A_finish_or_retry_records_how_long_the_attempt_ran_a_release_does_not_and_an_ended_lease_names_no_worker()
    {
        var q = Open();
        var session = Queue.NewWorkerId();
        Assert.NotNull(await q.RegisterWorkerAsync(new WorkerBeat(session, "host-a", 11, 2, 0, 60_000)));
        q.Submit("k", "t");

        var first = await AcquireOne(q, session);
        var started = q["k"].GetInfo().StartedAt!.Value;
        WaitForClock(q, started.AddMilliseconds(60));
        Assert.True(first.Retry(delay: TimeSpan.Zero));
        var retried = q["k"].GetInfo();
        Assert.Equal(TaskState.Waiting, retried.Status);
        Assert.Null(retried.Worker);                            // no lease: nobody runs it
        Assert.Null(retried.StartedAt);
        Assert.Null(retried.RunningFor);
        Assert.InRange(retried.LastDuration!.Value, TimeSpan.FromMilliseconds(60), TimeSpan.FromMinutes(1));
        Assert.Empty(Assert.Single(q.ListWorkers()).RunningKeys);

        // A released attempt (a worker's stop) was no attempt: the last one's time stays.
        var second = await AcquireOne(q, session);
        WaitForClock(q, q["k"].GetInfo().StartedAt!.Value.AddMilliseconds(200));
        second.Release();
        Assert.Equal(retried.LastDuration, q["k"].GetInfo().LastDuration);

        // The finish: exactly its finish time less its start, both on the database clock.
        var third = await AcquireOne(q, session);
        var thirdStart = q["k"].GetInfo().StartedAt!.Value;
        WaitForClock(q, thirdStart.AddMilliseconds(30));
        third.Finish();
        var done = q["k"].GetInfo();
        Assert.Equal(TaskState.Finished, done.Status);
        Assert.Null(done.Worker);
        Assert.Null(done.StartedAt);
        Assert.Equal(done.FinishedAt - thirdStart, done.LastDuration);
        Assert.True(done.LastDuration >= TimeSpan.FromMilliseconds(30));
        Assert.Equal(done.LastDuration, Assert.Single(q.List()).LastDuration);
    }

    [BackendFact]
    public async Task An_expired_lease_is_not_listed_under_its_worker_and_a_finish_at_acquire_keeps_the_last_attempts_time()
    {
        var q = Open(c => { c.MaxAttempts = 2; c.NoticeType = ""; });
        var session = Queue.NewWorkerId();
        Assert.NotNull(await q.RegisterWorkerAsync(new WorkerBeat(session, "host-a", 11, 2, 0, 60_000)));
        q.Submit("k", "t");
        var first = await AcquireOne(q, session);
        WaitForClock(q, q["k"].GetInfo().StartedAt!.Value.AddMilliseconds(60));
        Assert.True(first.Retry(delay: TimeSpan.Zero));
        var firstRan = q["k"].GetInfo().LastDuration;
        Assert.NotNull(firstRan);

        // The second attempt is lost: its lease runs out with nobody renewing it.
        await AcquireOne(q, session, TimeSpan.FromMilliseconds(300));
        Assert.Equal(["k"], Assert.Single(q.ListWorkers()).RunningKeys);
        WaitForClock(q, q["k"].GetInfo().Timeout!.Value.AddMilliseconds(1));
        Assert.Empty(Assert.Single(q.ListWorkers()).RunningKeys);
        var expired = q["k"].GetInfo();
        Assert.Equal(TaskState.Waiting, expired.Status);
        Assert.Null(expired.Worker);
        Assert.Null(expired.StartedAt);
        Assert.Equal(firstRan, expired.LastDuration);           // the lost attempt never ended

        // Both attempts are spent: the next acquire finishes it as Failed without running it, which is no attempt,
        // so the time of the last one that ended stays (not the 300 ms and more since the lost lease was taken).
        var poll = await q.AcquireAsync(1, Alive, default, session);
        Assert.Empty(poll.Tasks);
        var failed = q["k"].GetInfo();
        Assert.Equal(TaskOutcome.Failed, failed.Outcome);
        Assert.Equal(firstRan, failed.LastDuration);
    }

    [BackendFact]
    public async Task A_task_submitted_again_after_retention_starts_without_the_old_tasks_run_times()
    {
        var q = Open(c => c.RetentionTime = TimeSpan.FromMilliseconds(300));
        q.Submit("k", "t");
        (await AcquireOne(q, Queue.NewWorkerId())).Finish();
        var finished = q["k"].GetInfo();
        Assert.NotNull(finished.LastDuration);
        WaitForClock(q, finished.FinishedAt!.Value.AddMilliseconds(301));
        q.Submit("k", "t"); // the finished row is past its retention: the key is free
        var again = q["k"].GetInfo();
        Assert.Equal(TaskState.Waiting, again.Status);
        Assert.Null(again.LastDuration);
        Assert.Null(again.StartedAt);
        Assert.Null(again.Worker);
    }

    [BackendFact]
    public async Task A_running_worker_lists_the_key_its_handler_runs_and_the_task_names_the_worker_on_this_host()
    {
        var q = Open();
        q.Submit("held", "t");
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = new WorkerOptions { Processors = 2, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30), HeartbeatInterval = TimeSpan.FromMilliseconds(200), MaxTasks = 1 };
        var worker = new Worker(q, options, _ => new DelegateProcessor(async (_, _) => { started.TrySetResult(); await release.Task; }), null);
        var run = worker.RunAsync(default, default);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60));

        var session = Assert.Single(q.ListWorkers());
        Assert.Equal(worker.SessionId, session.Id);
        Assert.Equal(["held"], session.RunningKeys);
        var info = q["held"].GetInfo();
        Assert.Equal(worker.SessionId, info.Worker);
        Assert.Equal(Environment.MachineName, info.Host);
        Assert.NotNull(info.StartedAt);

        release.TrySetResult();
        await run.WaitAsync(TimeSpan.FromSeconds(60));
        var done = q["held"].GetInfo();
        Assert.Equal(TaskOutcome.Succeeded, done.Outcome);
        Assert.Null(done.Worker);
        Assert.Equal(done.FinishedAt - info.StartedAt, done.LastDuration);
    }
}
