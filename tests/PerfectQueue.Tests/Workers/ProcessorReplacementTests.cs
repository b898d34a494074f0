using System.Collections.Concurrent;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>Processors replaced per slot: one that says it is broken, recycling after N tasks, new ones that keep failing to start, and timeouts.</summary>
public sealed class ProcessorReplacementTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    private sealed class CountingProcessor(int slot, int generation, Func<AcquiredTask, CancellationToken, Task<bool>> run) : ITaskProcessor
    {
        private bool _usable = true;
        public int Slot { get; } = slot;
        public int Generation { get; } = generation;
        public bool Disposed { get; private set; }
        public bool IsUsable => _usable;
        public async Task<string?> RunAsync(AcquiredTask task, CancellationToken stop)
        {
            _usable = await run(task, stop);
            return $"{Slot}.{Generation}";
        }
        public ValueTask DisposeAsync() { Disposed = true; return ValueTask.CompletedTask; }
    }

    private static WorkerOptions Fast(int processors = 1) => new()
    {
        Processors = processors, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
        HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = true,
        Child = new ChildProcessSettings { KillInterval = TimeSpan.FromMilliseconds(200) },
    };

    private Queue Open()
    {
        var config = sqlite.NewConfig();
        config.RetryWait = TimeSpan.Zero;
        var q = Queue.Open(config);
        q.Initialize();
        return q;
    }

    [Fact]
    public async Task A_processor_that_reports_itself_broken_is_disposed_and_its_slot_gets_a_new_one()
    {
        using var q = Open();
        q.SubmitMany(Enumerable.Range(0, 4).Select(i => new TaskSubmission($"k{i}", "t")));
        var made = new ConcurrentQueue<CountingProcessor>();
        var generation = 0;
        var log = new ConcurrentQueue<string>();
        var worker = new Worker(q, Fast(), i =>
        {
            // Every processor runs one task and then says it cannot go on (as a child process that died would).
            var p = new CountingProcessor(i, Interlocked.Increment(ref generation), (_, _) => Task.FromResult(false));
            made.Enqueue(p);
            return p;
        }, e => log.Enqueue(e.Message));
        var summary = await worker.RunAsync(default, default);
        Assert.Equal(4, summary.Succeeded);
        Assert.True(made.Count >= 4, $"{made.Count} processors made");
        Assert.Equal(made.Count - 1, summary.ProcessorRestarts); // the first was made at start
        Assert.All(made, p => Assert.True(p.Disposed));
        Assert.Equal(4, Enumerable.Range(0, 4).Select(i => q[$"k{i}"].GetInfo().Message).Distinct().Count());
        Assert.Contains(log, l => l == "processor 1 is replaced: it cannot run another task");
    }

    [Fact]
    public async Task MaxTasksPerProcessor_recycles_a_processor_after_that_many_tasks()
    {
        using var q = Open();
        q.SubmitMany(Enumerable.Range(0, 7).Select(i => new TaskSubmission($"k{i}", "t")));
        var generation = 0;
        var options = Fast();
        options.MaxTasksPerProcessor = 3;
        var worker = new Worker(q, options, i => new CountingProcessor(i, Interlocked.Increment(ref generation), (_, _) => Task.FromResult(true)));
        var summary = await worker.RunAsync(default, default);
        Assert.Equal(7, summary.Succeeded);
        var perProcessor = Enumerable.Range(0, 7).GroupBy(i => q[$"k{i}"].GetInfo().Message).Select(g => g.Count()).OrderByDescending(n => n).ToList();
        Assert.Equal([3, 3, 1], perProcessor);
        Assert.Equal(2, summary.ProcessorRestarts);
    }

    [Fact]
    public async Task A_replacement_that_keeps_failing_to_start_stops_the_worker_with_a_clear_error_and_loses_nothing()
    {
        using var q = Open();
        q.SubmitMany(Enumerable.Range(0, 3).Select(i => new TaskSubmission($"k{i}", "t")));
        var calls = 0;
        var log = new ConcurrentQueue<string>();
        var worker = new Worker(q, Fast(), i =>
        {
            if (Interlocked.Increment(ref calls) > 1) throw new InvalidOperationException("the child process could not start: no pwsh");
            return new CountingProcessor(i, 1, (_, _) => Task.FromResult(false));
        }, e => log.Enqueue(e.Message)) { ProcessorStartBackoff = TimeSpan.FromMilliseconds(10) };
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => worker.RunAsync(default, default));
        Assert.Contains($"processor 1 could not be started again ({ProcessorSlots.StartTries} tries), so the worker stops: the child process could not start: no pwsh", e.Message);
        Assert.Equal(1 + ProcessorSlots.StartTries, calls);
        Assert.Equal(TaskOutcome.Succeeded, q["k0"].GetInfo().Outcome);
        Assert.Equal(TaskState.Waiting, q["k1"].GetInfo().Status); // never acquired: nothing lost
        Assert.Equal(TaskState.Waiting, q["k2"].GetInfo().Status);
        Assert.Empty(q.ListWorkers());
    }

    [Fact]
    public async Task A_timed_out_handler_that_obeys_its_stop_is_retried_with_the_limit_in_its_message_and_its_processor_kept()
    {
        using var q = Open();
        q.Submit("slow", "t");
        var generation = 0;
        var options = Fast();
        options.Timeout = TimeSpan.FromMilliseconds(300);
        var worker = new Worker(q, options, i => new CountingProcessor(i, Interlocked.Increment(ref generation), async (t, stop) =>
        {
            if (t.Attempt == 1) await Task.Delay(Timeout.Infinite, stop);
            return true;
        }), null) { RouteTimeout = type => type == "t" ? TimeSpan.FromSeconds(30) : null };
        var summary = await worker.RunAsync(default, default);
        Assert.Equal(1, summary.TimedOut);
        Assert.Equal(1, summary.Retried);
        Assert.Equal(0, summary.Killed);
        Assert.Equal(0, summary.ProcessorRestarts);
        var info = q["slow"].GetInfo();
        Assert.Equal(TaskOutcome.Succeeded, info.Outcome);
        Assert.Equal(2, info.Attempts);
        Assert.Equal(1, generation);
    }

    [Fact]
    public async Task A_handler_that_ignores_its_stop_is_abandoned_at_the_stop_limit_and_its_task_concluded_without_it()
    {
        using var q = Open();
        q.Submit("deaf", "t");
        q.Submit("next", "t");
        using var release = new ManualResetEventSlim();
        var generation = 0;
        var options = Fast();
        options.Timeout = TimeSpan.FromMilliseconds(200);
        var worker = new Worker(q, options, i => new CountingProcessor(i, Interlocked.Increment(ref generation), (t, _) =>
        {
            if (t.Key == "deaf" && t.Attempt == 1) release.Wait(); // ignores every stop
            return Task.FromResult(true);
        }));
        try
        {
            var summary = await worker.RunAsync(default, default);
            Assert.Equal(1, summary.TimedOut);
            Assert.Equal(1, summary.Killed);
            Assert.Equal(1, summary.ProcessorRestarts);
            Assert.Equal(3, summary.Processed);
            var deaf = q["deaf"].GetInfo();
            Assert.Equal(TaskOutcome.Succeeded, deaf.Outcome);
            Assert.Equal(2, deaf.Attempts);
            Assert.Equal(TaskOutcome.Succeeded, q["next"].GetInfo().Outcome);
        }
        finally { release.Set(); }
    }
}

