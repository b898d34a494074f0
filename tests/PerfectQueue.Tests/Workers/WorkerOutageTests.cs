using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using PerfectQueue.Storage;
using PerfectQueue.Storage.Postgres;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>
/// A worker whose database stalls or goes away (PostgreSQL behind a proxy the test pauses, or a port nobody
/// listens on): it fences itself, and its polling does not speed up.
/// </summary>
[Backend("postgresql")]
public sealed class PostgresWorkerOutageTests(PostgresTarget target) : IClassFixture<PostgresTarget>
{
    private static QueueConfig Through(QueueConfig config, int port)
    {
        var copy = config.Clone();
        var url = new UriBuilder(config.Url!) { Host = "127.0.0.1", Port = port };
        copy.Url = url.Uri.ToString();
        return copy;
    }

    private static int TargetPort(QueueConfig config) => new Uri(config.Url!).Port is var p and > 0 ? p : 5432;

    [BackendFact]
    public async Task A_worker_that_cannot_renew_a_lease_for_alive_time_stops_its_handler_before_another_worker_takes_the_task_and_writes_nothing_more()
    {
        var config = target.NewConfig();
        if (config.Url is null) return; // a raw connection string: no port to put a proxy in front of
        using var direct = Queue.Open(config);
        direct.Initialize();
        using var proxy = new PausableTcpProxy("127.0.0.1", TargetPort(config));
        using var stalled = Queue.Open(Through(config, proxy.Port));

        var options = new WorkerOptions
        {
            Processors = 1, PollInterval = TimeSpan.FromMilliseconds(100), AliveTime = TimeSpan.FromSeconds(4),
            HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        };
        var clock = Stopwatch.StartNew();
        var aStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var aStoppedAt = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var bStartedAt = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var bGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var logA = new ConcurrentQueue<string>();
        var logB = new ConcurrentQueue<string>();
        using var stopA = new CancellationTokenSource();
        using var stopB = new CancellationTokenSource();

        direct.Submit("T", "t");
        var workerA = new Worker(stalled, options, _ => new DelegateProcessor(async (t, stop) =>
        {
            if (t.Key != "T") return;
            aStarted.TrySetResult();
            try { await Task.Delay(Timeout.Infinite, stop); }
            finally { aStoppedAt.TrySetResult(clock.Elapsed); }
        }), e => logA.Enqueue(e.Message)) { CancelGracePeriod = TimeSpan.FromMinutes(5) };   // only the fence can stop it in time
        var runningA = workerA.RunAsync(stopA.Token, default);
        await aStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var workerB = new Worker(direct, options, _ => new DelegateProcessor(async (t, _) =>
        {
            bStartedAt.TrySetResult(clock.Elapsed);
            await bGate.Task;
            await t.FinishAsync("finished by B");
        }), e => logB.Enqueue(e.Message));
        var runningB = workerB.RunAsync(stopB.Token, default);

        proxy.Pause();                                         // A's database traffic stalls from here on
        var pausedAt = clock.Elapsed;
        var stoppedA = await aStoppedAt.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var startedB = await bStartedAt.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(stoppedA < startedB, $"A's handler stopped at {stoppedA}, after B took the task over at {startedB}: " + string.Join(" | ", logA));
        Assert.Contains(logA, l => l.StartsWith("T: its lease could not be renewed") && l.Contains("another worker may hold it now"));
        var held = direct["T"].GetInfo();
        Assert.Equal(TaskState.Running, held.Status);          // B's lease
        Assert.Equal(2, held.Attempts);

        // The stall ends after more than alive_time; what A had in flight (a heartbeat) lands and is fenced
        // off by its token. A works again (only A is free to run U), and has written nothing to T.
        var waited = options.AliveTime + TimeSpan.FromMilliseconds(200) - (clock.Elapsed - pausedAt);
        if (waited > TimeSpan.Zero) await Task.Delay(waited);  // the stall must outlast alive_time (a duration under test, not a synchronization)
        proxy.Resume();
        direct.Submit("U", "t");
        Eventually.True(() => direct["U"].GetInfo().Outcome == TaskOutcome.Succeeded, "A to work again: " + string.Join(" | ", logA), seconds: 30);
        var after = direct["T"].GetInfo();
        Assert.Equal(TaskState.Running, after.Status);
        Assert.Equal(held.Attempts, after.Attempts);
        Assert.Equal(held.Message, after.Message);

        bGate.SetResult();
        Eventually.True(() => direct["T"].GetInfo().Outcome == TaskOutcome.Succeeded, "B to finish the task");
        stopA.Cancel();
        stopB.Cancel();
        var summaryA = await runningA.WaitAsync(TimeSpan.FromSeconds(30));
        var summaryB = await runningB.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, summaryA.Lost);
        Assert.Equal(1, summaryA.Succeeded);                   // U
        Assert.Equal(0, summaryA.Retried + summaryA.Released + summaryA.Failed + summaryA.Cancelled);
        Assert.Equal(1, summaryB.Succeeded);
        var final = direct["T"].GetInfo();
        Assert.Equal("finished by B", final.Message);
        Assert.Equal(2, final.Attempts);
    }

    [BackendFact]
    public async Task Waiting_for_a_submit_lasts_its_timeout_when_the_listener_cannot_connect()
    {
        var config = target.NewConfig();
        if (config.Url is null) return;
        var free = new TcpListener(IPAddress.Loopback, 0);
        free.Start();
        var port = ((IPEndPoint)free.LocalEndpoint).Port;
        free.Stop();                                           // nobody listens there: every connect is refused at once
        var (store, _) = QueueStores.Create(Through(config, port));
        using var _ = store;
        Assert.IsType<PostgresQueueStore>(store);
        for (var i = 0; i < 2; i++)
        {
            var clock = Stopwatch.StartNew();
            Assert.False(await store.WaitForSubmitAsync(TimeSpan.FromMilliseconds(400), default));
            Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(380), $"the wait returned after {clock.Elapsed.TotalMilliseconds:F0} ms");
        }
    }
}

