using System.Diagnostics;
using PerfectQueue.Storage;

namespace PerfectQueue.Workers;

/// <summary>
/// The tasks a worker leased ahead of its free processors (<see cref="WorkerOptions.Prefetch"/>), in the order the acquire
/// returned them. The fetch loop adds and takes them; the <see cref="LeaseKeeper"/> heartbeats and fences them with the
/// running ones (<see cref="Snapshot"/>). One is never started once its cancel was asked (it ends Cancelled, as at
/// acquire), once it was lost, or once its lease may have expired (it is dropped); at stop the rest are released.
/// These writes end no attempt, so they leave no history row and do not count the attempt (docs/worker.md, "Prefetch").
/// <para>
/// <c>fenceAfter</c> and <c>fence</c> are the <see cref="LeaseKeeper"/>'s: how long a lease may go unrenewed, and what
/// marks such a task lost. <c>wake</c> wakes the fetch loop, so a waiting task's cancel or loss is acted on at once, not
/// when a processor frees up.
/// </para>
/// </summary>
internal sealed class ReadyTasks(Queue queue, WorkerCounters counters, Func<TimeSpan> fenceAfter, Func<RunningTask, TimeSpan, bool> fence, Action wake, Action<string> log)
{
    private readonly object _gate = new();
    private readonly LinkedList<(RunningTask Entry, CancellationTokenRegistration Wake)> _waiting = new();
    private volatile bool _sweep; // a waiting task's token was cancelled (cancel asked, or lost) since the last sweep

    public int Count { get { lock (_gate) return _waiting.Count; } }

    public RunningTask[] Snapshot()
    {
        lock (_gate) return _waiting.Select(w => w.Entry).ToArray();
    }

    public void Add(RunningTask entry)
    {
        entry.Prefetched = true;
        // A cancel request or a loss cancels the task's token (from the heartbeat or the fence).
        var registration = entry.Task.CancellationToken.Register(() => { _sweep = true; wake(); });
        lock (_gate) _waiting.AddLast((entry, registration));
    }

    /// <summary>
    /// The next task to start, or null when none is left. The ones passed over on the way (cancel asked, lost, lease
    /// unrenewed for too long) are ended or dropped; the writes that end them join <paramref name="writes"/>.
    /// </summary>
    public RunningTask? TakeNext(List<Task> writes)
    {
        while (Pop() is { } entry)
        {
            if (Unstartable(entry) is { } end) { writes.Add(end); continue; }
            entry.Prefetched = false;
            return entry;
        }
        return null;
    }

    /// <summary>Ends (or drops) the waiting tasks whose cancel was asked or that were lost since the last sweep.</summary>
    public void SweepIfAsked(List<Task> writes)
    {
        if (!_sweep) return;
        _sweep = false;
        List<RunningTask> gone = [];
        lock (_gate)
        {
            for (var node = _waiting.First; node is not null;)
            {
                var next = node.Next;
                if (node.Value.Entry.Task.CancellationToken.IsCancellationRequested)
                {
                    node.Value.Wake.Dispose();
                    gone.Add(node.Value.Entry);
                    _waiting.Remove(node);
                }
                node = next;
            }
        }
        foreach (var entry in gone)
            if (Unstartable(entry) is { } end) writes.Add(end);
    }

    /// <summary>
    /// Gives every waiting task back (the worker stops): released at once, its attempt not counted, so another worker
    /// may run it; in one go, so the releases share commits. A cancelled one ends Cancelled, a lost one is dropped. Never throws.
    /// </summary>
    public Task ReleaseAllAsync()
    {
        var writes = new List<Task>();
        while (Pop() is { } entry)
            writes.Add(Unstartable(entry) ?? ReleaseAsync(entry));
        return Task.WhenAll(writes);
    }

    private RunningTask? Pop()
    {
        lock (_gate)
        {
            if (_waiting.First is not { } first) return null;
            _waiting.RemoveFirst();
            first.Value.Wake.Dispose();
            return first.Value.Entry;
        }
    }

    // Null when the task may start; else the write (or nothing, for a drop) that ends it without running it.
    private Task? Unstartable(RunningTask entry)
    {
        var task = entry.Task;
        var unrenewed = Stopwatch.GetElapsedTime(entry.RenewedAt);
        // The fence loop checks on a timer; at start it is checked again, so a lease that ran out during an outage is never started.
        if (task.LostBecause is null && unrenewed >= fenceAfter()) fence(entry, unrenewed);
        if (task.LostBecause is { } lost)
        {
            entry.Ended();
            Interlocked.Increment(ref counters.Lost);
            log($"{task.Key} ({task.Type}) prefetched, never started: dropped, nothing written ({lost.Reason})");
            return Task.CompletedTask;
        }
        return task.IsCancellationRequested ? EndCancelledAsync(entry) : null;
    }

    // As an acquire ends a cancel-requested task: Cancelled, the acquisition not counted as an attempt.
    private async Task EndCancelledAsync(RunningTask entry)
    {
        var task = entry.Task;
        entry.Ended();
        var write = LeaseWrite.CancelledBeforeStart(task.Lease, queue.RetentionMs);
        try
        {
            if (await queue.Writes.WriteAsync(write, CancellationToken.None).ConfigureAwait(false))
            {
                Interlocked.Increment(ref counters.Processed);
                Interlocked.Increment(ref counters.Cancelled);
                log($"end {task.Key} ({task.Type}) not started: cancelled while prefetched (cancel was requested)");
            }
            else
            {
                Interlocked.Increment(ref counters.Lost);
                log($"{task.Key} ({task.Type}) prefetched, never started: lost before its cancel was written; nothing written");
            }
        }
        catch (Exception e)
        {
            log($"{task.Key} prefetched, cancel requested, not recorded (its lease expires after the alive time and an acquire ends it Cancelled): {LeaseKeeper.Describe(e)}");
        }
    }

    private async Task ReleaseAsync(RunningTask entry)
    {
        var task = entry.Task;
        entry.Ended();
        try
        {
            if (await queue.Writes.WriteAsync(new LeaseWrite(task.Lease, LeaseWriteKind.Release), CancellationToken.None).ConfigureAwait(false))
            {
                Interlocked.Increment(ref counters.Released);
                log($"{task.Key} ({task.Type}) prefetched, not started as the worker stopped: released");
            }
            else
            {
                Interlocked.Increment(ref counters.Lost);
                log($"{task.Key} ({task.Type}) prefetched, not started: lost before it was released; nothing written");
            }
        }
        catch (Exception e)
        {
            log($"{task.Key} prefetched, not released (its lease expires after the alive time): {LeaseKeeper.Describe(e)}");
        }
    }
}
