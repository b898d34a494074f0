using System.Collections.Concurrent;
using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>A processor that runs a delegate: the worker's rules are tested without PowerShell.</summary>
internal sealed class DelegateProcessor(Func<AcquiredTask, CancellationToken, Task> run) : ITaskProcessor
{
    public async Task<string?> RunAsync(AcquiredTask task, CancellationToken stop)
    {
        await run(task, stop);
        return $"ran {task.Key}";
    }
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>The worker's rules, written once and run per backend (like the conformance suite).</summary>
public abstract class WorkerSuite(IBackendTarget target) : IDisposable
{
    private readonly List<Queue> _queues = [];

    private Queue Open(Action<QueueConfig>? configure = null)
    {
        var config = target.NewConfig();
        configure?.Invoke(config);
        var q = Queue.Open(config);
        q.Initialize();
        _queues.Add(q);
        return q;
    }

    public void Dispose()
    {
        foreach (var q in _queues) q.Dispose();
        GC.SuppressFinalize(this);
    }

    private static WorkerOptions Fast(int processors = 1) => new()
    {
        Processors = processors, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
        HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = true,
    };

    private static Task<WorkerSummary> Run(Queue q, WorkerOptions options, Func<AcquiredTask, CancellationToken, Task> handler,
        CancellationToken graceful = default, CancellationToken immediate = default, ConcurrentQueue<string>? log = null) =>
        new Worker(q, options, _ => new DelegateProcessor(handler), e => log?.Enqueue(e.Message)) { CancelGracePeriod = TimeSpan.FromMilliseconds(300) }
            .RunAsync(graceful, immediate);

    [BackendFact]
    public async Task Several_processors_drain_the_queue_each_task_finished_once_and_run_side_by_side()
    {
        var q = Open();
        q.SubmitMany(Enumerable.Range(0, 60).Select(i => new TaskSubmission($"k{i}", "t")));
        var running = 0;
        var peak = 0;
        var seen = new ConcurrentDictionary<string, int>();
        var summary = await Run(q, Fast(processors: 4), async (t, _) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            seen.AddOrUpdate(t.Key, 1, (_, n) => n + 1);
            await Task.Delay(5);
            Interlocked.Decrement(ref running);
        });
        Assert.Equal(60, summary.Processed);
        Assert.Equal(60, summary.Succeeded);
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.All(seen.Values, n => Assert.Equal(1, n));
        Assert.InRange(peak, 2, 4);
        Assert.All(q.List(), t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
        Assert.All(q.List(), t => Assert.Equal($"ran {t.Key}", t.Message)); // the processor's result is the finish message
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }

    [BackendFact]
    public async Task A_throwing_handler_retries_with_its_error_until_max_attempts_then_fails()
    {
        // No failure notice here: this handler would fail it too (notices have their own tests in HistoryConformance).
        var q = Open(c => { c.MaxAttempts = 3; c.RetryWait = TimeSpan.Zero; c.NoticeType = null; });
        q.Submit("k", "t");
        var summary = await Run(q, Fast(), (t, _) => throw new InvalidOperationException($"disk full on attempt {t.Attempt}"));
        Assert.Equal(3, summary.Processed);
        Assert.Equal(2, summary.Retried);
        Assert.Equal(1, summary.Failed);
        var info = q["k"].GetInfo();
        Assert.Equal(TaskOutcome.Failed, info.Outcome);
        Assert.Contains("disk full on attempt 3", info.Message);
    }

    [BackendFact]
    public async Task An_unrouted_type_is_retried_after_retry_wait_never_lost_never_busy()
    {
        var q = Open(c => c.RetryWait = TimeSpan.FromMinutes(5));
        q.Submit("k", "mystery");
        var summary = await Run(q, Fast(), (t, _) => throw new NoHandlerException(t.Type));
        Assert.Equal(1, summary.Processed);
        var info = q["k"].GetInfo();
        Assert.Equal(TaskState.Scheduled, info.Status);
        Assert.Contains("mystery", info.Message);
        Assert.InRange((info.Timeout!.Value - q.Now()).TotalMinutes, 4.5, 5.1);
    }

