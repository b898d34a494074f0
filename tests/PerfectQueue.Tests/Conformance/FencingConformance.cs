using System.Collections.Concurrent;
using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// The lease-token fence, tested where it matters: in the database. A first holder's lease expires, a second
/// holder acquires the task (a new token), and the first holder then writes WITHOUT a heartbeat first, so
/// nothing on the client knows it lost the task and only the SQL's <c>lease_token</c> condition can refuse
/// the write. (A heartbeat first, or a second holder that already finished, would let the client-side lost
/// flag or the <c>finished_at</c> guard refuse it and hide a missing token fence.) Every refused write must
/// leave the row exactly as it was: the second holder still holds it and can finish it.
/// </summary>
public abstract class FencingConformance(IBackendTarget target) : BackendSuite(target)
{
    // The first holder's lease: short, because every test waits it out (by polling the database clock).
    private static readonly TimeSpan StaleLease = TimeSpan.FromMilliseconds(300);
    // The second holder's lease: long enough never to run out during a test on a loaded machine.
    private static readonly TimeSpan LiveLease = TimeSpan.FromMinutes(5);

    /// <summary>Waits until the database clock has passed <paramref name="deadline"/>: then that lease has expired.</summary>
    private static void WaitPast(Queue q, DateTimeOffset deadline) =>
        Eventually.True(() => q.Now() > deadline, $"the database clock to pass {deadline:O}");

    private static TaskRow Row(Queue q, AcquiredTask task) => Assert.Single(q.Store.GetByIdsAsync([task.Lease.Id], default).GetAwaiter().GetResult());

    /// <summary>The stored row as a comparable text: every column a holder's write could change.</summary>
    private static string Snapshot(TaskRow r) =>
        $"due={r.DueAt} token={r.LeaseToken} attempts={r.Attempts} cancel={r.CancelRequested} finished={r.FinishedAt} " +
        $"outcome={r.Outcome} message={r.Message} purge={r.PurgeAt} data={Convert.ToHexString(r.Data ?? [])}";

    /// <summary>
    /// One task, taken over: <c>stale</c> held it with a short lease that expired, <c>live</c> acquired it after
    /// (a new token). Nothing has told <c>stale</c>: it never heartbeat.
    /// </summary>
    private (Queue Q, AcquiredTask Stale, AcquiredTask Live, string Before) TakenOver(string key)
    {
        var q = Open();
        var second = OpenAnother(q);
        q.Submit(key, "t", new { v = 1 });
        var stale = q.Poll(StaleLease)!;
        WaitPast(q, stale.LeaseExpiresAt);
        var live = second.Poll(LiveLease);
        Assert.NotNull(live);
        Assert.Equal(key, live.Key);
        Assert.Equal(2, live.Attempt);
        Assert.NotEqual(stale.Lease.Token, live.Lease.Token);
        Assert.Null(stale.LostBecause);                         // the client does not know: only the database can refuse
        return (q, stale, live, Snapshot(Row(q, live)));
    }

    /// <summary>The stale write was refused as a takeover, changed nothing, and the live holder still owns the task.</summary>
    private static void AssertRefusedAndUnchanged(Queue q, AcquiredTask stale, AcquiredTask live, string before, PreemptedException e)
    {
        Assert.Equal(PreemptionReason.Reacquired, e.Reason);
        Assert.Equal(stale.Key, e.Key);
        Assert.Same(e, stale.LostBecause);                     // and the stale holder now knows
        Assert.True(stale.CancellationToken.IsCancellationRequested);
        Assert.Equal(before, Snapshot(Row(q, live)));

        var info = q[live.Key].GetInfo();
        Assert.Equal(TaskState.Running, info.Status);
        Assert.Null(info.Outcome);
        Assert.Null(info.Message);
        Assert.Equal(2, info.Attempts);
        Assert.Equal(1, (int)info.Data["v"]!);

        // The live holder is untouched: its lease is current and its writes apply.
        Assert.Equal(HeartbeatResult.Alive, live.Heartbeat(LiveLease));
        live.Finish("done by the second holder");
        info = q[live.Key].GetInfo();
        Assert.Equal(TaskOutcome.Succeeded, info.Outcome);
        Assert.Equal("done by the second holder", info.Message);
        Assert.Equal(2, info.Attempts);
    }

