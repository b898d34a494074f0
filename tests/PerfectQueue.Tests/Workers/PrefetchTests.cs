using System.Collections.Concurrent;
using System.Reflection;
using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>
/// WorkerOptions.Prefetch (issue 13, item 3): tasks leased ahead of the free processors in the same acquire, heartbeated
/// while they wait, never started once cancelled, lost or expired, released at every stop. Written once, run per backend.
/// </summary>
public abstract class PrefetchSuite(IBackendTarget target) : IDisposable
{
    private readonly List<Queue> _queues = [];

    private (Queue Queue, InterceptingStore Calls) Open(Action<QueueConfig>? configure = null,
        Func<MethodInfo, object?[]?, IQueueStore, object?>? replace = null)
    {
        var config = target.NewConfig();
        configure?.Invoke(config);
        var (inner, _) = QueueStores.Create(config);
        var (store, calls) = InterceptingStore.Wrap(inner, replace);
        var q = Queue.OpenWith(config, store);
        q.Initialize();
        lock (_queues) _queues.Add(q);
        return (q, calls);
    }

    private Queue Another(Queue q)
    {
        var other = Queue.Open(q.Settings.Clone());
        lock (_queues) _queues.Add(other);
        return other;
    }

    public void Dispose()
    {
        lock (_queues) foreach (var q in _queues) q.Dispose();
        GC.SuppressFinalize(this);
    }

    private static WorkerOptions Options(int processors, int prefetch, bool untilEmpty = false, int? maxTasks = null, double aliveSeconds = 30) => new()
    {
        Processors = processors, Prefetch = prefetch, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(aliveSeconds),
        HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = untilEmpty, MaxTasks = maxTasks,
    };

    private static Worker NewWorker(Queue q, WorkerOptions options, Func<AcquiredTask, CancellationToken, Task> handler, ConcurrentQueue<string> log) =>
        new(q, options, _ => new DelegateProcessor(handler), e => log.Enqueue(e.Message)) { CancelGracePeriod = TimeSpan.FromMilliseconds(300) };

    private static async Task<WorkerSummary> Within(Task<WorkerSummary> run, ConcurrentQueue<string> log, double seconds = 30)
    {
        try { return await run.WaitAsync(TimeSpan.FromSeconds(seconds)); }
        catch (TimeoutException) { throw new TimeoutException($"the worker did not stop within {seconds}s: {Lines(log)}"); }
    }

    private static string Lines(ConcurrentQueue<string> log) => string.Join(" | ", log);

    private static void SubmitInOrder(Queue q, int count, string prefix = "k", SubmitOptions? options = null)
    {
        for (var i = 0; i < count; i++) q.Submit($"{prefix}{i:00}", "t", options: options); // one by one: acquire order is submit order
    }

    private static int Held(Queue q) => q.List(new TaskFilter { Statuses = [TaskState.Running] }).Count;

    private static int AcquireMax(object?[]? args) => (int)args![0]!;

    [BackendFact]
    public async Task One_acquire_leases_the_free_processors_and_the_prefetch_and_a_full_ready_queue_is_not_polled_for()
    {
        var maxes = new ConcurrentQueue<int>();
        var (q, calls) = Open(replace: (m, args, _) => { if (m.Name == nameof(IQueueStore.AcquireAsync)) maxes.Enqueue(AcquireMax(args)); return null; });
        SubmitInOrder(q, 30);
        var go = new TaskCompletionSource();
        var ran = new ConcurrentDictionary<string, int>();
        var log = new ConcurrentQueue<string>();
        var options = Options(processors: 2, prefetch: 8, untilEmpty: true);
        options.PollInterval = TimeSpan.FromSeconds(1); // polls that are not the prefetch's own are rare enough to count
        var worker = NewWorker(q, options, async (t, _) =>
        {
            ran.AddOrUpdate(t.Key, 1, (_, n) => n + 1);
            await go.Task;
        }, log);
        var running = worker.RunAsync(default, default);

        Eventually.True(() => worker.RunningCount == 2 && worker.PrefetchedCount == 8, "2 running and 8 prefetched: " + Lines(log));
        Assert.Equal(10, Held(q)); // leased: they show Running
        var beats = calls.Count(nameof(IQueueStore.HeartbeatAsync));
        Eventually.True(() => calls.Count(nameof(IQueueStore.HeartbeatAsync)) >= beats + 5, "five more heartbeats");
        Assert.Equal(1, calls.Count(nameof(IQueueStore.AcquireAsync))); // full: no poll while the handlers are busy
        Assert.Equal(new[] { 10 }, maxes.ToArray());

        go.SetResult();
        var summary = await Within(running, log);
        Assert.Equal(30, summary.Succeeded);
        Assert.All(ran.Values, n => Assert.Equal(1, n));
        Assert.Equal(30, ran.Count);
        // Refilled at half empty (at least 4 a poll), and not polled for at each task end once the queue ran dry:
        // 10 + 5 × 4 and a short or empty poll or three. Without prefetch 2 processors take 15 polls at least.
        Assert.True(calls.Count(nameof(IQueueStore.AcquireAsync)) <= 10, $"{calls.Count(nameof(IQueueStore.AcquireAsync))} acquires for 30 tasks: {string.Join(",", maxes)}");
        Assert.All(q.List(), t => Assert.Equal(1, t.Attempts));
    }

