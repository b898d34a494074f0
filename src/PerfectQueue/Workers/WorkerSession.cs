using PerfectQueue.Storage;

namespace PerfectQueue.Workers;

/// <summary>
/// The worker's session row (host, pid, processors, running count, last beat), beaten with the leases, so any
/// host can list it (<see cref="Queue.ListWorkers"/>) and ask it to stop (<see cref="Queue.RequestWorkerStop"/>).
/// Session writes are bookkeeping: when they fail the worker logs it and goes on processing tasks.
/// </summary>
internal sealed class WorkerSession(Queue queue, WorkerOptions options, Func<int> runningCount, Action<string> log)
{
    private long? _startedAt;
    private bool _failing;
    // Set once the worker marked its own row Stopping: a stop flag a beat reads back after that is its own, not Stop-PQWorker's.
    private volatile bool _markedStopping;

    public string? Id { get; private set; }

    /// <summary>A session reads as dead after this long without a beat (docs/worker.md, "Session states").</summary>
    public static readonly TimeSpan DeadFloor = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long the session row stays alive after a beat: three missed beats, at least <see cref="DeadFloor"/> (a
    /// slow round trip is no death), at most the alive time (a worker whose leases ran out is not alive). The row
    /// keeps no beat interval, so the worker writes this as its alive_until and every reader just compares.
    /// </summary>
    public static TimeSpan DeadAfter(WorkerOptions options)
    {
        var missedBeats = options.HeartbeatInterval * 3;
        var window = missedBeats > DeadFloor ? missedBeats : DeadFloor;
        return window < options.AliveTime ? window : options.AliveTime;
    }

    private WorkerBeat Beat() => new(Id!, Environment.MachineName, Environment.ProcessId, options.Processors, runningCount(),
        (long)DeadAfter(options).TotalMilliseconds, _startedAt)
    { ProcessorType = options.ProcessorType == ProcessorType.Process ? "process" : "thread" };

    // Registers under a fresh id (another on the rare clash). On failure the worker runs on: its beats
    // insert the row once the database takes them.
    public async Task StartAsync()
    {
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            Id = Queue.NewWorkerId();
            try
            {
                _startedAt = await queue.RegisterWorkerAsync(Beat()).ConfigureAwait(false);
                if (_startedAt is not null) return;
            }
            catch (Exception e)
            {
                _failing = true;
                log($"worker session {Id} not recorded, tasks go on (Get-PQWorker lists this worker once a heartbeat records it): {e.Message}");
                return;
            }
        }
    }

    /// <summary>One beat: the running count, and whether Stop-PQWorker asked this worker to stop (then <paramref name="stopRequested"/> is cancelled).</summary>
    public async Task BeatAsync(CancellationTokenSource stopRequested)
    {
        try
        {
            var stop = await queue.BeatWorkerAsync(Beat()).ConfigureAwait(false);
            if (_failing) log($"worker session {Id} recorded again");
            _failing = false;
            if (stop && !_markedStopping && !stopRequested.IsCancellationRequested)
            {
                log("stop requested by Stop-PQWorker: graceful stop (nothing new is acquired; running tasks end)");
                await stopRequested.CancelAsync().ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            if (!_failing) log($"worker session beat failed, tasks go on; trying again every heartbeat: {e.Message}");
            _failing = true;
        }
    }

    /// <summary>
    /// Shows the session as Stopping (its stop_requested flag, the one Stop-PQWorker sets) once the worker stops
    /// acquiring for any other reason (Ctrl+C, SIGTERM, Stop-Job, an immediate stop, MaxTasks), so Get-PQWorker tells
    /// a draining worker from a working one. Bounded: a slow database never holds the drain up.
    /// </summary>
    public async Task MarkStoppingAsync()
    {
        if (Id is null) return;
        _markedStopping = true;
        using var bounded = new CancellationTokenSource(MarkStoppingLimit);
        try { await queue.RequestWorkerStopAsync(Id, bounded.Token).ConfigureAwait(false); }
        catch (Exception e)
        {
            log($"worker session {Id} not marked Stopping (Get-PQWorker shows it Alive while it drains): {e.Message}");
        }
    }

    private static readonly TimeSpan MarkStoppingLimit = TimeSpan.FromSeconds(5);

    // A clean exit removes the row; a killed worker leaves it, to show as dead until cleanup deletes it.
    public async Task EndAsync()
    {
        try { await queue.RemoveWorkerAsync(Id!).ConfigureAwait(false); }
        catch (Exception e)
        {
            log($"worker session {Id} not removed (it shows as dead after the alive time, and cleanup deletes it): {e.Message}");
        }
    }
}