    [BackendFact]
    public void A_stale_holders_finish_is_refused_by_the_database_and_changes_nothing()
    {
        var (q, stale, live, before) = TakenOver("k");
        var e = Assert.Throws<PreemptedException>(() => stale.Finish("stale finish"));
        AssertRefusedAndUnchanged(q, stale, live, before, e);
    }

    [BackendFact]
    public void A_stale_holders_finish_with_another_outcome_is_refused_by_the_database()
    {
        var (q, stale, live, before) = TakenOver("k");
        var e = Assert.Throws<PreemptedException>(() => stale.Finish(TaskOutcome.Cancelled, "stale cancel"));
        AssertRefusedAndUnchanged(q, stale, live, before, e);
    }

    [BackendFact]
    public void A_stale_holders_retry_is_refused_by_the_database_and_changes_nothing()
    {
        var (q, stale, live, before) = TakenOver("k");
        var e = Assert.Throws<PreemptedException>(() => stale.Retry("stale error", TimeSpan.FromHours(1)));
        AssertRefusedAndUnchanged(q, stale, live, before, e);
    }

    [BackendFact]
    public async Task A_stale_holders_async_retry_is_refused_by_the_database_and_changes_nothing()
    {
        var (q, stale, live, before) = TakenOver("k");
        var e = await Assert.ThrowsAsync<PreemptedException>(() => stale.RetryAsync("stale error"));
        AssertRefusedAndUnchanged(q, stale, live, before, e);
    }

    [BackendFact]
    public void A_stale_holders_release_is_refused_by_the_database_and_changes_nothing()
    {
        var (q, stale, live, before) = TakenOver("k");
        var e = Assert.Throws<PreemptedException>(() => stale.Release());
        AssertRefusedAndUnchanged(q, stale, live, before, e);
    }

    [BackendFact]
    public void A_stale_holders_data_update_is_refused_by_the_database_and_changes_nothing()
    {
        var (q, stale, live, before) = TakenOver("k");
        var e = Assert.Throws<PreemptedException>(() => stale.UpdateData(new { v = 99 }));
        Assert.Equal(1, (int)stale.Data["v"]!);                 // the holder's copy is not changed either
        AssertRefusedAndUnchanged(q, stale, live, before, e);
    }

    [BackendFact]
    public async Task A_stale_holders_async_finish_and_data_update_are_refused_by_the_database()
    {
        var (q, stale, live, before) = TakenOver("k");
        // The first refusal marks the holder lost; the second is then refused before it reaches the database.
        var e = await Assert.ThrowsAsync<PreemptedException>(() => stale.UpdateDataAsync(new { v = 99 }));
        await Assert.ThrowsAsync<PreemptedException>(() => stale.FinishAsync("stale"));
        AssertRefusedAndUnchanged(q, stale, live, before, e);
    }