    [BackendFact]
    public async Task Prefetched_tasks_are_heartbeated_while_they_wait_past_their_alive_time()
    {
        // alive_time 3 s: a prefetched lease nobody extends expires while the one handler runs, and another client takes it.
        // (1 s was too short for the first heartbeat of a cold process: its JIT alone took longer, and the fence dropped them.)
        var (q, calls) = Open();
        SubmitInOrder(q, 5);
        var go = new TaskCompletionSource();
        var log = new ConcurrentQueue<string>();
        var attempts = new ConcurrentQueue<(string Key, int Attempt)>();
        var worker = NewWorker(q, Options(processors: 1, prefetch: 4, untilEmpty: true, aliveSeconds: 3), async (t, _) =>
        {
            attempts.Enqueue((t.Key, t.Attempt));
            await go.Task;
        }, log);
        var running = worker.RunAsync(default, default);
        Eventually.True(() => worker.PrefetchedCount == 4, "4 prefetched: " + Lines(log));
        var beats = calls.Count(nameof(IQueueStore.HeartbeatAsync));
        Eventually.True(() => calls.Count(nameof(IQueueStore.HeartbeatAsync)) >= beats + 75, "75 heartbeats (2.5 alive times)");

        var other = Another(q);
        Assert.Empty(other.PollMulti(10)); // every lease is still held
        Assert.Equal(5, Held(q));
        go.SetResult();
        var summary = await Within(running, log);
        Assert.Equal(5, summary.Succeeded);
        Assert.Equal(0, summary.Lost);
        Assert.All(attempts, a => Assert.Equal(1, a.Attempt));
        Assert.Equal(5, attempts.Count);
    }

    [BackendFact]
    public async Task A_graceful_stop_releases_the_prefetched_tasks_at_once_attempts_unchanged_while_the_running_one_ends()
    {
        var (q, _) = Open();
        SubmitInOrder(q, 10);
        var go = new TaskCompletionSource();
        var ran = new ConcurrentQueue<string>();
        var log = new ConcurrentQueue<string>();
        using var graceful = new CancellationTokenSource();
        var worker = NewWorker(q, Options(processors: 1, prefetch: 5), async (t, _) => { ran.Enqueue(t.Key); await go.Task; }, log);
        var running = worker.RunAsync(graceful.Token, default);
        Eventually.True(() => worker.PrefetchedCount == 5, "5 prefetched: " + Lines(log));

        graceful.Cancel();
        // Given back before the running handler ends: another worker may take them now.
        Eventually.True(() => q.List(new TaskFilter { Statuses = [TaskState.Waiting] }).Count == 9, "9 waiting again: " + Lines(log));
        Assert.False(running.IsCompleted);
        go.SetResult();
        var summary = await Within(running, log);

        Assert.Equal("graceful stop", summary.StoppedBecause);
        Assert.Equal(1, summary.Succeeded);
        Assert.Equal(5, summary.Released);
        Assert.Equal(new[] { "k00" }, ran.ToArray());
        var tasks = q.List();
        Assert.Equal(10, tasks.Count); // nothing lost
        Assert.All(tasks.Where(t => t.Key != "k00"), t => { Assert.Equal(TaskState.Waiting, t.Status); Assert.Equal(0, t.Attempts); });
        Assert.Empty(Another(q).GetHistory("k01")!); // (the intercepting store keeps no history: a plain client reads it) // never started: no attempt in its history
    }

