using System.Collections.Concurrent;
using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>A worker's session row while it runs, and a stop requested through it; run per backend.</summary>
public abstract partial class WorkerSessionSuite(IBackendTarget target) : IDisposable
{
    private readonly List<Queue> _queues = [];

    private Queue Open()
    {
        var q = Queue.Open(target.NewConfig());
        q.Initialize();
        _queues.Add(q);
        return q;
    }

    public void Dispose()
    {
        foreach (var q in _queues) q.Dispose();
        GC.SuppressFinalize(this);
    }

    private static WorkerOptions Fast(int processors = 1, bool untilEmpty = true) => new()
    {
        Processors = processors, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
        HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = untilEmpty,
    };

    [BackendFact]
    public async Task A_running_worker_has_a_session_with_its_processors_and_running_count_and_it_is_gone_after_it_stops()
    {
        var q = Open();
        q.Submit("a", "t");
        q.Submit("b", "t");
        var release = new TaskCompletionSource();
        var started = 0;
        var worker = new Worker(q, Fast(processors: 3), _ => new DelegateProcessor(async (_, _) =>
        {
            Interlocked.Increment(ref started);
            await release.Task;
        }));
        var running = worker.RunAsync(default, default);
        try
        {
            Eventually.True(() => Volatile.Read(ref started) == 2, "both tasks to start");
            var session = Eventually.Get(() => q.ListWorkers().SingleOrDefault(w => w.Running == 2), "a beat with 2 running tasks");
            Assert.Equal(worker.SessionId, session.Id);
            Assert.Equal(3, session.Processors);
            Assert.Equal(Environment.MachineName, session.Host);
            Assert.Equal(Environment.ProcessId, session.Pid);
            Assert.Equal(WorkerState.Alive, session.State);
            Assert.True(session.LastBeatAt > session.StartedAt);
            // Dead after three missed beats: 3 x 100 ms, raised to the 10 s floor (the alive time, 30 s, is the ceiling).
            Assert.Equal(session.LastBeatAt.AddSeconds(10), session.AliveUntil);
        }
        finally
        {
            release.TrySetResult();
        }
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(worker.SessionId, summary.SessionId);
        Assert.Empty(q.ListWorkers());
    }

    [BackendFact]
    public async Task A_stop_request_stops_a_running_worker_gracefully_its_task_finishes_and_nothing_new_is_acquired()
    {
        var q = Open();
        q.SubmitMany(Enumerable.Range(0, 3).Select(i => new TaskSubmission($"k{i}", "t")));
        var started = new TaskCompletionSource<string>();
        var release = new TaskCompletionSource();
        var log = new ConcurrentQueue<string>();
        var worker = new Worker(q, Fast(untilEmpty: false), _ => new DelegateProcessor(async (t, _) =>
        {
            started.TrySetResult(t.Key);
            await release.Task;
        }), e => log.Enqueue(e.Message));
        var running = worker.RunAsync(default, default);
        try
        {
            var first = await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
            var asked = q.RequestWorkerStop(worker.SessionId!);
            Assert.NotNull(asked);
            Assert.Equal(WorkerState.Stopping, asked.State);
            Eventually.True(() => log.Any(l => l.Contains("stop requested by Stop-PQWorker", StringComparison.Ordinal)), "the worker to see the request at a heartbeat");
            Assert.False(running.IsCompleted, "the running task holds the worker until it ends");
            Assert.Equal(WorkerState.Stopping, Assert.Single(q.ListWorkers()).State);
            release.SetResult();
            var summary = await running.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal("stop requested", summary.StoppedBecause);
            Assert.Equal(1, summary.Processed);
            Assert.Equal(1, summary.Succeeded);
            Assert.Equal(TaskOutcome.Succeeded, q[first].GetInfo().Outcome);
            Assert.Equal(2, q.List(new TaskFilter { Statuses = [TaskState.Waiting] }).Count);
            Assert.Empty(q.ListWorkers());
        }
        finally
        {
            release.TrySetResult();
        }
    }
}

