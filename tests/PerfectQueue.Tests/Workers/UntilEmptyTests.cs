using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

public sealed class UntilEmptyTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    [Fact]
    public async Task UntilEmpty_does_not_stop_while_a_running_task_hides_its_users_due_tasks()
    {
        var config = sqlite.NewConfig();
        using var real = Queue.Open(config);
        real.SubmitMany(Enumerable.Range(0, 6).Select(i => new TaskSubmission($"k{i}", "t", null, new SubmitOptions { User = "ops", MaxRunning = 1 })));
        // Every acquire takes a while to come back, so the one running task ends while a poll that found
        // nothing (its user at max_running) is still on its way: the queue is not empty for all that.
        var (slow, _) = InterceptingStore.Wrap(new Storage.Sqlite.SqliteQueueStore(Storage.QueueStores.SqlitePath(config.Url!), config.Table),
            (method, args, inner) => method.Name == nameof(IQueueStore.AcquireAsync) ? SlowAcquireAsync(inner, args!) : null);
        using var q = Queue.OpenWith(config, slow);
        var options = new WorkerOptions
        {
            Processors = 4, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = true,
        };
        var summary = await new Worker(q, options, _ => new DelegateProcessor((_, _) => Task.CompletedTask))
            .RunAsync(default, default).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(6, summary.Succeeded);
    }

    private static async Task<IReadOnlyList<TaskRow>> SlowAcquireAsync(IQueueStore inner, object?[] args)
    {
        var rows = await inner.AcquireAsync((int)args[0]!, (long)args[1]!, (CancellationToken)args[2]!);
        await Task.Delay(40);
        return rows;
    }
}