    [BackendFact]
    public async Task An_immediate_stop_and_a_stop_request_release_the_prefetched_tasks_too()
    {
        foreach (var how in new[] { "immediate", "Stop-PQWorker" })
        {
            var (q, _) = Open();
            SubmitInOrder(q, 6);
            var log = new ConcurrentQueue<string>();
            using var immediate = new CancellationTokenSource();
            var worker = NewWorker(q, Options(processors: 2, prefetch: 3), async (_, stop) => await Task.Delay(Timeout.Infinite, stop), log);
            var running = worker.RunAsync(default, immediate.Token);
            Eventually.True(() => worker.RunningCount == 2 && worker.PrefetchedCount == 3, $"{how}: 2 running and 3 prefetched: " + Lines(log));
            if (how == "immediate") immediate.Cancel();
            else
            {
                q.RequestWorkerStop(worker.SessionId!);
                Eventually.True(() => q.List(new TaskFilter { Statuses = [TaskState.Waiting] }).Count == 4, $"{how}: the 3 prefetched released: " + Lines(log));
                immediate.Cancel(); // the running handlers wait for ever; a graceful stop leaves them be
            }
            var summary = await Within(running, log);
            Assert.Equal(5, summary.Released); // 2 running (stopped) + 3 prefetched
            Assert.All(q.List(), t => { Assert.Equal(TaskState.Waiting, t.Status); Assert.Equal(0, t.Attempts); });
        }
    }

    [BackendFact]
    public async Task A_cancel_request_for_a_prefetched_task_ends_it_cancelled_without_running_it()
    {
        var (q, _) = Open();
        SubmitInOrder(q, 4);
        var go = new TaskCompletionSource();
        var ran = new ConcurrentQueue<string>();
        var log = new ConcurrentQueue<string>();
        var worker = NewWorker(q, Options(processors: 1, prefetch: 3, untilEmpty: true), async (t, _) =>
        {
            ran.Enqueue(t.Key);
            if (t.Key == "k00") await go.Task;
        }, log);
        var running = worker.RunAsync(default, default);
        Eventually.True(() => worker.PrefetchedCount == 3, "3 prefetched: " + Lines(log));

        Assert.Equal(TaskState.CancelRequested, q["k02"].CancelRequest()); // held by this worker: only flagged
        // Ended at the next heartbeat, while the only processor is still busy: not when it would have started.
        Eventually.True(() => q["k02"].GetInfo().Outcome == TaskOutcome.Cancelled, "k02 cancelled: " + Lines(log));
        Assert.Equal(2, worker.PrefetchedCount);
        go.SetResult();
        var summary = await Within(running, log);

        Assert.Equal(new[] { "k00", "k01", "k03" }, ran.ToArray());
        Assert.Equal(3, summary.Succeeded);
        Assert.Equal(1, summary.Cancelled);
        var cancelled = q["k02"].GetInfo();
        Assert.Equal(0, cancelled.Attempts); // as at acquire: the acquisition that never ran is no attempt
        Assert.Empty(Another(q).GetHistory("k02")!);
    }

    [BackendFact]
    public async Task Max_tasks_with_prefetch_never_runs_or_leases_more_than_max_tasks()
    {
        var maxes = new ConcurrentQueue<int>();
        var (q, _) = Open(replace: (m, args, _) => { if (m.Name == nameof(IQueueStore.AcquireAsync)) maxes.Enqueue(AcquireMax(args)); return null; });
        SubmitInOrder(q, 20);
        var ran = 0;
        var log = new ConcurrentQueue<string>();
        var summary = await Within(NewWorker(q, Options(processors: 2, prefetch: 10, maxTasks: 5), (_, _) => { Interlocked.Increment(ref ran); return Task.CompletedTask; }, log)
            .RunAsync(default, default), log);

        Assert.Equal("max tasks", summary.StoppedBecause);
        Assert.Equal(5, ran);
        Assert.Equal(5, summary.Succeeded);
        Assert.Equal(0, summary.Released); // never leased one it may not run
        Assert.Equal(5, maxes.First());
        Assert.Equal(15, q.List(new TaskFilter { Statuses = [TaskState.Waiting] }).Count);
        Assert.All(q.List(new TaskFilter { Statuses = [TaskState.Waiting] }), t => Assert.Equal(0, t.Attempts));
    }

