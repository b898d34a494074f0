using System.Diagnostics;

namespace PerfectQueue.Workers;

/// <summary>Why a running handler was told to stop; the first reason wins and decides how its task ends.</summary>
internal enum HandlerStop
{
    /// <summary>Nobody stopped it.</summary>
    None,
    /// <summary>Cancel was requested and the cancel grace period ran out: the task ends Cancelled.</summary>
    CancelRequested,
    /// <summary>The task was lost (another holder, force finished, its lease unrenewed): nothing is written.</summary>
    Lost,
    /// <summary>It ran past its timeout: the task is retried (Failed at max_attempts).</summary>
    TimedOut,
    /// <summary>The worker stops now (immediate stop, or the graceful kill limit passed): the task is released.</summary>
    Shutdown,
}

/// <summary>
/// One task a processor runs now (or, while <see cref="Prefetched"/>, one leased ahead that waits for a processor): its
/// lease, how it is stopped, and how long its lease went unrenewed.
/// </summary>
internal sealed class RunningTask
{
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _abandon = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private long _renewedAt;
    private int _fenced;
    private HandlerStop _stoppedBy;
    private bool _ended;
    private Timer? _abandonTimer;

    public RunningTask(AcquiredTask task, long renewedAt, TimeSpan stopLimit)
    {
        Task = task;
        _renewedAt = renewedAt;
        AcquiredAt = renewedAt;
        StopLimit = stopLimit;
    }

    public AcquiredTask Task { get; }
    /// <summary>When the acquire that leased it was sent (Stopwatch timestamp).</summary>
    public long AcquiredAt { get; }
    /// <summary>Cancelled when the handler must stop now; the processor stops it.</summary>
    public CancellationToken StopToken => _stop.Token;
    /// <summary>Completes when a stopped handler has had <see cref="StopLimit"/> to end: the worker then goes on without it.</summary>
    public Task Abandoned => _abandon.Task;
    public TimeSpan StopLimit { get; }
    public HandlerStop StoppedBy { get { lock (_gate) return _stoppedBy; } }
    /// <summary>The attempt's limit (the tightest of the worker's, the route's and the task's), for its messages.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>When the last renewal that succeeded was sent (Stopwatch timestamp): the lease lasts at least alive_time from it.</summary>
    public long RenewedAt => Interlocked.Read(ref _renewedAt);

    public void Renewed(long sentAt)
    {
        long seen;
        while ((seen = Interlocked.Read(ref _renewedAt)) < sentAt && Interlocked.CompareExchange(ref _renewedAt, sentAt, seen) != seen) { }
    }

    public bool TryFence() => Interlocked.Exchange(ref _fenced, 1) == 0;

    /// <summary>
    /// Set once its handler ended (or was abandoned) and the worker writes its end: a heartbeat then would find the
    /// row finished by this very write and report it lost to somebody else, so the heartbeat and the fence leave it alone.
    /// </summary>
    public volatile bool Concluding;

    /// <summary>True while the task waits in the worker's ready queue (<see cref="WorkerOptions.Prefetch"/>): no handler runs it yet.</summary>
    public volatile bool Prefetched;

    /// <summary>Holds leases the heartbeat should still extend.</summary>
    public bool NeedsRenewal => !Concluding && !Task.IsCompleted && Task.LostBecause is null;

    /// <summary>Tells the processor to stop the handler now; after <see cref="StopLimit"/> the worker abandons it. Returns false when it was stopped already.</summary>
    public bool StopNow(HandlerStop why)
    {
        lock (_gate)
        {
            if (_stoppedBy != HandlerStop.None || _ended) return false;
            _stoppedBy = why;
            _abandonTimer = new Timer(_ => _abandon.TrySetResult(), null, StopLimit, System.Threading.Timeout.InfiniteTimeSpan);
        }
        try { _stop.Cancel(); }
        catch (AggregateException) { /* a processor's stop callback threw; the token is cancelled anyway */ }
        catch (ObjectDisposedException) { /* it ended meanwhile */ }
        return true;
    }

    /// <summary>The handler ended (or was abandoned): no more stop, no more timers.</summary>
    public void Ended()
    {
        lock (_gate)
        {
            _ended = true;
            _abandonTimer?.Dispose();
        }
    }

    public static long Now => Stopwatch.GetTimestamp();
}