    [BackendFact]
    public async Task A_cancel_request_reaches_a_running_handler_within_a_heartbeat_and_it_ends_cancelled()
    {
        var q = Open();
        q.Submit("cooperative", "t");
        var started = new TaskCompletionSource();
        var sawCancel = new TaskCompletionSource<TimeSpan>();
        var running = Run(q, Fast(), async (t, stop) =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            started.SetResult();
            try { await Task.Delay(Timeout.Infinite, t.CancellationToken); }
            catch (OperationCanceledException) { sawCancel.SetResult(clock.Elapsed); throw; }
        });
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var asked = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(TaskState.CancelRequested, q["cooperative"].CancelRequest());
        await sawCancel.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(asked.Elapsed < TimeSpan.FromSeconds(2), $"the handler heard of the cancel after {asked.Elapsed} (heartbeat every 0.1 s)");
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, summary.Cancelled);
        Assert.Equal(TaskOutcome.Cancelled, q["cooperative"].GetInfo().Outcome);
    }

    [BackendFact]
    public async Task A_handler_that_ignores_the_cancel_is_stopped_after_the_grace_period()
    {
        var q = Open();
        q.Submit("stubborn", "t");
        var started = new TaskCompletionSource();
        var running = Run(q, Fast(), async (t, stop) =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, stop); // ignores t.CancellationToken; only the hard stop ends it
        });
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        q["stubborn"].CancelRequest();
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, summary.Cancelled);
        Assert.Equal(TaskOutcome.Cancelled, q["stubborn"].GetInfo().Outcome);
    }

    [BackendFact]
    public async Task A_force_finished_task_is_stopped_and_never_written_again()
    {
        var q = Open();
        q.Submit("forced", "t");
        var started = new TaskCompletionSource();
        var running = Run(q, Fast(), async (t, stop) =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, t.CancellationToken);
        });
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        q["forced"].ForceFinish("operator");
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, summary.Lost);
        var info = q["forced"].GetInfo();
        Assert.Equal(TaskOutcome.ForceFinished, info.Outcome);
        Assert.Equal("operator", info.Message);
    }

    [BackendFact]
    public async Task A_graceful_stop_lets_running_tasks_end_and_acquires_no_more()
    {
        var q = Open();
        q.SubmitMany(Enumerable.Range(0, 5).Select(i => new TaskSubmission($"k{i}", "t")));
        using var graceful = new CancellationTokenSource();
        var started = new TaskCompletionSource();
        var options = Fast();
        options.UntilEmpty = false;
        var running = Run(q, options, async (t, _) =>
        {
            started.TrySetResult();
            await Task.Delay(300);
        }, graceful: graceful.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        graceful.Cancel();
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("graceful stop", summary.StoppedBecause);
        Assert.Equal(1, summary.Succeeded);
        Assert.Equal(4, q.List(new TaskFilter { Statuses = [TaskState.Waiting] }).Count);
    }

    [BackendFact]
    public async Task A_graceful_stop_stops_a_handler_after_the_kill_limit_and_releases_its_task()
    {
        var q = Open();
        q.Submit("long", "t");
        using var graceful = new CancellationTokenSource();
        var started = new TaskCompletionSource();
        var options = Fast();
        options.UntilEmpty = false;
        options.GracefulKillLimit = TimeSpan.FromMilliseconds(200);
        var running = Run(q, options, async (t, stop) => { started.SetResult(); await Task.Delay(Timeout.Infinite, stop); }, graceful: graceful.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        graceful.Cancel();
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, summary.Released);
        var info = q["long"].GetInfo();
        Assert.Equal(TaskState.Waiting, info.Status);
        Assert.Equal(0, info.Attempts); // a released attempt does not count
    }

    [BackendFact]
    public async Task An_immediate_stop_stops_handlers_now_and_releases_their_tasks()
    {
        var q = Open();
        q.SubmitMany([new("a", "t"), new("b", "t")]);
        using var immediate = new CancellationTokenSource();
        var started = new CountdownEvent(2);
        var options = Fast(processors: 2);
        options.UntilEmpty = false;
        var running = Run(q, options, async (t, stop) => { started.Signal(); await Task.Delay(Timeout.Infinite, stop); }, immediate: immediate.Token);
        Assert.True(started.Wait(TimeSpan.FromSeconds(10)));
        immediate.Cancel();
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("immediate stop", summary.StoppedBecause);
        Assert.Equal(2, summary.Released);
        Assert.Equal(2, q.List(new TaskFilter { Statuses = [TaskState.Waiting] }).Count);
    }

    [BackendFact]
    public async Task Max_tasks_stops_after_that_many()
    {
        var q = Open();
        q.SubmitMany(Enumerable.Range(0, 10).Select(i => new TaskSubmission($"k{i}", "t")));
        var options = Fast(processors: 3);
        options.UntilEmpty = false;
        options.MaxTasks = 4;
        var summary = await Run(q, options, (_, _) => Task.CompletedTask);
        Assert.Equal("max tasks", summary.StoppedBecause);
        Assert.Equal(4, summary.Succeeded);
        Assert.Equal(6, q.List(new TaskFilter { Statuses = [TaskState.Waiting] }).Count);
    }

    [BackendFact]
    public async Task A_handler_may_finish_retry_or_release_the_task_itself()
    {
        var q = Open(c => c.RetryWait = TimeSpan.FromHours(1));
        q.SubmitMany([new("fin", "t"), new("ret", "t")]);
        var summary = await Run(q, Fast(), async (t, _) =>
        {
            if (t.Key == "fin") await t.FinishAsync(TaskOutcome.Succeeded, "done my way");
            else await t.RetryAsync("later");
        });
        Assert.Equal(1, summary.Succeeded);
        Assert.Equal(1, summary.Retried);
        Assert.Equal("done my way", q["fin"].GetInfo().Message);
        Assert.Equal(TaskState.Scheduled, q["ret"].GetInfo().Status);
    }
}