    [BackendFact]
    public async Task Prefetched_tasks_count_toward_max_running_which_is_never_exceeded()
    {
        var (q, _) = Open();
        SubmitInOrder(q, 12, "u", new SubmitOptions { User = "u", MaxRunning = 2 });
        SubmitInOrder(q, 6, "free");
        var peak = 0;
        var log = new ConcurrentQueue<string>();
        var worker = NewWorker(q, Options(processors: 2, prefetch: 10, untilEmpty: true), async (t, _) =>
        {
            var held = q.List(new TaskFilter { Statuses = [TaskState.Running], Users = ["u"] }).Count;
            InterlockedMax(ref peak, held);
            await Task.Delay(5);
        }, log);
        var summary = await Within(worker.RunAsync(default, default), log, seconds: 60);
        Assert.Equal(18, summary.Succeeded);
        Assert.InRange(peak, 1, 2);
    }

    [BackendFact]
    public async Task A_prefetched_task_whose_lease_ran_out_in_an_outage_is_dropped_never_run()
    {
        // Heartbeats fail for a while (the database unreachable): past alive_time the fence marks every lease lost.
        var outage = false;
        var (q, _) = Open(replace: (m, _, _) => m.Name == nameof(IQueueStore.HeartbeatAsync) && Volatile.Read(ref outage)
            ? Task.FromException<IReadOnlyList<ExtendedLease>>(new TimeoutException("the database is unreachable"))
            : null);
        SubmitInOrder(q, 3);
        var runs = new ConcurrentQueue<(string Key, int Attempt)>();
        var log = new ConcurrentQueue<string>();
        var worker = NewWorker(q, Options(processors: 1, prefetch: 2, untilEmpty: true, aliveSeconds: 1), async (t, stop) =>
        {
            runs.Enqueue((t.Key, t.Attempt));
            if (t.Attempt == 1) await Task.Delay(Timeout.Infinite, stop); // the first attempts wait for the fence to stop them
        }, log);
        var running = worker.RunAsync(default, default);
        Eventually.True(() => worker.PrefetchedCount == 2, "2 prefetched: " + Lines(log));
        Volatile.Write(ref outage, true);
        Eventually.True(() => log.Count(l => l.Contains("its lease could not be renewed") && l.Contains("prefetched and not started")) == 2, "both prefetched fenced: " + Lines(log));
        Volatile.Write(ref outage, false);
        var summary = await Within(running, log);

        // Their leases expired; the worker acquired them again, as attempt 2. Attempt 1 of k01 and k02 never ran.
        Assert.DoesNotContain(runs, r => r.Key != "k00" && r.Attempt == 1);
        Assert.Contains(("k01", 2), runs);
        Assert.Contains(("k02", 2), runs);
        Assert.Equal(2, log.Count(l => l.Contains("prefetched, never started: dropped")));
        Assert.Equal(3, summary.Lost); // k00 fenced while it ran, k01 and k02 dropped
        Assert.All(q.List(), t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }
}

/// <summary>Prefetch's bounds, in WorkerOptions and in the config file.</summary>
public sealed class PrefetchOptionsTests
{
    [Theory]
    [InlineData(-1)]
    [InlineData(WorkerOptions.MaxPrefetch + 1)]
    public void A_prefetch_out_of_bounds_is_refused_naming_the_bounds(int prefetch)
    {
        var e = Assert.Throws<ArgumentException>(() => new WorkerOptions { Prefetch = prefetch }.Validate());
        Assert.Equal("Prefetch", e.ParamName);
        Assert.Contains($"between 0 (none) and {WorkerOptions.MaxPrefetch} (got {prefetch})", e.Message);
    }

    [Fact]
    public void The_config_key_prefetch_reaches_the_worker_options_and_defaults_to_none()
    {
        Assert.Equal(0, WorkerOptions.From(new QueueConfig()).Prefetch);
        var config = QueueConfig.FromDictionary(new System.Collections.Hashtable { ["prefetch"] = 50 });
        Assert.Equal(50, WorkerOptions.From(config).Prefetch);
        var bad = Assert.Throws<ConfigException>(() => QueueConfig.FromDictionary(new System.Collections.Hashtable { ["prefetch"] = 5000 }, "pq.yml"));
        Assert.Equal("prefetch", bad.ConfigKey);
        Assert.Contains("pq.yml: prefetch: must be between 0 (none) and 1000 (got 5000)", bad.Message);
    }
}
