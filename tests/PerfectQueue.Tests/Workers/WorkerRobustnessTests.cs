using System.Collections.Concurrent;
using System.Reflection;
using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>A processor that runs a delegate and remembers whether it was disposed while a handler ran.</summary>
internal sealed class TrackingProcessor(Func<AcquiredTask, CancellationToken, Task> run) : ITaskProcessor
{
    private int _running;
    public volatile bool Disposed;
    public volatile bool DisposedWhileRunning;

    public async Task<string?> RunAsync(AcquiredTask task, CancellationToken stop)
    {
        Interlocked.Increment(ref _running);
        try { await run(task, stop); }
        finally { Interlocked.Decrement(ref _running); }
        return $"ran {task.Key}";
    }

    public ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _running) > 0) DisposedWhileRunning = true;
        Disposed = true;
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// The worker's robustness rules (issue 9): leases, not row ids, identify running tasks; database failures
/// never end a run; acquire endings are counted; UntilEmpty ends only when nothing is due or running.
/// Written once, run per backend.
/// </summary>
public abstract class WorkerRobustnessSuite(IBackendTarget target) : IDisposable
{
    private readonly List<Queue> _queues = [];

    protected Queue Open(Action<QueueConfig>? configure = null) => OpenIntercepted(configure, null).Queue;

    private protected (Queue Queue, InterceptingStore Calls, QueueConfig Config) OpenIntercepted(Action<QueueConfig>? configure,
        Func<MethodInfo, object?[]?, IQueueStore, object?>? replace)
    {
        var config = target.NewConfig();
        configure?.Invoke(config);
        var (inner, _) = QueueStores.Create(config);
        var (store, calls) = InterceptingStore.Wrap(inner, replace);
        var q = Queue.OpenWith(config, store);
        q.Initialize();
        _queues.Add(q);
        return (q, calls, config);
    }

    public void Dispose()
    {
        foreach (var q in _queues) q.Dispose();
        GC.SuppressFinalize(this);
    }

    protected static WorkerOptions Fast(int processors = 1, bool untilEmpty = true) => new()
    {
        Processors = processors, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
        HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = untilEmpty,
    };

    private protected static Worker NewWorker(Queue q, WorkerOptions options, Func<AcquiredTask, CancellationToken, Task> handler, ConcurrentQueue<string> log,
        List<TrackingProcessor>? processors = null) =>
        new(q, options, _ =>
        {
            var p = new TrackingProcessor(handler);
            if (processors is not null) lock (processors) processors.Add(p);
            return p;
        }, e => log.Enqueue(e.Message)) { CancelGracePeriod = TimeSpan.FromMilliseconds(300) };

    private static string Lines(ConcurrentQueue<string> log) => string.Join(" | ", log);

    private static async Task<T> Within<T>(Task<T> task, ConcurrentQueue<string> log, double seconds = 30)
    {
        try { return await task.WaitAsync(TimeSpan.FromSeconds(seconds)); }
        catch (TimeoutException) { throw new TimeoutException($"the worker did not stop within {seconds}s: {Lines(log)}"); }
    }

    // ---- item 1: a reused row id ----

    [BackendFact]
    public async Task A_key_resubmitted_under_the_same_row_id_while_its_old_handler_runs_keeps_its_heartbeats_and_starts_once()
    {
        // Retention 0 and no cleanup: the finished row is replaced in place by the resubmit (same id on SQLite
        // and PostgreSQL), while the force-finished attempt's handler, which ignores every signal, still runs.
        var q = Open(c => { c.RetentionTime = TimeSpan.Zero; c.CleanupInterval = TimeSpan.Zero; });
        q.Submit("K", "t");
        var oldStarted = new TaskCompletionSource();
        var oldGate = new TaskCompletionSource();
        var newStarted = new TaskCompletionSource<AcquiredTask>(TaskCreationOptions.RunContinuationsAsynchronously);
        var newGate = new TaskCompletionSource();
        var starts = 0;
        var log = new ConcurrentQueue<string>();
        using var graceful = new CancellationTokenSource();
        var options = Fast(processors: 2, untilEmpty: false);
        options.AliveTime = TimeSpan.FromSeconds(5);   // short enough that a lease left without heartbeats would expire during the test
        var running = NewWorker(q, options, async (t, _) =>
        {
            switch (Interlocked.Increment(ref starts))
            {
                case 1: oldStarted.SetResult(); await oldGate.Task; break;      // ignores its cancellation and its stop
                case 2: newStarted.SetResult(t); await newGate.Task; break;
                default: break;                                                 // started twice: the assertions below fail
            }
        }, log).RunAsync(graceful.Token, default);

        await oldStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        q["K"].ForceFinish("operator");
        Eventually.True(() => log.Any(l => l.Contains("K was lost (ForceFinished)")), "the heartbeat to see the force finish: " + Lines(log));
        q.Submit("K", "t");
        var fresh = await newStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, fresh.Attempt);