/// <summary>The worker's own pace during an outage, whatever the store's wait does.</summary>
public sealed class WorkerOutagePaceTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    [Fact]
    public async Task During_an_outage_acquires_back_off_from_the_poll_interval_even_if_the_stores_wait_returns_at_once()
    {
        var config = sqlite.NewConfig();
        using var real = Queue.Open(config);
        // Every acquire fails, and waiting for a submit returns at once (as PostgreSQL's did when it could not listen).
        var clock = Stopwatch.StartNew();
        var acquires = new ConcurrentQueue<TimeSpan>();
        var (failing, calls) = InterceptingStore.Wrap(new Storage.Sqlite.SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table),
            (method, _, _) => method.Name switch
            {
                nameof(IQueueStore.AcquireAsync) => Fail(acquires, clock),
                nameof(IQueueStore.WaitForSubmitAsync) => Task.FromResult(false),
                _ => null,
            });
        using var q = Queue.OpenWith(config, failing);
        var log = new ConcurrentQueue<string>();
        var options = new WorkerOptions
        {
            Processors = 2, PollInterval = TimeSpan.FromMilliseconds(100), AliveTime = TimeSpan.FromSeconds(30),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100),
        };
        using var stop = new CancellationTokenSource();
        // On a pool thread: a worker that spins without waiting would otherwise never hand the test its thread back.
        var running = Task.Run(() => new Worker(q, options, _ => new DelegateProcessor((_, _) => Task.CompletedTask), e => log.Enqueue(e.Message)).RunAsync(stop.Token, default));
        // Stop at the 5th acquire: 100 + 200 + 400 + 800 ms of backoff lie before it.
        Eventually.True(() => calls.Count(nameof(IQueueStore.AcquireAsync)) >= 5, "five acquires: " + string.Join(" | ", log));
        stop.Cancel();
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("graceful stop", summary.StoppedBecause);
        var failed = log.Where(l => l.StartsWith("acquire failed")).ToList();
        Assert.True(failed.Count >= 5, string.Join(" | ", log));
        Assert.Contains("trying again in 0.1s", failed[0]);
        Assert.Contains("trying again in 0.2s", failed[1]);
        Assert.Contains("trying again in 0.4s", failed[2]);
        Assert.Contains("trying again in 0.8s", failed[3]);
        var at = acquires.ToArray();
        for (var i = 1; i < 5; i++)
        {
            var gap = at[i] - at[i - 1];
            var planned = TimeSpan.FromMilliseconds(100 << (i - 1));
            Assert.True(gap >= planned * 0.9, $"acquire {i + 1} came {gap.TotalMilliseconds:F0} ms after the one before (planned {planned.TotalMilliseconds} ms)");
        }
    }

    private static Task<IReadOnlyList<TaskRow>> Fail(ConcurrentQueue<TimeSpan> at, Stopwatch clock)
    {
        at.Enqueue(clock.Elapsed);
        return Task.FromException<IReadOnlyList<TaskRow>>(new IOException("Connection refused"));
    }
}