/// <summary>Counts acquire statements through a wrapped SQLite store: the idle cost of a worker.</summary>
public sealed class WorkerIdleCostTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    private static Task<WorkerSummary> WorkerSuiteRun(Queue q, WorkerOptions options, Func<AcquiredTask, CancellationToken, Task> handler, CancellationToken graceful) =>
        new Worker(q, options, _ => new DelegateProcessor(handler)).RunAsync(graceful, default);

    private static WorkerOptions Fast(int processors) => new()
    {
        Processors = processors, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
        HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = true,
    };

    [Fact]
    public async Task An_idle_worker_makes_one_acquire_per_poll_interval_whatever_its_processors()
    {
        var config = sqlite.NewConfig();
        using var real = Queue.Open(config);
        real.Initialize(); // opening a SQLite file other than the embedded default creates nothing
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var at = new ConcurrentQueue<TimeSpan>();
        var (counting, calls) = InterceptingStore.Wrap(new Storage.Sqlite.SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table),
            (method, _, _) => { if (method.Name == nameof(IQueueStore.AcquireAsync)) at.Enqueue(clock.Elapsed); return null; });
        using var q = Queue.OpenWith(config, counting);
        using var stop = new CancellationTokenSource();
        var options = Fast(processors: 8);
        options.UntilEmpty = false;
        options.PollInterval = TimeSpan.FromMilliseconds(200);
        var running = WorkerSuiteRun(q, options, (_, _) => Task.CompletedTask, graceful: stop.Token);
        Eventually.True(() => calls.Count(nameof(IQueueStore.AcquireAsync)) >= 6, "six idle polls");
        stop.Cancel();
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("graceful stop", summary.StoppedBecause);
        // One acquire per poll interval: 8 processors polling on their own would make 8 per interval.
        var polls = at.ToArray();
        for (var i = 1; i < 6; i++)
            Assert.True(polls[i] - polls[i - 1] >= TimeSpan.FromMilliseconds(180), $"poll {i + 1} came {(polls[i] - polls[i - 1]).TotalMilliseconds:F0} ms after the one before");
    }

}

public sealed class WorkerIdleThenBusyTests(SqliteTarget target) : IClassFixture<SqliteTarget>
{
    [BackendFact]
    public async Task A_worker_that_polled_idle_for_a_while_still_stops_at_max_tasks()
    {
        // Regression: every idle round left a wait for a free processor behind; the first release then woke
        // a stale one, and the worker waited for ever once it was busy.
        var config = target.NewConfig();
        using var real = Queue.Open(config);
        real.Initialize(); // a queue over a store the test built never creates its table
        var (counting, calls) = InterceptingStore.Wrap(new Storage.Sqlite.SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table));
        using var q = Queue.OpenWith(config, counting);
        var options = new WorkerOptions
        {
            Processors = 1, PollInterval = TimeSpan.FromMilliseconds(20), AliveTime = TimeSpan.FromSeconds(30),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100), MaxTasks = 1,
        };
        var log = new ConcurrentQueue<string>();
        var worker = new Worker(q, options, _ => new DelegateProcessor((_, _) => Task.CompletedTask), e => log.Enqueue(e.Message));
        var running = worker.RunAsync(default, default);
        Eventually.True(() => calls.Count(nameof(IQueueStore.AcquireAsync)) >= 15, "15 idle rounds");
        q.Submit("late", "t");
        await Task.WhenAny(running, Task.Delay(TimeSpan.FromSeconds(10)));
        Assert.True(running.IsCompleted, "the worker did not stop: " + string.Join(" | ", log));
        var summary = await running;
        Assert.Equal("max tasks", summary.StoppedBecause);
        Assert.Equal(1, summary.Succeeded);
    }
}