public abstract partial class WorkerSessionSuite
{
    [BackendFact]
    public async Task A_graceful_stop_shows_the_session_Stopping_while_it_drains_and_the_summary_keeps_the_callers_reason()
    {
        var q = Open();
        q.Submit("held", "t");
        var started = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        var log = new ConcurrentQueue<string>();
        using var graceful = new CancellationTokenSource();
        var worker = new Worker(q, Fast(untilEmpty: false), _ => new DelegateProcessor(async (_, _) =>
        {
            started.TrySetResult();
            await release.Task;
        }), e => log.Enqueue(e.Message));
        var running = worker.RunAsync(graceful.Token, default);
        try
        {
            await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(WorkerState.Alive, Eventually.Get(() => q.ListWorkers().SingleOrDefault(), "the session").State);
            await graceful.CancelAsync();   // what Ctrl+C, SIGTERM, SIGINT and Stop-Job do
            var stopping = Eventually.Get(() => q.ListWorkers().SingleOrDefault(w => w.State == WorkerState.Stopping), "the session to show Stopping");
            Assert.True(stopping.StopRequested);
            // Beats read the flag back: the worker knows it set it itself, so no "Stop-PQWorker" line and no change of reason.
            var seen = stopping.LastBeatAt;
            Eventually.True(() => q.ListWorkers().Single().LastBeatAt > seen, "a beat after the Stopping write");
            Assert.False(running.IsCompleted, "the running task holds the worker until it ends");
            release.SetResult();
            var summary = await running.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal("graceful stop", summary.StoppedBecause);
            Assert.DoesNotContain(log, l => l.Contains("Stop-PQWorker", StringComparison.Ordinal));
            Assert.Empty(q.ListWorkers());
        }
        finally
        {
            release.TrySetResult();
        }
    }
}

public sealed class WorkerSessionFailureTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    [Fact]
    public async Task Failing_session_writes_are_logged_once_and_never_stop_task_processing()
    {
        var config = sqlite.NewConfig();
        using var real = Queue.Open(config);
        real.SubmitMany(Enumerable.Range(0, 4).Select(i => new TaskSubmission($"k{i}", "t")));
        // Session writes fail (no rights on the sessions table, say): tasks must still run.
        var refused = new InvalidOperationException("permission denied for table perfectqueue_workers");
        var (failing, calls) = InterceptingStore.Wrap(new Storage.Sqlite.SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table),
            (method, _, _) => method.Name switch
            {
                nameof(IQueueStore.RegisterWorkerAsync) => Task.FromException<long?>(refused),
                nameof(IQueueStore.BeatWorkerAsync) => Task.FromException<bool>(refused),
                nameof(IQueueStore.RemoveWorkerAsync) => Task.FromException(refused),
                _ => null,
            });
        using var q = Queue.OpenWith(config, failing);
        var log = new ConcurrentQueue<string>();
        var options = new WorkerOptions
        {
            Processors = 2, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
            HeartbeatInterval = TimeSpan.FromMilliseconds(50), UntilEmpty = true,
        };
        // Each task lasts a few heartbeats, so beats fail while tasks run.
        var summary = await new Worker(q, options, _ => new DelegateProcessor(async (_, _) => await Task.Delay(200)), e => log.Enqueue(e.Message))
            .RunAsync(default, default).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(4, summary.Succeeded);
        Assert.NotNull(summary.SessionId);
        var beats = calls.Count(nameof(IQueueStore.BeatWorkerAsync));
        Assert.True(beats >= 2, $"beats tried: {beats}");
        Assert.Single(log, l => l.Contains("not recorded, tasks go on", StringComparison.Ordinal) && l.Contains("permission denied", StringComparison.Ordinal));
        Assert.DoesNotContain(log, l => l.Contains("beat failed", StringComparison.Ordinal));   // already said: not repeated every heartbeat
        Assert.Single(log, l => l.Contains("not removed", StringComparison.Ordinal));
        Assert.Empty(real.ListWorkers());
    }
}
