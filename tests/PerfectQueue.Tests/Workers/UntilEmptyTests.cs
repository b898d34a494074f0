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
        // An acquire made while the one running task runs finds nothing (its user is at max_running), and its
        // answer is held back until that task has ended: the worker then sees "nothing came back, nothing runs",
        // and must still not stop. The queue's own "anything due?" is made to say no, so only the worker's rule
        // (a poll made while a task ran proves nothing) keeps it going.
        Worker? worker = null;
        var acquireStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var nextPoll = new System.Collections.Concurrent.ConcurrentDictionary<string, Task>();   // per task: the poll after its own
        var (held, _) = InterceptingStore.Wrap(new Storage.Sqlite.SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table),
            (method, args, inner) => method.Name switch
            {
                nameof(IQueueStore.AcquireAsync) => HeldAcquireAsync(inner, args!, worker!, nextPoll,
                    Interlocked.Exchange(ref acquireStarted, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)),
                    () => Volatile.Read(ref acquireStarted).Task),
                nameof(IQueueStore.AnyDueOrRunningAsync) => Task.FromResult(false),
                _ => null,
            });
        using var q = Queue.OpenWith(config, held);
        var options = new WorkerOptions
        {
            Processors = 4, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = true,
        };
        // Each handler runs until the worker's next poll has read the queue, so that poll is made while it runs.
        worker = new Worker(q, options, _ => new DelegateProcessor((t, _) => nextPoll[t.Key]));
        var summary = await worker.RunAsync(default, default).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("empty", summary.StoppedBecause);
        Assert.Equal(6, summary.Succeeded);
    }

    private static async Task<IReadOnlyList<TaskRow>> HeldAcquireAsync(IQueueStore inner, object?[] args, Worker worker,
        System.Collections.Concurrent.ConcurrentDictionary<string, Task> nextPoll, TaskCompletionSource started, Func<Task> next)
    {
        var ranDuringPoll = worker.RunningCount > 0;
        var rows = await inner.AcquireAsync((int)args[0]!, (long)args[1]!, (string?)args[2], (CancellationToken)args[3]!);
        started.SetResult();                                     // the task running meanwhile may end now
        foreach (var row in rows) nextPoll[row.Key] = next();    // polls are sequential: the next one fires this
        if (ranDuringPoll && rows.Count == 0)
            while (worker.RunningCount > 0) await Task.Delay(5);   // the answer arrives after the running task ended
        return rows;
    }
}
