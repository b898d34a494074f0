using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>
/// What overlaps in a busy worker (docs/worker.md, "Shape"): a processor runs its next task while its last task's
/// finish is still being written, and a processor that frees up while an acquire is in flight gets an acquire of
/// its own beside it. Each is shown by holding one store call back until the overlap happened, so a worker that
/// serialized them would wait for ever (the test then fails at its limit), not just run slower.
/// </summary>
public sealed class WorkerOverlapTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private static WorkerOptions Options(int processors) => new()
    {
        Processors = processors, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(60),
        HeartbeatInterval = TimeSpan.FromSeconds(5), UntilEmpty = true,
    };

    private Queue Open(Func<System.Reflection.MethodInfo, object?[]?, IQueueStore, object?> replace)
    {
        var config = sqlite.NewConfig();
        var (store, _) = InterceptingStore.Wrap(new Storage.Sqlite.SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table), replace);
        var q = Queue.OpenWith(config, store);
        q.Initialize();
        return q;
    }

    [Fact]
    public async Task A_processor_runs_its_next_task_while_the_last_ones_finish_is_still_being_written()
    {
        var secondStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finishesLanded = 0;
        var landedWhenSecondStarted = -1;
        // No finish reaches the database before the second task has started.
        async Task<IReadOnlySet<long>> HeldApplyAsync(IQueueStore inner, IReadOnlyList<LeaseWrite> writes)
        {
            await secondStarted.Task;
            var applied = await inner.ApplyAsync(writes, CancellationToken.None);
            Interlocked.Add(ref finishesLanded, writes.Count);
            return applied;
        }
        var q = Open((method, args, inner) => method.Name == nameof(IQueueStore.ApplyAsync) ? HeldApplyAsync(inner, (IReadOnlyList<LeaseWrite>)args![0]!) : null);
        using var _ = q;
        q.SubmitMany([new TaskSubmission("first", "t"), new TaskSubmission("second", "t")]);
        var worker = new Worker(q, Options(processors: 1), _ => new DelegateProcessor((task, _) =>
        {
            if (task.Key == "second")
            {
                landedWhenSecondStarted = Volatile.Read(ref finishesLanded);
                secondStarted.TrySetResult();
            }
            return Task.CompletedTask;
        }));

        var summary = await worker.RunAsync(default, default).WaitAsync(Limit);

        Assert.Equal(2, summary.Succeeded);
        Assert.Equal(0, landedWhenSecondStarted); // one processor ran "second" while "first" was still held, its finish unwritten
        Assert.All(q.List(), t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
    }

    [Fact]
    public async Task A_processor_that_frees_up_while_an_acquire_is_in_flight_gets_an_acquire_of_its_own()
    {
        var release = new Dictionary<string, TaskCompletionSource>
        {
            ["a1"] = new(TaskCreationOptions.RunContinuationsAsynchronously),
            ["a2"] = new(TaskCreationOptions.RunContinuationsAsynchronously),
        };
        var started = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var secondAcquireHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var letSecondGo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new object();
        int calls = 0, inFlight = 0, mostInFlight = 0, asked = 0, mostAsked = 0;
        // The second acquire is held until another one arrives beside it.
        async Task<IReadOnlyList<TaskRow>> AcquireAsync(IQueueStore inner, int max, long aliveMs, string? session)
        {
            int call;
            lock (gate)
            {
                call = ++calls;
                inFlight++;
                asked += max;
                mostInFlight = Math.Max(mostInFlight, inFlight);
                mostAsked = Math.Max(mostAsked, asked);
                if (inFlight > 1) letSecondGo.TrySetResult();
            }
            try
            {
                if (call == 2)
                {
                    secondAcquireHeld.TrySetResult();
                    await letSecondGo.Task;
                }
                return await inner.AcquireAsync(max, aliveMs, session, CancellationToken.None);
            }
            finally
            {
                lock (gate) { inFlight--; asked -= max; }
            }
        }
        var q = Open((method, args, inner) => method.Name == nameof(IQueueStore.AcquireAsync)
            ? AcquireAsync(inner, (int)args![0]!, (long)args[1]!, (string?)args[2]) : null);
        using var _ = q;
        q.SubmitMany(new[] { "a1", "a2" }.Concat(Enumerable.Range(0, 10).Select(i => $"k{i}")).Select(k => new TaskSubmission(k, "t")));
        var worker = new Worker(q, Options(processors: 2), _ => new DelegateProcessor(async (task, _) =>
        {
            started.AddOrUpdate(task.Key, 1, (_, n) => n + 1);
            if (release.TryGetValue(task.Key, out var wait)) await wait.Task;
        }));
        var run = worker.RunAsync(default, default);

        Eventually.True(() => started.ContainsKey("a1") && started.ContainsKey("a2"), "the first acquire's two tasks running");
        release["a1"].SetResult();                        // a processor frees up: the second acquire goes out, and is held
        await secondAcquireHeld.Task.WaitAsync(Limit);
        release["a2"].SetResult();                        // the other frees up while it is in flight: a third goes out beside it
        var summary = await run.WaitAsync(Limit);

        Assert.Equal(12, summary.Succeeded);
        Assert.All(started, s => Assert.Equal(1, s.Value));
        Assert.True(mostInFlight >= 2, $"at most {mostInFlight} acquire(s) were in flight at once");
        Assert.True(mostAsked <= 2, $"acquires in flight asked for {mostAsked} tasks in all, for 2 processors");
    }
}
