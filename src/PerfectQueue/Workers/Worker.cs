using System.Collections.Concurrent;
using System.Diagnostics;
using System.Data.Common;
using PerfectQueue.Storage;

namespace PerfectQueue.Workers;

/// <summary>
/// Runs handlers for a queue's tasks on a set of processors. One fetcher acquires for every free processor in
/// one statement; one heartbeat loop extends every lease in one round trip, so an idle worker costs one acquire
/// per poll interval whatever its processor count. What a handler's end means lives here, once:
/// <list type="bullet">
/// <item>returned normally: finished Succeeded (Cancelled if cancel was asked);</item>
/// <item>threw: retried with the error as message (Failed once max_attempts is spent; Cancelled if cancel was asked);</item>
/// <item>stopped by a shutdown: released, the attempt not counted;</item>
/// <item>the task was lost (re-acquired elsewhere, force-finished): nothing is written to it.</item>
/// </list>
/// A handler that finished, retried or released the task itself is left as it did.
/// <para>
/// While it runs, the worker keeps a session row (host, pid, processors, running count, last beat) that the
/// heartbeat loop beats every heartbeat interval, so any host can list it (<see cref="Queue.ListWorkers"/>) and
/// ask it to stop (<see cref="Queue.RequestWorkerStop"/>), which stops it as its graceful token would. Session
/// writes are bookkeeping: when they fail the worker logs it and goes on processing tasks.
/// </para>
/// </summary>
public sealed class Worker
{
    private readonly Queue _queue;
    private readonly WorkerOptions _options;
    private readonly Func<int, ITaskProcessor> _createProcessor;
    private readonly Action<WorkerEvent>? _log;
    // Keyed by lease, not by row id: a key resubmitted after its retention reuses its row id (SQLite,
    // PostgreSQL), so an old attempt still running and the new one share an id, never a lease.
    private readonly ConcurrentDictionary<Lease, Running> _running = new();
    // Completed (and replaced) each time a processor frees up. A round takes the current one before it polls,
    // so a processor that frees up while the round polls is never missed, and nothing stale is left waiting.
    private TaskCompletionSource _freed = NewSignal();
    private volatile bool _hardStopping;
    private long? _sessionStartedAt;
    private bool _sessionFailing;
    private int _processed, _succeeded, _retried, _failed, _cancelled, _released, _lost;

    /// <summary>A no-route task waits at least this long, whatever retry_wait is (0 would be a busy loop).</summary>
    public static readonly TimeSpan UnroutedRetryFloor = TimeSpan.FromSeconds(60);

    private sealed class Running(AcquiredTask task, CancellationTokenSource stop, long renewedAt)
    {
        private long _renewedAt = renewedAt;
        private int _fenced;
        public AcquiredTask Task { get; } = task;
        public CancellationTokenSource Stop { get; } = stop;
        /// <summary>When the last renewal that succeeded was sent (Stopwatch timestamp): the lease lasts at least alive_time from it.</summary>
        public long RenewedAt => Interlocked.Read(ref _renewedAt);
        public void Renewed(long sentAt)
        {
            long seen;
            while ((seen = Interlocked.Read(ref _renewedAt)) < sentAt && Interlocked.CompareExchange(ref _renewedAt, sentAt, seen) != seen) { }
        }
        public bool TryFence() => Interlocked.Exchange(ref _fenced, 1) == 0;
        /// <summary>
        /// Set once its handler ended and the worker writes its end: a heartbeat then would find the row finished by
        /// this very write and report it lost to somebody else, so the heartbeat and the fence leave it alone.
        /// </summary>
        public volatile bool Concluding;
    }

    /// <param name="queue">The queue to work on.</param>
    /// <param name="options">How to run.</param>
    /// <param name="createProcessor">Makes processor number i (0-based); each runs one task at a time.</param>
    /// <param name="log">Receives a line per task start and end, and per notable event. Called from worker threads.</param>
    public Worker(Queue queue, WorkerOptions options, Func<int, ITaskProcessor> createProcessor, Action<WorkerEvent>? log = null)
    {
        _queue = queue;
        _options = options.Clone();
        _createProcessor = createProcessor;
        _log = log;
        options.Validate();
    }

