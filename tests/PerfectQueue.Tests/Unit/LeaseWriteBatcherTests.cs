using PerfectQueue.Storage;
using PerfectQueue.Storage.Sqlite;
using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests.Unit;

public sealed class LeaseWriteBatcherTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    /// <summary>While set, ApplyAsync waits for this task before it reaches the database.</summary>
    private Task? _holdApply;
    /// <summary>While set, ApplyAsync of more than one write fails as a deadlock victim would.</summary>
    private volatile bool _failBatches;

    private (Queue Queue, InterceptingStore Counter) Open()
    {
        var config = sqlite.NewConfig();
        var (store, counter) = InterceptingStore.Wrap(new SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table),
            (method, args, inner) => method.Name != nameof(IQueueStore.ApplyAsync) ? null
                : _failBatches && ((IReadOnlyList<LeaseWrite>)args![0]!).Count > 1 ? Task.FromException<IReadOnlySet<long>>(new TimeoutException("deadlock victim"))
                : _holdApply is { } hold ? HeldApplyAsync(hold, inner, (IReadOnlyList<LeaseWrite>)args![0]!)
                : null);
        var queue = Queue.OpenWith(config, store);
        queue.Initialize();
        return (queue, counter);
    }

    private static async Task<IReadOnlySet<long>> HeldApplyAsync(Task hold, IQueueStore inner, IReadOnlyList<LeaseWrite> writes)
    {
        await hold;
        return await inner.ApplyAsync(writes, CancellationToken.None);
    }

    [Fact]
    public async Task Concurrent_finishes_share_commits_and_each_task_is_finished()
    {
        var (q, counter) = Open();
        using var _ = q;
        q.SubmitMany(Enumerable.Range(0, 200).Select(i => new TaskSubmission($"k{i}", "t")));
        var held = await q.PollMultiAsync(200);
        Assert.Equal(200, held.Count);

        using var go = new ManualResetEventSlim();
        var finishes = held.Select(t => Task.Run(() => { go.Wait(); return t.FinishAsync($"done {t.Key}"); })).ToList();
        go.Set();
        await Task.WhenAll(finishes);

        Assert.All(held, t => Assert.Equal(TaskOutcome.Succeeded, t.FinishedAs));
        Assert.All(q.List(), t => Assert.Equal($"done {t.Key}", t.Message));
        // 200 finishes racing each other: grouped into fewer transactions than one each.
        Assert.InRange(counter.Count(nameof(IQueueStore.ApplyAsync)), 1, 199);
    }

    [Fact]
    public async Task A_lost_lease_in_a_batch_fails_only_its_own_write()
    {
        var (q, _) = Open();
        using var __ = q;
        q.SubmitMany(Enumerable.Range(0, 20).Select(i => new TaskSubmission($"k{i}", "t")));
        var held = await q.PollMultiAsync(20);
        q["k7"].ForceFinish();   // k7's holder lost it
        var results = await Task.WhenAll(held.Select(async t =>
        {
            try { await t.FinishAsync(); return (t.Key, Error: (Exception?)null); }
            catch (Exception e) { return (t.Key, Error: e); }
        }));
        Assert.IsType<PreemptedException>(Assert.Single(results, r => r.Error is not null).Error);
        Assert.Equal("k7", Assert.Single(results, r => r.Error is not null).Key);
        Assert.Equal(19, q.List().Count(t => t.Outcome == TaskOutcome.Succeeded));
    }

    [Fact]
    public async Task A_holder_racing_itself_in_one_batch_finishes_once_and_the_other_write_is_refused()
    {
        var (q, _) = Open();
        using var __ = q;
        q.Submit("first", "t");
        q.Submit("raced", "t");
        var held = await q.PollMultiAsync(2);
        var first = held.Single(t => t.Key == "first");
        var raced = held.Single(t => t.Key == "raced");

        // Hold the first batch in flight, so both writes of "raced" queue up together for the next one.
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _holdApply = gate.Task;
        var inFlight = first.FinishAsync();
        var writes = new[] { raced.FinishAsync("finish"), raced.ReleaseAsync() };
        _holdApply = null;
        gate.SetResult();
        await inFlight;

        var outcomes = await Task.WhenAll(writes.Select(async w => { try { await w; return true; } catch (PerfectQueueException) { return false; } }));
        Assert.Equal(1, outcomes.Count(ok => ok));
        Assert.Equal(TaskOutcome.Succeeded, q["raced"].GetInfo().Outcome);
    }

    [Fact]
    public async Task A_failed_batch_is_applied_again_write_by_write_so_one_error_does_not_fail_its_neighbours()
    {
        var (q, counter) = Open();
        using var __ = q;
        q.SubmitMany(Enumerable.Range(0, 3).Select(i => new TaskSubmission($"k{i}", "t")));
        var held = await q.PollMultiAsync(3);
        _failBatches = true;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _holdApply = gate.Task;
        var first = held[0].FinishAsync();           // in flight, held
        var rest = held.Where(t => t != held[0]).Select(t => t.FinishAsync()).ToList();   // queued together: a batch of two, which fails
        _holdApply = null;
        gate.SetResult();
        await first;
        await Task.WhenAll(rest);
        Assert.All(q.List(), t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
        Assert.True(counter.Count(nameof(IQueueStore.ApplyAsync)) >= 4, "the held one, the failed batch of two, then two on their own");
    }
}
