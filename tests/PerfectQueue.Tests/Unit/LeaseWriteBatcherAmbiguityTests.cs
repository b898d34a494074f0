using System.Collections.Concurrent;
using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Tests.Workers;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>
/// A group commit whose connection is lost after the server committed it: the batcher sends each write again,
/// the store refuses them (their leases are gone), and yet each holder's own write did land. Per backend.
/// </summary>
public abstract class LeaseWriteBatcherAmbiguitySuite(IBackendTarget target) : IDisposable
{
    private readonly List<Queue> _queues = [];
    private Task? _holdApply;

    private Queue Open()
    {
        var config = target.NewConfig();
        var (inner, _) = QueueStores.Create(config);
        var (store, _) = InterceptingStore.Wrap(inner, (method, args, real) => method.Name != nameof(IQueueStore.ApplyAsync) ? null
            : ((IReadOnlyList<LeaseWrite>)args![0]!).Count > 1 ? CommitThenLoseConnectionAsync(real, (IReadOnlyList<LeaseWrite>)args[0]!)
            : _holdApply is { } hold ? HeldAsync(hold, real, (IReadOnlyList<LeaseWrite>)args[0]!)
            : null);
        var q = Queue.OpenWith(config, store);
        q.Initialize();
        _queues.Add(q);
        return q;
    }

    public void Dispose()
    {
        foreach (var q in _queues) q.Dispose();
        GC.SuppressFinalize(this);
    }

    private static async Task<IReadOnlySet<long>> CommitThenLoseConnectionAsync(IQueueStore real, IReadOnlyList<LeaseWrite> writes)
    {
        await real.ApplyAsync(writes, CancellationToken.None);
        throw new IOException("Unable to read data from the transport connection: Connection reset by peer.");
    }

    private static async Task<IReadOnlySet<long>> HeldAsync(Task hold, IQueueStore real, IReadOnlyList<LeaseWrite> writes)
    {
        await hold;
        return await real.ApplyAsync(writes, CancellationToken.None);
    }

    [BackendFact]
    public async Task Writes_committed_by_a_batch_whose_answer_was_lost_are_reported_applied_not_lost()
    {
        var q = Open();
        q.SubmitMany(Enumerable.Range(0, 5).Select(i => new TaskSubmission($"k{i}", "t")));
        var held = await q.PollMultiAsync(5);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _holdApply = gate.Task;
        var first = held[0].FinishAsync("alone");                         // in flight, held back
        var finishes = held.Skip(1).Take(2).Select(t => t.FinishAsync($"done {t.Key}")).ToList();
        var retried = held[3].RetryAsync("again", TimeSpan.FromHours(1));  // the rest queue up as one batch,
        var released = held[4].ReleaseAsync();                             // which commits, then loses its connection
        _holdApply = null;
        gate.SetResult();
        await first;
        await Task.WhenAll(finishes);                                      // none is told "finished by somebody else"
        Assert.True(await retried);
        await released;
        Assert.All(held.Take(3), t => Assert.Equal(TaskOutcome.Succeeded, t.FinishedAs));
        Assert.All(held.Skip(1).Take(2), t => Assert.Equal($"done {t.Key}", q[t.Key].GetInfo().Message));
        Assert.Equal(TaskState.Scheduled, q[held[3].Key].GetInfo().Status);
        Assert.Equal(TaskState.Waiting, q[held[4].Key].GetInfo().Status);
    }

    [BackendFact]
    public async Task A_worker_never_reports_its_own_committed_finish_as_lost()
    {
        var q = Open();
        q.SubmitMany(Enumerable.Range(0, 6).Select(i => new TaskSubmission($"k{i}", "t")));
        var log = new ConcurrentQueue<string>();
        // Six handlers end at once: their finishes share batches, and every batch of several loses its answer.
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new CountdownEvent(6);
        var options = new WorkerOptions
        {
            Processors = 6, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = true,
        };
        var running = new Worker(q, options, _ => new DelegateProcessor(async (_, _) => { started.Signal(); await go.Task; }), e => log.Enqueue(e.Message))
            .RunAsync(default, default);
        Assert.True(started.Wait(TimeSpan.FromSeconds(10)), string.Join(" | ", log));
        go.SetResult();
        var summary = await running.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(6, summary.Succeeded);
        Assert.Equal(0, summary.Lost);
        Assert.DoesNotContain(log, l => l.Contains("was lost") || l.Contains(": lost"));
    }
}