    /// <summary>How long a handler may go on after its task's cancel was asked (or the task was lost) before it is stopped.</summary>
    public TimeSpan CancelGracePeriod { get => _options.CancelGracePeriod; init => _options.CancelGracePeriod = value; }

    /// <summary>A route's own timeout for a task type (the tightest of the worker's, the route's and the task's wins).</summary>
    public Func<string, TimeSpan?>? RouteTimeout { get; init; }

    /// <summary>Tasks running now.</summary>
    public int RunningCount => _running.Count;

    /// <summary>This worker's session id (as Get-PQWorker shows it), set when <see cref="RunAsync"/> starts.</summary>
    public string? SessionId { get; private set; }

    private void Log(string message) => _log?.Invoke(new WorkerEvent(DateTimeOffset.Now, message));

    /// <summary>
    /// Runs until <paramref name="graceful"/> (stop acquiring, let running tasks end, stop them after the
    /// graceful kill limit and release them), <paramref name="immediate"/> (stop handlers now and release
    /// their tasks), MaxTasks, or UntilEmpty. Returns what it did.
    /// </summary>
    public async Task<WorkerSummary> RunAsync(CancellationToken graceful, CancellationToken immediate)
    {
        var clock = Stopwatch.StartNew();
        // A stop requested through the session row (Stop-PQWorker) is a graceful stop like the caller's.
        using var stopRequested = new CancellationTokenSource();
        using var gracefulOrRequested = CancellationTokenSource.CreateLinkedTokenSource(graceful, stopRequested.Token);
        graceful = gracefulOrRequested.Token;
        // Processors first: one that cannot start (a failing initialization script) ends the run before a
        // session row exists, and the ones already made are disposed.
        var processors = new List<ITaskProcessor>();
        try
        {
            for (var i = 0; i < _options.Processors; i++) processors.Add(_createProcessor(i));
        }
        catch
        {
            foreach (var p in processors) await p.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        await StartSessionAsync().ConfigureAwait(false);
        var idle = new ConcurrentStack<ITaskProcessor>(processors);
        var handlers = new List<Task>();
        var lateAcquires = new List<Task>();
        using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(graceful, immediate);
        using var stopBeats = new CancellationTokenSource();
        var beats = Task.Run(() => HeartbeatLoopAsync(stopRequested, stopBeats.Token));
        var fences = Task.Run(() => FenceLoopAsync(stopBeats.Token));
        WorkerStopReason stoppedBecause;
        var acquired = 0;
        var failures = 0; // acquires failed in a row
        Task storeWait = Task.CompletedTask; // the last wait for a submit: cancelled when its round ends, and let end before the worker does
        Log($"worker started: {_options.Processors} processor(s) on {_queue.Description}, session {SessionId}");
        try
        {
            while (true)
            {
                if (immediate.IsCancellationRequested) { stoppedBecause = WorkerStopReason.ImmediateStop; break; }
                if (graceful.IsCancellationRequested) { stoppedBecause = stopRequested.IsCancellationRequested ? WorkerStopReason.StopRequested : WorkerStopReason.GracefulStop; break; }
                if (_options.MaxTasks is { } max && acquired >= max) { stoppedBecause = WorkerStopReason.MaxTasks; break; }

                var freed = Volatile.Read(ref _freed).Task;
                var free = Math.Min(idle.Count, Math.Min(Queue.MaxBatch, (_options.MaxTasks ?? int.MaxValue) - acquired));
                var got = PollResult.Empty;
                var polled = false;
                // Empty means: nothing came back while nothing of ours ran. A task running during the poll may
                // have kept its user at max_running and so hidden that user's due tasks; they show once it ends.
                var idleWhilePolling = _running.IsEmpty;
                if (free > 0)
                {
                    var sentAt = Stopwatch.GetTimestamp();
                    // Not cancelled by a stop: an acquire in flight may have leased rows already. A stop stops
                    // waiting for it, and whatever it returns later is released.
                    var acquire = _queue.AcquireAsync(free, _options.AliveTime, CancellationToken.None);
                    try
                    {
                        got = await acquire.WaitAsync(stopWaiting.Token).ConfigureAwait(false);
                        polled = true;
                        if (failures > 0) Log($"acquire works again after {failures} failure(s)");
                        failures = 0;
                    }
                    catch (OperationCanceledException) when (stopWaiting.IsCancellationRequested)
                    {
                        lateAcquires.Add(ReleaseLateAsync(acquire));
                        continue;
                    }
                    catch (Exception e)
                    {
                        // Whatever the database (or its driver) throws, the worker goes on: a pool timeout, a dropped
                        // table, a restart. Running handlers are untouched; polling backs off until it works again.
                        failures++;
                        var wait = Backoff(failures);
                        Log($"acquire failed ({failures} in a row), trying again in {wait.TotalSeconds:0.###}s: {Describe(e)}");
                        await WaitAsync(ct => Task.Delay(wait, ct), stopWaiting.Token).ConfigureAwait(false);
                        continue;
                    }
                    if (stopWaiting.IsCancellationRequested && got.Tasks.Count > 0)
                    {
                        await ReleaseAsync(got.Tasks).ConfigureAwait(false); // a stop came while it ran: give them back
                        got = got with { Tasks = [] };
                    }
                    foreach (var task in got.Tasks)
                    {
                        idle.TryPop(out var processor);
                        acquired++;
                        handlers.Add(RunOneAsync(processor!, task, idle, sentAt));
                    }
                    foreach (var ended in got.Ended) CountEnded(ended);
                }
                handlers.RemoveAll(h => h.IsCompleted);

                if (polled && got.Tasks.Count == 0 && got.Ended.Count == 0 && _options.UntilEmpty && idleWhilePolling && _running.IsEmpty
                    && !await AnyDueOrRunningAsync().ConfigureAwait(false)) { stoppedBecause = WorkerStopReason.Empty; break; }
                if (got.Ended.Count > 0 && got.Tasks.Count < free) continue; // tasks it ended took the places of due ones: poll again now
                if (got.Tasks.Count > 0 && got.Tasks.Count == free && idle.IsEmpty)
                {
                    await WaitAsync(ct => freed.WaitAsync(ct), stopWaiting.Token).ConfigureAwait(false);    // full: until a processor frees up
                    // Finishes committed together free their processors together: let the others land before
                    // polling, so one acquire serves them all.
                    await Task.Yield();
                }
                else if (got.Tasks.Count == 0 || got.Tasks.Count < free)
                    await WaitAsync(ct => Task.WhenAny(                                                    // idle or drained: poll interval, a submit, or a freed processor
                        storeWait = WaitForTasksAsync(ct),
                        freed.WaitAsync(ct)), stopWaiting.Token).ConfigureAwait(false);
            }

            if (stoppedBecause == WorkerStopReason.ImmediateStop) StopAll();
            else if (_options.GracefulKillLimit is { } limit && !_running.IsEmpty)
            {
                var drained = Task.WhenAll(handlers);
                if (await Task.WhenAny(drained, Task.Delay(limit, immediate)).ConfigureAwait(false) != drained) StopAll();
            }
            using (immediate.Register(StopAll)) await Task.WhenAll(handlers).ConfigureAwait(false);
            // What ended the run last says why it stopped: an immediate stop while draining, or a Stop-PQWorker
            // that came after a graceful stop (a host deciding whether to restart must see it).
            if (immediate.IsCancellationRequested) stoppedBecause = WorkerStopReason.ImmediateStop;
            else if (stopRequested.IsCancellationRequested && stoppedBecause == WorkerStopReason.GracefulStop) stoppedBecause = WorkerStopReason.StopRequested;
        }
        finally
        {
            // Processors are never disposed under a running handler: if the loop itself failed, stop them first.
            if (handlers.Any(h => !h.IsCompleted))
            {
                StopAll();
                await Task.WhenAll(handlers).ConfigureAwait(false);
            }
            // An acquire a stop left in flight: wait (boundedly) for it, to release what it leased.
            if (lateAcquires.Count > 0) await Task.WhenAny(Task.WhenAll(lateAcquires), Task.Delay(LateAcquireWait)).ConfigureAwait(false);
            // A caller disposes the queue once the worker returned: a PostgreSQL listen still unwinding then fails.
            await Task.WhenAny(storeWait, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
            stopBeats.Cancel();
            await beats.ConfigureAwait(false);
            await fences.ConfigureAwait(false);
            foreach (var p in processors) await p.DisposeAsync().ConfigureAwait(false);
            await EndSessionAsync().ConfigureAwait(false);
        }

        var summary = new WorkerSummary
        {
            Processed = _processed, Succeeded = _succeeded, Retried = _retried, Failed = _failed, Cancelled = _cancelled,
            Released = _released, Lost = _lost, Duration = clock.Elapsed, Reason = stoppedBecause, SessionId = SessionId,
        };
        Log($"worker stopped ({summary.StoppedBecause}): {summary.Processed} processed, {summary.Succeeded} succeeded, {summary.Retried} retried, {summary.Failed} failed, {summary.Cancelled} cancelled, {summary.Released} released, {summary.Lost} lost");
        return summary;
    }

    private static readonly TimeSpan LateAcquireWait = TimeSpan.FromSeconds(10);

    // Doubles from the poll interval up to 30 s (or the poll interval, if longer): an outage costs one try per
    // 30 s at most, and a short hiccup is retried at the poll interval.
    private TimeSpan Backoff(int failures)
    {
        var cap = TimeSpan.FromTicks(Math.Max(_options.PollInterval.Ticks, TimeSpan.FromSeconds(30).Ticks));
        var ticks = _options.PollInterval.Ticks * Math.Pow(2, Math.Min(failures - 1, 30));
        return ticks >= cap.Ticks ? cap : TimeSpan.FromTicks((long)ticks);
    }

    private static string Describe(Exception e) => e is QueueNotInitializedException or DbException ? e.Message : $"{e.GetType().Name}: {e.Message}";

    // The idle wait between polls. A store whose wait fails (a listener that cannot connect) must not make the
    // worker poll faster: the wait then lasts the poll interval anyway.
    private async Task WaitForTasksAsync(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        try { await _queue.WaitForTasksAsync(_options.PollInterval, ct).ConfigureAwait(false); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var rest = _options.PollInterval - clock.Elapsed;
            if (rest > TimeSpan.Zero) await Task.Delay(rest, ct).ConfigureAwait(false);
        }
    }

    // UntilEmpty stops on an empty poll only if the queue agrees: due tasks another acquirer had locked, or
    // tasks running on other workers (or leased by a dead one, until their lease expires and this worker
    // takes them over), keep it polling. A failure to tell counts as not empty.
    private async Task<bool> AnyDueOrRunningAsync()
    {
        try { return await _queue.AnyDueOrRunningAsync(CancellationToken.None).ConfigureAwait(false); }
        catch (Exception e)
        {
            Log($"could not tell whether the queue is empty, polling on: {Describe(e)}");
            return true;
        }
    }

    private void CountEnded(AcquireEnding ended)
    {
        var outcome = ended.Outcome == TaskOutcome.Cancelled ? Count(ref _cancelled, "cancelled at acquire (cancel was requested)") : Count(ref _failed, $"failed at acquire: {ended.Message}");
        Interlocked.Increment(ref _processed);
        Log($"end {ended.Key} ({ended.Type}) not started: {outcome}");
    }

    private async Task ReleaseAsync(IEnumerable<AcquiredTask> tasks)
    {
        foreach (var t in tasks)
        {
            try
            {
                await t.ReleaseAsync().ConfigureAwait(false);
                Interlocked.Increment(ref _released);
                Log($"{t.Key} ({t.Type}) acquired as the worker stopped: released");
            }
            catch (Exception e) { Log($"{t.Key} acquired as the worker stopped, not released (its lease expires after the alive time): {Describe(e)}"); }
        }
    }

    private async Task ReleaseLateAsync(Task<PollResult> acquire)
    {
        try
        {
            var got = await acquire.ConfigureAwait(false);
            foreach (var ended in got.Ended) CountEnded(ended);
            await ReleaseAsync(got.Tasks).ConfigureAwait(false);
        }
        catch (Exception) { /* it leased nothing */ }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    // A round's waits end with the round (the poll interval's wait, a PostgreSQL listen).
    private static async Task WaitAsync(Func<CancellationToken, Task> wait, CancellationToken stop)
    {
        using var round = CancellationTokenSource.CreateLinkedTokenSource(stop);
        try { await wait(round.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { /* a stop: the loop looks at why */ }
        finally { round.Cancel(); }
    }

    private void StopAll()
    {
        _hardStopping = true;
        foreach (var r in _running.Values)
        {
            try { r.Stop.Cancel(); }
            catch (ObjectDisposedException) { /* it ended meanwhile */ }
        }
    }

    private async Task RunOneAsync(ITaskProcessor processor, AcquiredTask task, ConcurrentStack<ITaskProcessor> idle, long acquiredAt)
    {
        using var stop = new CancellationTokenSource();
        // A cancel request or a lost lease cancels the task's token: the handler is asked to stop, and after
        // the grace period it is stopped.
        using var graceRegistration = task.CancellationToken.Register(() => stop.CancelAfter(CancelGracePeriod));
        var entry = new Running(task, stop, acquiredAt);
        _running[task.Lease] = entry;
        Interlocked.Increment(ref _processed);
        var clock = Stopwatch.StartNew();
        Log($"start {task.Key} ({task.Type}) attempt {task.Attempt}");
        string outcome;
        try
        {
            Exception? failure = null;
            string? result = null;
            try
            {
                result = await Task.Run(() => processor.RunAsync(task, stop.Token)).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                failure = e;
            }
            entry.Concluding = true;
            outcome = await ConcludeAsync(task, failure, result, stop.Token).ConfigureAwait(false);
        }
        catch (PreemptedException e)
        {
            outcome = Count(ref _lost, $"lost ({e.Reason}); nothing written");
        }
        catch (Exception e)
        {
            // The lease will expire and another worker will run it again: at-least-once, nothing lost.
            outcome = $"not recorded ({e.GetType().Name}: {e.Message}); its lease will expire and it will run again";
        }
        finally
        {
            _running.TryRemove(new KeyValuePair<Lease, Running>(task.Lease, entry)); // only the entry this run added
            idle.Push(processor);
            Interlocked.Exchange(ref _freed, NewSignal()).TrySetResult();
        }
        Log($"end {task.Key} ({task.Type}) after {clock.Elapsed.TotalSeconds:F3}s: {outcome}");
    }

    private async Task<string> ConcludeAsync(AcquiredTask task, Exception? failure, string? result, CancellationToken stopped)
    {
        if (task.LostBecause is { } lost) return Count(ref _lost, $"lost ({lost.Reason}); nothing written");
        if (task.IsCompleted) return task.FinishedAs switch
        {
            TaskOutcome.Succeeded => Count(ref _succeeded, "finished by the handler"),
            TaskOutcome.Cancelled => Count(ref _cancelled, "cancelled by the handler"),
            TaskOutcome.Failed => Count(ref _failed, "failed by the handler"),
            _ => task.Completion == "retried" ? Count(ref _retried, "retried by the handler") : Count(ref _released, "released by the handler"),
        };
        if (task.IsCancellationRequested)
        {
            await task.FinishAsync(TaskOutcome.Cancelled, failure is null ? "cancelled on request" : $"cancelled on request ({Message(failure)})").ConfigureAwait(false);
            return Count(ref _cancelled, "cancelled on request");
        }
        if (failure is null)
        {
            await task.FinishAsync(result).ConfigureAwait(false);
            return Count(ref _succeeded, "succeeded");
        }
        // Released only when the worker's stop stopped this handler. A handler's own OperationCanceledException
        // (an HTTP timeout's TaskCanceledException) is a failure like any other: released, it would be due
        // again at once and uncounted, a loop.
        if (_hardStopping && stopped.IsCancellationRequested && failure is OperationCanceledException)
        {
            await task.ReleaseAsync().ConfigureAwait(false);
            return Count(ref _released, "released (worker stopping)");
        }
        var delay = failure is NoHandlerException
            ? (_queue.RetryPolicy.Wait > UnroutedRetryFloor ? _queue.RetryPolicy.Wait : UnroutedRetryFloor)
            : (TimeSpan?)null;
        return await task.RetryAsync(Message(failure), delay).ConfigureAwait(false)
            ? Count(ref _retried, $"retried: {Message(failure)}")
            : Count(ref _failed, $"failed after {task.Attempt} attempt(s): {Message(failure)}");
    }

    private static string Message(Exception e) => e is AggregateException { InnerException: { } inner } ? inner.Message : e.Message;

    private static string Count(ref int counter, string outcome)
    {
        Interlocked.Increment(ref counter);
        return outcome;
    }

    // ---- the worker's session row ----

    private WorkerBeat SessionBeat() => new(SessionId!, Environment.MachineName, Environment.ProcessId, _options.Processors, _running.Count,
        (long)_options.AliveTime.TotalMilliseconds, _sessionStartedAt);

    // Registers under a fresh id (another on the rare clash). On failure the worker runs on: its beats
    // insert the row once the database takes them.
    private async Task StartSessionAsync()
    {
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            SessionId = Queue.NewWorkerId();
            try
            {
                _sessionStartedAt = await _queue.RegisterWorkerAsync(SessionBeat()).ConfigureAwait(false);
                if (_sessionStartedAt is not null) return;
            }
            catch (Exception e)
            {
                _sessionFailing = true;
                Log($"worker session {SessionId} not recorded, tasks go on (Get-PQWorker lists this worker once a heartbeat records it): {e.Message}");
                return;
            }
        }
    }

    // One beat of the session row: its running count, and whether Stop-PQWorker asked this worker to stop.
    private async Task BeatSessionAsync(CancellationTokenSource stopRequested)
    {
        try
        {
            var stop = await _queue.BeatWorkerAsync(SessionBeat()).ConfigureAwait(false);
            if (_sessionFailing) Log($"worker session {SessionId} recorded again");
            _sessionFailing = false;
            if (stop && !stopRequested.IsCancellationRequested)
            {
                Log("stop requested by Stop-PQWorker: graceful stop (nothing new is acquired; running tasks end)");
                await stopRequested.CancelAsync().ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            if (!_sessionFailing) Log($"worker session beat failed, tasks go on; trying again every heartbeat: {e.Message}");
            _sessionFailing = true;
        }
    }

    // A clean exit removes the row; a killed worker leaves it, to show as dead until cleanup deletes it.
    private async Task EndSessionAsync()
    {
        try { await _queue.RemoveWorkerAsync(SessionId!).ConfigureAwait(false); }
        catch (Exception e)
        {
            Log($"worker session {SessionId} not removed (it shows as dead after the alive time, and cleanup deletes it): {e.Message}");
        }
    }

    private async Task HeartbeatLoopAsync(CancellationTokenSource stopRequested, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try { await Task.Delay(_options.HeartbeatInterval, stop).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            await HeartbeatTasksAsync().ConfigureAwait(false);
            await BeatSessionAsync(stopRequested).ConfigureAwait(false);
        }
    }

    private async Task HeartbeatTasksAsync()
    {
        var held = _running.Values.Where(r => !r.Concluding && !r.Task.IsCompleted && r.Task.LostBecause is null).ToList();
        if (held.Count == 0) return;
        var sentAt = Stopwatch.GetTimestamp();
        try
        {
            var reports = await _queue.HeartbeatAsync(held.Select(r => r.Task), _options.AliveTime).ConfigureAwait(false);
            for (var i = 0; i < reports.Count; i++)
            {
                var report = reports[i];
                if (report.Error is null) held[i].Renewed(sentAt);
                if (report.Result == HeartbeatResult.CancelRequested && !report.Task.IsCompleted)
                    Log($"cancel requested for {report.Task.Key}: its handler is told, and stopped after {CancelGracePeriod.TotalSeconds:F0}s");
                else if (report.Error is { } lost && !report.Task.IsCompleted && !held[i].Concluding)
                    Log($"{report.Task.Key} was lost ({lost.Reason}): its handler is stopped; nothing more is written to it");
            }
        }
        catch (Exception e)
        {
            Log($"heartbeat failed, trying again in {_options.HeartbeatInterval.TotalSeconds:0.###}s: {Describe(e)}");
        }
    }

    // Self-fencing. A lease this worker could not renew for alive_time may be another worker's now: before
    // it runs out (a margin of at least one heartbeat interval, or a tenth of alive_time), the handler is
    // stopped at once and nothing more is written to the task. This loop touches no database, so a stalled
    // connection that holds the heartbeat up cannot hold it up too.
    private async Task FenceLoopAsync(CancellationToken stop)
    {
        var period = TimeSpan.FromTicks(Math.Clamp(_options.HeartbeatInterval.Ticks / 4, TimeSpan.FromMilliseconds(10).Ticks, TimeSpan.FromSeconds(1).Ticks));
        while (!stop.IsCancellationRequested)
        {
            try { await Task.Delay(period, stop).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            FenceUnrenewed();
        }
    }

    /// <summary>How long a lease may go unrenewed before its handler is stopped: alive_time less the margin.</summary>
    internal TimeSpan FenceAfter
    {
        get
        {
            var margin = Math.Max(_options.HeartbeatInterval.Ticks, _options.AliveTime.Ticks / 10);
            return TimeSpan.FromTicks(Math.Max(_options.AliveTime.Ticks - margin, 0));
        }
    }

    private void FenceUnrenewed()
    {
        var limit = FenceAfter;
        foreach (var r in _running.Values)
        {
            if (r.Concluding || r.Task.IsCompleted || r.Task.LostBecause is not null) continue;
            var unrenewed = Stopwatch.GetElapsedTime(r.RenewedAt);
            if (unrenewed < limit || !r.TryFence()) continue;
            r.Task.OnLost(new PreemptedException(
                $"This worker no longer holds task '{r.Task.Key}': its lease could not be renewed for {unrenewed.TotalSeconds:0.#}s (alive_time {_options.AliveTime.TotalSeconds:0.#}s), so another worker may hold it now.",
                r.Task.Key, PreemptionReason.LeaseExpired));
            Log($"{r.Task.Key}: its lease could not be renewed for {unrenewed.TotalSeconds:0.#}s (alive_time {_options.AliveTime.TotalSeconds:0.#}s) and another worker may hold it now: its handler is stopped and nothing more is written to it");
            try { r.Stop.Cancel(); }
            catch (AggregateException) { /* a processor's stop callback threw; the token is cancelled anyway */ }
            catch (ObjectDisposedException) { /* it ended meanwhile */ }
        }
    }
}