        oldGate.SetResult();                                                    // the old handler ends now
        Eventually.True(() => log.Any(l => l.StartsWith("end K") && l.Contains("lost (ForceFinished)")), "the old attempt to end as lost");
        var oldEndedAt = q.Now();
        // The new attempt is still heartbeated: its lease is extended past what its acquisition gave it.
        Eventually.True(() => q["K"].GetInfo().Timeout > oldEndedAt + options.AliveTime, "a heartbeat of the new attempt after the old one ended: " + Lines(log), seconds: 10);
        Assert.Equal(TaskState.Running, q["K"].GetInfo().Status);

        newGate.SetResult();
        Eventually.True(() => log.Any(l => l.StartsWith("end K") && l.EndsWith(": succeeded")), "the new attempt to finish");
        graceful.Cancel();
        var summary = await Within(running, log);
        Assert.Equal(2, Volatile.Read(ref starts));
        Assert.Equal(2, summary.Processed);
        Assert.Equal(1, summary.Succeeded);
        Assert.Equal(1, summary.Lost);
    }

    [BackendFact]
    public void A_holder_whose_row_id_was_reused_by_a_resubmit_is_told_its_task_is_gone_not_that_it_was_reacquired()
    {
        var q = Open(c => { c.RetentionTime = TimeSpan.Zero; c.CleanupInterval = TimeSpan.Zero; });
        q.Submit("K", "t");
        var old = q.Poll()!;
        q["K"].ForceFinish();
        q.Submit("K", "t");
        var fresh = q.Poll()!;                                      // the new task, leased under the same id
        var reports = q.Heartbeat([old, fresh]);                    // one call beats both leases of the row
        Assert.Equal(HeartbeatResult.Preempted, reports[0].Result);
        Assert.Equal(PreemptionReason.Deleted, reports[0].Error!.Reason);   // its own task no longer exists
        Assert.Equal(HeartbeatResult.Alive, reports[1].Result);
        Assert.Null(fresh.LostBecause);
        fresh.Finish();
    }

    // ---- item 9: a handler's own OperationCanceledException ----

    [BackendFact]
    public async Task A_handlers_own_operation_canceled_exception_is_retried_and_counted_never_released()
    {
        var q = Open(c => c.RetryWait = TimeSpan.Zero);
        q.Submit("http", "t");
        var calls = 0;
        var log = new ConcurrentQueue<string>();
        var summary = await Within(NewWorker(q, Fast(), (t, _) =>
            // An HTTP client's timeout: a TaskCanceledException the worker's stop has nothing to do with.
            Interlocked.Increment(ref calls) == 1 && t.Attempt == 1 ? throw new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout of 100 seconds elapsing.") : Task.CompletedTask,
            log).RunAsync(default, default), log);
        Assert.Equal(0, summary.Released);
        Assert.Equal(1, summary.Retried);
        Assert.Equal(1, summary.Succeeded);
        var info = q["http"].GetInfo();
        Assert.Equal(TaskOutcome.Succeeded, info.Outcome);
        Assert.Equal(2, info.Attempts);                            // the failed attempt counted
    }

    // ---- item 6: no route and retry_wait 0 ----

    [BackendFact]
    public async Task An_unrouted_task_waits_at_least_a_minute_even_with_retry_wait_zero()
    {
        var q = Open(c => c.RetryWait = TimeSpan.Zero);
        q.Submit("u", "mystery");
        var options = Fast();
        options.MaxTasks = 3;                                      // a busy loop would reach it at once
        var log = new ConcurrentQueue<string>();
        var summary = await Within(NewWorker(q, options, (t, _) => throw new NoHandlerException(t.Type), log).RunAsync(default, default), log);
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(1, summary.Processed);
        var info = q["u"].GetInfo();
        Assert.Equal(TaskState.Scheduled, info.Status);
        Assert.InRange((info.Timeout!.Value - q.Now()).TotalSeconds, 50, 61);
    }

    // ---- item 7: tasks ended at acquire ----

    [BackendFact]
    public async Task A_task_failed_at_acquire_is_logged_counted_with_agreeing_attempts_and_the_due_tasks_behind_it_still_run()
    {
        var q = Open(c => c.MaxAttempts = 2);
        q.Submit("H", "t");
        Assert.Equal("H", q.Poll(TimeSpan.FromMilliseconds(100))!.Key);                               // two attempts whose workers died
        Assert.Equal("H", Eventually.Get(() => q.Poll(TimeSpan.FromMilliseconds(100)), "the first lease to expire").Key);
        Eventually.True(() => q["H"].GetInfo().Status == TaskState.Waiting, "the second lease to expire");
        q.SubmitMany([new("B", "t"), new("C", "t")]);               // due after H: the next acquire takes H first
        var log = new ConcurrentQueue<string>();
        var summary = await Within(NewWorker(q, Fast(processors: 1), (_, _) => Task.CompletedTask, log).RunAsync(default, default), log);
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(3, summary.Succeeded);                        // B, C, and the TaskFailed notice of H (docs/notices.md)
        Assert.Equal(1, summary.Failed);
        Assert.Contains(log, l => l.StartsWith("end H (t) not started: failed at acquire"));
        var h = q["H"].GetInfo();
        Assert.Equal(TaskOutcome.Failed, h.Outcome);
        Assert.Equal(2, h.Attempts);                               // the acquisition that ended it was no attempt
        Assert.Contains("gave up after 2 attempts", h.Message);
        Assert.All(q.List(new TaskFilter { Keys = ["B", "C"] }), t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
    }

    [BackendFact]
    public async Task A_task_cancelled_at_acquire_is_counted_and_not_an_attempt()
    {
        var q = Open();
        q.Submit("X", "t");
        var held = q.Poll(TimeSpan.FromSeconds(1))!;               // its worker dies after the cancel request
        Assert.Equal(TaskState.CancelRequested, q["X"].CancelRequest());
        Eventually.True(() => q.List(new TaskFilter { Keys = ["X"] }).Single().Timeout <= q.Now(), "the lease to expire");
        var log = new ConcurrentQueue<string>();
        var summary = await Within(NewWorker(q, Fast(), (_, _) => Task.CompletedTask, log).RunAsync(default, default), log);
        Assert.Equal(1, summary.Cancelled);
        var info = q["X"].GetInfo();
        Assert.Equal(TaskOutcome.Cancelled, info.Outcome);
        Assert.Equal(1, info.Attempts);
        Assert.Equal(held.Attempt, info.Attempts);
    }

    // ---- items 4 and 5: UntilEmpty ends only when nothing is due or running ----

    [BackendFact]
    public async Task UntilEmpty_waits_for_a_task_leased_by_a_dead_worker_and_takes_it_over()
    {
        var q = Open();
        q.Submit("orphan", "t");
        Assert.NotNull(q.Poll(TimeSpan.FromSeconds(1.5)));        // its worker dies: the lease runs for 1.5 s
        var log = new ConcurrentQueue<string>();
        var summary = await Within(NewWorker(q, Fast(), (_, _) => Task.CompletedTask, log).RunAsync(default, default), log);
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(1, summary.Succeeded);
        Assert.Equal(TaskOutcome.Succeeded, q["orphan"].GetInfo().Outcome);
    }

    [BackendFact]
    public async Task UntilEmpty_keeps_polling_while_another_worker_runs_a_task_and_stops_once_it_finished()
    {
        var polls = new SemaphoreSlim(0);
        var (q, _, _) = OpenIntercepted(null, (method, args, inner) => method.Name == nameof(IQueueStore.AcquireAsync) ? CountedAcquireAsync(inner, args!, polls) : null);
        q.Submit("elsewhere", "t");
        var other = q.Poll(TimeSpan.FromSeconds(30))!;             // a live worker elsewhere runs it
        polls = new SemaphoreSlim(0);
        var log = new ConcurrentQueue<string>();
        var running = NewWorker(q, Fast(), (_, _) => Task.CompletedTask, log).RunAsync(default, default);
        for (var i = 0; i < 3; i++) Assert.True(await polls.WaitAsync(TimeSpan.FromSeconds(10)), "the worker to poll again: " + Lines(log));
        Assert.False(running.IsCompleted, "UntilEmpty stopped while a task was running elsewhere: " + Lines(log));
        other.Finish();
        var summary = await Within(running, log);
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(0, summary.Processed);
    }

    private static async Task<IReadOnlyList<TaskRow>> CountedAcquireAsync(IQueueStore inner, object?[] args, SemaphoreSlim polls)
    {
        try { return await inner.AcquireAsync((int)args[0]!, (long)args[1]!, (string?)args[2], (CancellationToken)args[3]!); }
        finally { polls.Release(); }
    }

    [BackendFact]
    public async Task UntilEmpty_does_not_stop_on_one_empty_poll_while_due_work_was_locked_by_another_acquirer()
    {
        // The first acquire comes back empty although a task is due, as a concurrent acquirer's locks can make it.
        var first = 1;
        var (q, _, _) = OpenIntercepted(null, (method, _, _) =>
            method.Name == nameof(IQueueStore.AcquireAsync) && Interlocked.Exchange(ref first, 0) == 1 ? Task.FromResult<IReadOnlyList<TaskRow>>([]) : null);
        q.Submit("due", "t");
        var log = new ConcurrentQueue<string>();
        var summary = await Within(NewWorker(q, Fast(), (_, _) => Task.CompletedTask, log).RunAsync(default, default), log);
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(1, summary.Succeeded);
    }

    [BackendFact]
    public async Task A_heartbeat_that_meets_the_workers_own_finish_in_flight_does_not_report_the_task_lost()
    {
        // The finish commits, then its answer is held back for 2 s, or until the worker logs a loss: heartbeats
        // meanwhile find the row finished. They must not take the worker's own finish for somebody else's.
        var log = new ConcurrentQueue<string>();
        var (q, _, _) = OpenIntercepted(null, (method, args, inner) =>
            method.Name == nameof(IQueueStore.ApplyAsync) ? FinishThenHoldAsync(inner, args!, log) : null);
        q.Submit("mine", "t");
        var summary = await Within(NewWorker(q, Fast(), (_, _) => Task.CompletedTask, log).RunAsync(default, default), log);
        Assert.Equal(1, summary.Succeeded);
        Assert.Equal(0, summary.Lost);
        Assert.DoesNotContain(log, l => l.Contains("was lost"));
    }

    private static async Task<IReadOnlySet<long>> FinishThenHoldAsync(IQueueStore inner, object?[] args, ConcurrentQueue<string> log)
    {
        var applied = await inner.ApplyAsync((IReadOnlyList<LeaseWrite>)args[0]!, CancellationToken.None);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // 20 heartbeat intervals: a worker that beat the task meanwhile has reported it lost by then.
        while (!log.Any(l => l.Contains("was lost")) && clock.Elapsed < TimeSpan.FromSeconds(2)) await Task.Delay(10);
        return applied;
    }

    // ---- item 3: the worker survives its database ----

    [BackendFact]
    public async Task An_acquire_that_throws_a_non_database_exception_is_logged_and_retried_and_running_handlers_are_untouched()
    {
        var failing = false;
        var (q, _, _) = OpenIntercepted(null, (method, _, _) =>
            method.Name == nameof(IQueueStore.AcquireAsync) && Volatile.Read(ref failing)
                ? Task.FromException<IReadOnlyList<TaskRow>>(new InvalidOperationException("Timeout expired. The timeout period elapsed prior to obtaining a connection from the pool."))
                : null);
        q.Submit("long", "t");
        var started = new TaskCompletionSource();
        var gate = new TaskCompletionSource();
        var log = new ConcurrentQueue<string>();
        var processors = new List<TrackingProcessor>();
        using var graceful = new CancellationTokenSource();
        var running = NewWorker(q, Fast(processors: 2, untilEmpty: false), async (t, _) =>
        {
            if (t.Key == "long") { started.SetResult(); await gate.Task; }
        }, log, processors).RunAsync(graceful.Token, default);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Volatile.Write(ref failing, true);
        Eventually.True(() => log.Count(l => l.StartsWith("acquire failed")) >= 2, "two failed acquires to be logged");
        Assert.False(running.IsCompleted, "the worker stopped: " + Lines(log));
        Assert.Contains(log, l => l.Contains("InvalidOperationException") && l.Contains("obtaining a connection from the pool"));
        gate.SetResult();
        Eventually.True(() => q["long"].GetInfo().Outcome == TaskOutcome.Succeeded, "the running handler to finish its task");
        Volatile.Write(ref failing, false);
        q.Submit("after", "t");
        Eventually.True(() => q["after"].GetInfo().Outcome == TaskOutcome.Succeeded, "the worker to work again: " + Lines(log));
        Assert.Contains(log, l => l.StartsWith("acquire works again"));
        graceful.Cancel();
        var summary = await Within(running, log);
        Assert.Equal(2, summary.Succeeded);
        Assert.All(processors, p => Assert.False(p.DisposedWhileRunning));
        Assert.All(processors, p => Assert.True(p.Disposed));
    }

    /// <summary>Drops the queue's task table behind the queue's back, as an operator's mistake would.</summary>
    private void DropTable(QueueConfig config)
    {
        using var c = target.Connect(config);
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"DROP TABLE \"{config.Table}\"";
        cmd.ExecuteNonQuery();
    }

    [BackendFact]
    public async Task A_dropped_table_is_a_clear_log_line_and_the_worker_works_again_once_it_is_created()
    {
        var (q, _, config) = OpenIntercepted(null, null);
        q.Submit("before", "t");
        var log = new ConcurrentQueue<string>();
        using var graceful = new CancellationTokenSource();
        var running = NewWorker(q, Fast(untilEmpty: false), (_, _) => Task.CompletedTask, log).RunAsync(graceful.Token, default);
        Eventually.True(() => q["before"].GetInfo().Outcome == TaskOutcome.Succeeded, "the first task");
        DropTable(config);
        Eventually.True(() => log.Any(l => l.StartsWith("acquire failed") && l.Contains("Initialize-PQQueue")), "a log line naming Initialize-PQQueue: " + Lines(log));
        Assert.False(running.IsCompleted, "the worker stopped: " + Lines(log));
        q.Initialize();
        q.Submit("after", "t");
        Eventually.True(() => q["after"].GetInfo().Outcome == TaskOutcome.Succeeded, "the worker to work again: " + Lines(log), seconds: 45);
        graceful.Cancel();
        var summary = await Within(running, log);
        Assert.Equal(2, summary.Succeeded);
    }

    // ---- item 8: a stop during an acquire ----

    [BackendFact]
    public async Task A_stop_during_an_acquire_releases_what_it_leased_instead_of_running_or_stranding_it()
    {
        var inAcquire = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var letGo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (q, _, _) = OpenIntercepted(null, (method, args, inner) => method.Name == nameof(IQueueStore.AcquireAsync) ? HeldAcquireAsync(inner, args!, inAcquire, letGo) : null);
        q.SubmitMany([new("a", "t"), new("b", "t")]);
        var ran = 0;
        var log = new ConcurrentQueue<string>();
        using var graceful = new CancellationTokenSource();
        var running = NewWorker(q, Fast(processors: 2, untilEmpty: false), (_, _) => { Interlocked.Increment(ref ran); return Task.CompletedTask; }, log)
            .RunAsync(graceful.Token, default);
        await inAcquire.Task.WaitAsync(TimeSpan.FromSeconds(10));   // the rows are leased; the answer is on its way
        graceful.Cancel();
        letGo.SetResult();
        var summary = await Within(running, log);
        Assert.Equal(0, Volatile.Read(ref ran));
        Assert.Equal(2, summary.Released);
        Assert.All(q.List(), t => { Assert.Equal(TaskState.Waiting, t.Status); Assert.Equal(0, t.Attempts); });
    }

    [BackendFact]
    public async Task A_cancel_that_lands_after_the_acquire_leased_rows_still_lets_it_write_its_endings()
    {
        using var cancel = new CancellationTokenSource();
        var (q, _, _) = OpenIntercepted(null, (method, args, inner) => method.Name == nameof(IQueueStore.AcquireAsync) ? CancelAfterAcquireAsync(inner, args!, cancel) : null);
        q.Submit("X", "t");
        Assert.NotNull(q.Poll(TimeSpan.FromSeconds(1)));         // its worker dies after the cancel request
        q["X"].CancelRequest();
        Eventually.True(() => q.List(new TaskFilter { Keys = ["X"] }).Single().Timeout <= q.Now(), "the lease to expire");
        var got = await q.PollMultiAsync(5, ct: cancel.Token);   // the acquire leased X; the cancel came after
        Assert.Empty(got);
        var info = q["X"].GetInfo();
        Assert.Equal(TaskOutcome.Cancelled, info.Outcome);       // not left leased for alive_time
    }

    private static async Task<IReadOnlyList<TaskRow>> CancelAfterAcquireAsync(IQueueStore inner, object?[] args, CancellationTokenSource cancel)
    {
        var rows = await inner.AcquireAsync((int)args[0]!, (long)args[1]!, (string?)args[2], CancellationToken.None);
        if (rows.Count > 0) cancel.Cancel();
        return rows;
    }

    private static async Task<IReadOnlyList<TaskRow>> HeldAcquireAsync(IQueueStore inner, object?[] args, TaskCompletionSource inAcquire, TaskCompletionSource letGo)
    {
        var rows = await inner.AcquireAsync((int)args[0]!, (long)args[1]!, (string?)args[2], CancellationToken.None);
        if (rows.Count == 0) return rows;
        inAcquire.TrySetResult();
        await letGo.Task;
        return rows;
    }
}