    /// <summary>
    /// The group-commit path: stale finish, retry and release queued together with a live holder's finish, so
    /// the batcher sends all four in one store call (one transaction). Only the live write may apply.
    /// </summary>
    [BackendFact]
    public async Task Stale_writes_in_one_group_commit_are_each_refused_and_a_live_write_beside_them_applies()
    {
        var q = Open();
        var second = OpenAnother(q);
        Task? hold = null;
        var batchSizes = new ConcurrentQueue<int>();
        var (store, _) = InterceptingStore.Wrap(QueueStores.Create(q.Settings).Store, (method, args, inner) =>
        {
            if (method.Name != nameof(IQueueStore.ApplyAsync)) return null;
            var writes = (IReadOnlyList<LeaseWrite>)args![0]!;
            batchSizes.Enqueue(writes.Count);
            return Volatile.Read(ref hold) is { } h ? HeldApplyAsync(h, inner, writes) : null;
        });
        var first = Queue.OpenWith(q.Settings, store);   // the first holder, whose group commits the test can hold back
        Track(first);

        q.Submit("lead", "t");
        q.Submit("live", "t");
        var mine = first.PollMulti(2, LiveLease).ToDictionary(t => t.Key);
        Assert.Equal(["lead", "live"], mine.Keys.Order().ToArray());
        string[] staleKeys = ["s-finish", "s-retry", "s-release"];
        foreach (var key in staleKeys) q.Submit(key, "t", new { v = 1 });
        var stale = first.PollMulti(3, StaleLease).ToDictionary(t => t.Key);
        Assert.Equal(staleKeys.Order().ToArray(), stale.Keys.Order().ToArray());
        WaitPast(q, stale.Values.Max(t => t.LeaseExpiresAt));
        var taken = second.PollMulti(10, LiveLease).ToDictionary(t => t.Key);
        Assert.Equal(staleKeys.Order().ToArray(), taken.Keys.Order().ToArray());   // lead and live are still held
        var before = staleKeys.ToDictionary(k => k, k => Snapshot(Row(q, taken[k])));

        // Hold the lead's finish in flight, so the next four queue up and go as one batch after it.
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref hold, gate.Task);
        var inFlight = mine["lead"].FinishAsync();
        var writes = new Dictionary<string, Task>
        {
            ["s-finish"] = stale["s-finish"].FinishAsync("stale finish"),
            ["s-retry"] = stale["s-retry"].RetryAsync("stale error", TimeSpan.FromHours(1)),
            ["s-release"] = stale["s-release"].ReleaseAsync(),
            ["live"] = mine["live"].FinishAsync("live finish"),
        };
        Volatile.Write(ref hold, null);
        gate.SetResult();
        await inFlight;
        var errors = new Dictionary<string, Exception?>();
        foreach (var (key, write) in writes)
        {
            try { await write; errors[key] = null; }
            catch (Exception e) { errors[key] = e; }
        }

        Assert.Contains(4, batchSizes);                          // the four went to the database together
        Assert.Null(errors["live"]);
        Assert.Equal(TaskOutcome.Succeeded, q["live"].GetInfo().Outcome);
        Assert.Equal("live finish", q["live"].GetInfo().Message);
        foreach (var key in staleKeys)
        {
            var e = Assert.IsType<PreemptedException>(errors[key]);
            Assert.Equal(PreemptionReason.Reacquired, e.Reason);
            Assert.Equal(before[key], Snapshot(Row(q, taken[key])));
            Assert.Equal(TaskState.Running, q[key].GetInfo().Status);
            Assert.Equal(HeartbeatResult.Alive, taken[key].Heartbeat(LiveLease));
            taken[key].Finish($"{key} done by the second holder");
            Assert.Equal(TaskOutcome.Succeeded, q[key].GetInfo().Outcome);
            Assert.Equal(2, q[key].GetInfo().Attempts);
        }
    }

    private static async Task<IReadOnlySet<long>> HeldApplyAsync(Task hold, IQueueStore inner, IReadOnlyList<LeaseWrite> writes)
    {
        await hold;
        return await inner.ApplyAsync(writes, CancellationToken.None);
    }

    /// <summary>
    /// The same fence straight at the store, without the engine around it: a write with the stale token applies
    /// to nothing, whichever kind it is; the current token's write then applies.
    /// </summary>
    [BackendFact]
    public async Task The_store_applies_only_writes_whose_token_is_current()
    {
        foreach (var kind in Enum.GetValues<LeaseWriteKind>())
        {
            var (q, stale, live, before) = TakenOver($"k-{kind}");
            var staleWrite = new LeaseWrite(stale.Lease, kind, nameof(TaskOutcome.Succeeded), "stale", DelayMs: 3_600_000, RetentionMs: 3_600_000);
            Assert.Empty(await q.Store.ApplyAsync([staleWrite], default));
            Assert.False(await q.Store.UpdateDataAsync(stale.Lease, [1, 2, 3], default));
            Assert.Equal(before, Snapshot(Row(q, live)));
            var applied = await q.Store.ApplyAsync([new LeaseWrite(live.Lease, LeaseWriteKind.Finish, nameof(TaskOutcome.Succeeded), "live")], default);
            Assert.Equal([live.Lease.Id], applied.ToArray());
        }
    }
}
