using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

public sealed class WorkerStartTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    private sealed class TrackedProcessor : ITaskProcessor
    {
        public bool Disposed { get; private set; }
        public Task<string?> RunAsync(AcquiredTask task, CancellationToken stop) => Task.FromResult<string?>(null);
        public ValueTask DisposeAsync() { Disposed = true; return ValueTask.CompletedTask; }
    }

    [Fact]
    public async Task A_processor_that_cannot_start_ends_the_run_with_no_session_left_and_the_others_disposed()
    {
        using var q = Queue.Open(sqlite.NewConfig());
        q.Initialize();
        q.Submit("k", "t");
        var made = new List<TrackedProcessor>();
        var worker = new Worker(q, new WorkerOptions { Processors = 3, PollInterval = TimeSpan.FromMilliseconds(50), UntilEmpty = true }, i =>
        {
            if (i == 2) throw new InvalidOperationException("the initialization script failed");
            var p = new TrackedProcessor();
            made.Add(p);
            return p;
        });
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => worker.RunAsync(default, default));
        Assert.Contains("initialization script", e.Message);
        Assert.Equal(2, made.Count);
        Assert.All(made, p => Assert.True(p.Disposed));
        Assert.Empty(q.ListWorkers());
        Assert.Equal(TaskState.Waiting, q["k"].GetInfo().Status); // nothing was acquired
    }
}
