using System.Collections.Concurrent;
using System.Diagnostics;
using PerfectQueue.Storage;
using PerfectQueue.Telemetry;

namespace PerfectQueue.Workers;

/// <summary>
/// Runs handlers for a queue's tasks on a set of processors (runspaces, compiled handlers or child processes). One
/// fetcher acquires for every free processor in one statement (and, for processors that free up while it is in
/// flight, in a few more beside it); the <see cref="LeaseKeeper"/> extends every lease in one round trip, so an idle
/// worker costs one acquire per poll interval whatever its processor count. With
/// <see cref="WorkerOptions.Prefetch"/> it also leases tasks ahead into <see cref="ReadyTasks"/>, started as processors
/// free up without another round trip (docs/worker.md, "Prefetch"). What a
/// handler's end means lives in <see cref="TaskConclusion"/>; how processors are made and replaced in
/// <see cref="ProcessorSlots"/>; the session row in <see cref="WorkerSession"/>.
/// <para>
/// Every handler can be stopped in bounded time: a cancel's grace period, a timeout, a lost lease, the graceful kill
/// limit or an immediate stop tells its processor to stop it (a pipeline stop, a child's stop message and then its
/// signals), and one that has not ended after <see cref="WorkerOptions.StopLimit"/> is abandoned: its task is
/// concluded without it, its lease never extended again, and its processor replaced.
/// </para>
/// </summary>
public sealed class Worker
{
    private readonly Queue _queue;
    private readonly WorkerOptions _options;
    private readonly Action<WorkerEvent>? _log;
    // Keyed by lease, not by row id: a key resubmitted after its retention reuses its row id (SQLite,
    // PostgreSQL), so an old attempt still running and the new one share an id, never a lease.
    private readonly ConcurrentDictionary<Lease, RunningTask> _running = new();
    private readonly WorkerCounters _counters = new();
    private readonly ProcessorSlots _slots;
    private readonly TaskConclusion _conclusion;
    private readonly LeaseKeeper _leases;
    private readonly WorkerSession _session;
    private readonly PauseNotices _pauses;
    private readonly ReadyTasks _ready;
    // Completed (and replaced) each time a processor frees up. A round takes the current one before it polls,
    // so a processor that frees up while the round polls is never missed, and nothing stale is left waiting.
    private TaskCompletionSource _freed = NewSignal();
    private volatile bool _hardStopping;

    /// <summary>A no-route task waits at least this long, whatever retry_wait is (0 would be a busy loop).</summary>
    public static readonly TimeSpan UnroutedRetryFloor = TaskConclusion.UnroutedRetryFloor;

    /// <param name="queue">The queue to work on.</param>
    /// <param name="options">How to run.</param>
    /// <param name="createProcessor">Makes the processor for slot i (0-based); each runs one task at a time. Called again for a slot whose processor is replaced.</param>
    /// <param name="log">Receives a line per task start and end, and per notable event. Called from worker threads.</param>
    public Worker(Queue queue, WorkerOptions options, Func<int, ITaskProcessor> createProcessor, Action<WorkerEvent>? log = null)
    {
        _queue = queue;
        _options = options.Clone();
        _log = log;
        options.Validate();
        _slots = new ProcessorSlots(createProcessor, _options, _counters, Log);
        _conclusion = new TaskConclusion(queue, _counters);
        _leases = new LeaseKeeper(queue, _options, Held, Log);
        _ready = new ReadyTasks(queue, _counters, () => _leases.FenceAfter, _leases.Fence, WakeFetcher, Log);
        // The session's running count is what the worker holds, as Get-PQWorker's RunningKeys and Get-PQTask see it.
        _session = new WorkerSession(queue, _options, () => _running.Count + _ready.Count, Log);
        _pauses = new PauseNotices(queue, Log);
    }

    /// <summary>How long a handler may go on after its task's cancel was asked (or the task was lost) before it is stopped.</summary>
    public TimeSpan CancelGracePeriod { get => _options.CancelGracePeriod; init => _options.CancelGracePeriod = value; }

    /// <summary>A route's own timeout for a task type (the tightest of the worker's, the route's and the task's wins).</summary>
    public Func<string, TimeSpan?>? RouteTimeout { get; init; }

    /// <summary>
    /// Whether the stop under way is a restart (the host runs a new worker next). Then the session is not marked
    /// Stopping, so a Stop-PQWorker that arrives during the drain is still seen and wins over the restart. Null: never.
    /// </summary>
    public Func<bool>? StopIsRestart { get; init; }

    /// <summary>The first wait between tries to start a processor that replaces one (then doubling; 1 s).</summary>
    internal TimeSpan ProcessorStartBackoff { get => _slots.StartBackoff; init => _slots.StartBackoff = value; }

    /// <summary>Tasks running now.</summary>
    public int RunningCount => _running.Count;

    /// <summary>Tasks leased ahead (<see cref="WorkerOptions.Prefetch"/>) that wait for a processor now.</summary>
    public int PrefetchedCount => _ready.Count;

    // Every lease the heartbeat extends and the fence watches: the running tasks and the prefetched ones.
    private IEnumerable<RunningTask> Held() => _ready.Count == 0 ? _running.Values : _running.Values.Concat(_ready.Snapshot());

    /// <summary>This worker's session id (as Get-PQWorker shows it), set when <see cref="RunAsync"/> starts.</summary>
    public string? SessionId => _session.Id;

    /// <summary>How long a lease may go unrenewed before its handler is stopped: alive_time less the margin.</summary>
    internal TimeSpan FenceAfter => _leases.FenceAfter;

    // A child processor kills its child at the stop limit; the worker waits one step more before it gives up on it.
    private TimeSpan AbandonAfter => _options.ProcessorType == ProcessorType.Process ? _options.StopLimit + _options.Child.KillInterval : _options.StopLimit;

    private void Log(string message) => Emit(WorkerEvents.Message, message);

    private void Emit(string name, string message, WorkerEventLevel level = WorkerEventLevel.Information, AcquiredTask? task = null,
        TimeSpan? duration = null, RunOutcome? outcome = null) =>
        Emit(name, message, level, task?.Key, task?.Type, task?.Attempt, duration, outcome);

    private void Emit(string name, string message, WorkerEventLevel level, string? key, string? type, int? attempt, TimeSpan? duration, RunOutcome? outcome) =>
        _log?.Invoke(new WorkerEvent(DateTimeOffset.Now, message)
        {
            Event = name, Level = level, Session = SessionId, Key = key, Type = type, Attempt = attempt, Duration = duration, Outcome = outcome?.ToString(),
        });

    // A lost or unrecorded run, and a retry, are worth a look; a task out of attempts is an error.
    private static WorkerEventLevel LevelOf(RunOutcome outcome) => outcome switch
    {
        RunOutcome.Failed => WorkerEventLevel.Error,
        RunOutcome.Retried or RunOutcome.Lost or RunOutcome.NotRecorded => WorkerEventLevel.Warning,
        _ => WorkerEventLevel.Information,
    };

    /// <summary>
    /// Runs until <paramref name="graceful"/> (stop acquiring, let running tasks end, stop them after the
    /// graceful kill limit and release them), <paramref name="immediate"/> (stop handlers now and release
    /// their tasks), MaxTasks, or UntilEmpty. Returns what it did. Throws when a processor cannot be started
    /// (at start, or when one that had to be replaced keeps failing to start).
    /// </summary>
    public async Task<WorkerSummary> RunAsync(CancellationToken graceful, CancellationToken immediate)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // A stop requested through the session row (Stop-PQWorker) is a graceful stop like the caller's.
        using var stopRequested = new CancellationTokenSource();
        using var gracefulOrRequested = CancellationTokenSource.CreateLinkedTokenSource(graceful, stopRequested.Token, _slots.Failed.Token);
        graceful = gracefulOrRequested.Token;
        // Processors first: one that cannot start (a failing initialization script) ends the run before a
        // session row exists, and the ones already made are disposed.
        await _slots.StartAsync().ConfigureAwait(false);
        await _session.StartAsync().ConfigureAwait(false);
        var handlers = new List<Task>();
        var lateAcquires = new List<Task>();
        using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(graceful, immediate);
        using var loopEnded = CancellationTokenSource.CreateLinkedTokenSource(stopWaiting.Token);
        using var stopBeats = new CancellationTokenSource();
        // A graceful stop is visible to the handlers running then ($Task.IsStopRequested), so long ones can checkpoint and release.
        using var tellHandlers = graceful.Register(() => { foreach (var r in _running.Values) r.Task.OnStopRequested(); });
        var beats = Task.Run(() => _leases.HeartbeatLoopAsync(() => _session.BeatAsync(stopRequested), stopBeats.Token));
        var fences = Task.Run(() => _leases.FenceLoopAsync(stopBeats.Token));
        // Schedules fire on their own loop, never in the way of acquire; it ends with the acquire loop.
        var firer = _options.FireSchedules ? Task.Run(() => new Schedules.ScheduleFirer(_queue, Log, WakeFetcher).RunAsync(loopEnded.Token)) : Task.CompletedTask;
        WorkerStopReason stoppedBecause;
        var started = 0; // tasks handed to processors: with the prefetched ones, never more than MaxTasks
        Task? releaseReady = null; // the prefetched tasks given back at stop, awaited before the session ends
        var failures = 0; // acquires failed in a row
        long? shortPollAt = null; // when the last poll came back with fewer tasks than it asked for (nothing more was due)
        Task markStopping = Task.CompletedTask; // the session row's Stopping write, awaited before the row is removed
        Task storeWait = Task.CompletedTask; // the last wait for a submit: cancelled when its round ends, and let end before the worker does
        var acquires = new List<InFlightAcquire>(); // sent and not yet back: more than one while processors free up under one
        var asked = 0; // the tasks they may lease
        var backOff = false; // one failed: wait before the next
        string? lastFailure = null;
        Emit(WorkerEvents.Started, $"worker started: {_options.Processors} processor(s){(_options.Prefetch > 0 ? $", prefetch {_options.Prefetch}" : "")} on {_queue.Description}, session {SessionId}, processor type {(_options.ProcessorType == ProcessorType.Process ? "process" : "thread")}");

        // Prefetched tasks go to the processors free now, before any round trip; the ones not to start are ended or dropped.
        void StartReady()
        {
            _ready.SweepIfAsked(handlers);
            while (_slots.IdleCount > 0 && _ready.TakeNext(handlers) is { } entry)
            {
                _slots.TryTake(out var slot); // only this loop takes slots, and one is idle
                started++;
                handlers.Add(RunOneAsync(slot, entry, prefetched: true, graceful, loopEnded.Token));
            }
        }

        // Full: until a processor frees up. Finishes committed together free their processors together: let the
        // others land before polling, so one acquire serves them all.
        async Task UntilAProcessorFreesUpAsync(Task freed)
        {
            await WaitAsync(ct => freed.WaitAsync(ct), stopWaiting.Token).ConfigureAwait(false);
            await Task.Yield();
        }

        // An acquire that came back: its tasks go to idle processors (the rest to the ready queue, heartbeated from
        // then on), the ones it ended are counted. Null when it failed: whatever the database (or its driver) threw,
        // the worker goes on (a pool timeout, a dropped table, a restart); polling backs off until it works again.
        async Task<PollResult?> TakeAsync(InFlightAcquire a)
        {
            PollResult got;
            try { got = await a.Task.ConfigureAwait(false); }
            catch (Exception e)
            {
                failures++;
                lastFailure = LeaseKeeper.Describe(e);
                return null;
            }
            if (failures > 0) Emit(WorkerEvents.AcquireRecovered, $"acquire works again after {failures} failure(s)");
            failures = 0;
            if (stopWaiting.IsCancellationRequested && got.Tasks.Count > 0)
            {
                await ReleaseAsync(got.Tasks).ConfigureAwait(false); // a stop came while it ran: give them back
                got = got with { Tasks = [] };
            }
            foreach (var task in got.Tasks)
            {
                var entry = NewEntry(task, a.SentAt);
                if (_slots.TryTake(out var slot))
                {
                    started++;
                    handlers.Add(RunOneAsync(slot, entry, prefetched: false, graceful, loopEnded.Token));
                }
                else _ready.Add(entry); // heartbeated from now on, started as processors free up
            }
            foreach (var ended in got.Ended) CountEnded(ended);
            if (got.Ended.Count == 0) shortPollAt = got.Tasks.Count < a.Asked ? a.SentAt : null;
            return got;
        }

        try
        {
            while (true)
            {
                if (immediate.IsCancellationRequested) { stoppedBecause = WorkerStopReason.ImmediateStop; break; }
                if (graceful.IsCancellationRequested) { stoppedBecause = stopRequested.IsCancellationRequested ? WorkerStopReason.StopRequested : WorkerStopReason.GracefulStop; break; }

                var freed = Volatile.Read(ref _freed).Task;
                StartReady();
                if (_options.MaxTasks is { } max && started >= max) { stoppedBecause = WorkerStopReason.MaxTasks; break; }
                handlers.RemoveAll(h => h.IsCompleted);

                // A failed acquire backs off once the others in flight are back (what they leased is then held by the worker).
                if (backOff && acquires.Count == 0)
                {
                    backOff = false;
                    var wait = Backoff(failures);
                    Emit(WorkerEvents.AcquireFailed, $"acquire failed ({failures} in a row), trying again in {wait.TotalSeconds:0.###}s: {lastFailure}", WorkerEventLevel.Warning);
                    await WaitAsync(ct => Task.Delay(wait, ct), stopWaiting.Token).ConfigureAwait(false);
                    continue;
                }

                var idleCount = _slots.IdleCount;
                var ready = _ready.Count;
                // Prefetch refills the ready queue once it is half empty (or a processor has nothing to run), never while
                // it is fuller: each acquire then leases at least half of Prefetch. Without prefetch: the idle processors.
                // Tasks the acquires in flight asked for count as coming. After a poll that found nothing more, only a
                // processor with nothing to run polls before the poll interval (or a submit): not every task that ends
                // while the ready queue drains.
                var sinceShortPoll = shortPollAt is { } at ? System.Diagnostics.Stopwatch.GetElapsedTime(at) : TimeSpan.MaxValue;
                var quiet = _options.Prefetch > 0 && idleCount <= asked && sinceShortPoll < _options.PollInterval;
                var refill = !quiet && (idleCount > asked || ready + asked <= _options.Prefetch / 2);
                var free = !refill ? 0 : Math.Max(0, Math.Min(idleCount + _options.Prefetch - ready - asked,
                    Math.Min(Queue.MaxBatch, (_options.MaxTasks ?? int.MaxValue) - started - ready - asked)));
                // A second acquire goes out beside one in flight only while the last poll found all it asked for: on a
                // queue with nothing more due, a worker polls once at a time as before.
                if (free > 0 && !backOff && (acquires.Count == 0 || (acquires.Count < MaxAcquiresInFlight && shortPollAt is null)))
                {
                    // Not cancelled by a stop: an acquire in flight may have leased rows already. A stop stops
                    // waiting for it, and whatever it returns later is released. Empty means: nothing came back while
                    // nothing of ours ran, waited or was being acquired. A task running during the poll may have kept
                    // its user at max_running and so hidden that user's due tasks; they show once it ends.
                    // Whether anything ran is read before the call: a store may answer before the call returns (SQLite's does),
                    // and a task that ran during the poll may have ended by then.
                    var sentAt = RunningTask.Now;
                    var idleWhilePolling = _running.IsEmpty && ready == 0 && acquires.Count == 0;
                    acquires.Add(new InFlightAcquire(_queue.AcquireAsync(free, _options.AliveTime, CancellationToken.None, SessionId), free, sentAt, idleWhilePolling));
                    asked += free;
                }

                if (acquires.Count == 0)
                {
                    if (quiet)
                    {
                        await WaitAsync(ct => Task.WhenAny(                                                // the ready queue drains: the rest of the poll interval, a submit, or a freed processor
                            storeWait = WaitForTasksAsync(_options.PollInterval - sinceShortPoll, ct),
                            freed.WaitAsync(ct)), stopWaiting.Token).ConfigureAwait(false);
                        if (!freed.IsCompleted) shortPollAt = null; // the interval passed, or a submit came: poll again
                    }
                    else await UntilAProcessorFreesUpAsync(freed);
                    continue;
                }

                // An acquire coming back, or a processor freeing up (it starts a prefetched task, or asks for the next one).
                await WaitAsync(ct => Task.WhenAny(Task.WhenAny(acquires.Select(a => a.Task)), freed).WaitAsync(ct), stopWaiting.Token).ConfigureAwait(false);
                if (stopWaiting.IsCancellationRequested) continue; // what is in flight is released after the loop
                var back = acquires.Where(a => a.Task.IsCompleted).ToList();
                if (back.Count == 0) continue;
                InFlightAcquire? last = null;
                PollResult got = PollResult.Empty;
                var emptied = false;
                foreach (var a in back)
                {
                    acquires.Remove(a);
                    asked -= a.Asked;
                    if (await TakeAsync(a).ConfigureAwait(false) is not { } result) { backOff = true; continue; }
                    (last, got) = (a, result);
                    if (got.Tasks.Count == 0) await _pauses.AfterEmptyPollAsync().ConfigureAwait(false);
                    // Paused due tasks do not count as work left (docs/pause.md): a drain during maintenance exits, and says how many wait.
                    if (got.Tasks.Count == 0 && got.Ended.Count == 0 && _options.UntilEmpty && a.IdleWhilePolling && acquires.Count == 0
                        && _running.IsEmpty && _ready.Count == 0 && !await AnyDueOrRunningAsync().ConfigureAwait(false)) emptied = true;
                }
                if (emptied) { await _pauses.AtEmptyExitAsync().ConfigureAwait(false); stoppedBecause = WorkerStopReason.Empty; break; }
                if (last is null || acquires.Count > 0) continue; // the next round waits for the rest
                if (got.Ended.Count > 0 && got.Tasks.Count < last.Asked) continue; // tasks it ended took the places of due ones: poll again now
                if (got.Tasks.Count > 0 && got.Tasks.Count == last.Asked && _slots.IdleCount == 0) await UntilAProcessorFreesUpAsync(freed);
                else if (got.Tasks.Count < last.Asked)
                    await WaitAsync(ct => Task.WhenAny(                                                    // idle or drained: poll interval, a submit, or a freed processor
                        storeWait = WaitForTasksAsync(_options.PollInterval, ct),
                        freed.WaitAsync(ct)), stopWaiting.Token).ConfigureAwait(false);
            }
            foreach (var a in acquires) lateAcquires.Add(ReleaseLateAsync(a.Task));
            acquires.Clear();
            loopEnded.Cancel();
            // Prefetched tasks go back at once, for other workers, while the running ones end.
            releaseReady = _ready.ReleaseAllAsync();
            // Get-PQWorker shows the drain at once (Stop-PQWorker's request is in the row already; an empty queue drains nothing).
            if (stoppedBecause is not (WorkerStopReason.StopRequested or WorkerStopReason.Empty) && StopIsRestart?.Invoke() != true)
                markStopping = _session.MarkStoppingAsync();

            if (stoppedBecause == WorkerStopReason.ImmediateStop) StopAll();
            else if (_options.GracefulKillLimit is { } limit && !_running.IsEmpty)
            {
                var drained = Task.WhenAll(handlers);
                if (await Task.WhenAny(drained, Task.Delay(limit, immediate)).ConfigureAwait(false) != drained)
                {
                    if (!immediate.IsCancellationRequested) Emit(WorkerEvents.Message, $"graceful kill limit ({limit.TotalSeconds:0.###}s) reached: the handlers still running are stopped and their tasks released", WorkerEventLevel.Warning);
                    StopAll();
                }
            }
            using (immediate.Register(StopAll)) await Task.WhenAll(handlers).ConfigureAwait(false);
            // What ended the run last says why it stopped: an immediate stop while draining, or a Stop-PQWorker
            // that came after a graceful stop (a host deciding whether to restart must see it).
            if (immediate.IsCancellationRequested) stoppedBecause = WorkerStopReason.ImmediateStop;
            else if (stopRequested.IsCancellationRequested && stoppedBecause == WorkerStopReason.GracefulStop) stoppedBecause = WorkerStopReason.StopRequested;
        }
        finally
        {
            loopEnded.Cancel();
            releaseReady ??= _ready.ReleaseAllAsync();
            // Processors are never disposed under a running handler: if the loop itself failed, stop them first
            // (every handler ends or is abandoned within the stop limit).
            if (handlers.Any(h => !h.IsCompleted))
            {
                StopAll();
                await Task.WhenAll(handlers).ConfigureAwait(false);
            }
            // An acquire a stop left in flight: wait (boundedly) for it, to release what it leased.
            if (lateAcquires.Count > 0) await Task.WhenAny(Task.WhenAll(lateAcquires), Task.Delay(LateAcquireWait)).ConfigureAwait(false);
            // A caller disposes the queue once the worker returned: a PostgreSQL listen still unwinding then fails.
            await Task.WhenAny(storeWait, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
            await releaseReady.ConfigureAwait(false); // heartbeats go on until every prefetched task is given back
            stopBeats.Cancel();
            await beats.ConfigureAwait(false);
            await fences.ConfigureAwait(false);
            await firer.ConfigureAwait(false);
            await _slots.DisposeAsync().ConfigureAwait(false);
            await markStopping.ConfigureAwait(false);
            await _session.EndAsync().ConfigureAwait(false);
        }

        var c = _counters;
        var summary = new WorkerSummary
        {
            Processed = c.Processed, Succeeded = c.Succeeded, Retried = c.Retried, Failed = c.Failed, Cancelled = c.Cancelled,
            Released = c.Released, Lost = c.Lost, TimedOut = c.TimedOut, Killed = c.Killed, ProcessorRestarts = c.ProcessorRestarts,
            Duration = clock.Elapsed, Reason = stoppedBecause, SessionId = SessionId,
        };
        var extra = (c.TimedOut, c.Killed, c.ProcessorRestarts) == (0, 0, 0) ? "" : $", {c.TimedOut} timed out, {c.Killed} killed, {c.ProcessorRestarts} processor restart(s)";
        if (_slots.Fatal is { } fatal)
        {
            Emit(WorkerEvents.Stopped, $"worker stopped (a processor could not be started): {summary.Processed} processed{extra}", WorkerEventLevel.Error);
            throw fatal;
        }
        Emit(WorkerEvents.Stopped, $"worker stopped ({summary.StoppedBecause}): {summary.Processed} processed, {summary.Succeeded} succeeded, {summary.Retried} retried, {summary.Failed} failed, {summary.Cancelled} cancelled, {summary.Released} released, {summary.Lost} lost{extra}");
        return summary;
    }

    private static readonly TimeSpan LateAcquireWait = TimeSpan.FromSeconds(10);

    // A processor that frees up while an acquire is in flight asks for its next task at once, beside it: the round trips
    // and commits of a busy worker overlap (sharing the server's log flushes) instead of queueing behind each other.
    // With Prefetch the ready queue already keeps processors fed, and one acquire at a time leases more per round
    // trip (measured: a second one in flight halved the prefetch drain).
    private int MaxAcquiresInFlight => _options.Prefetch > 0 ? 1 : 4;

    private sealed record InFlightAcquire(Task<PollResult> Task, int Asked, long SentAt, bool IdleWhilePolling);

    // A fire this worker just stored is due now: the fetcher polls at once instead of at its next poll interval.
    private void WakeFetcher() => Interlocked.Exchange(ref _freed, NewSignal()).TrySetResult();

    // Doubles from the poll interval up to 30 s (or the poll interval, if longer): an outage costs one try per
    // 30 s at most, and a short hiccup is retried at the poll interval.
    private TimeSpan Backoff(int failures)
    {
        var cap = TimeSpan.FromTicks(Math.Max(_options.PollInterval.Ticks, TimeSpan.FromSeconds(30).Ticks));
        var ticks = _options.PollInterval.Ticks * Math.Pow(2, Math.Min(failures - 1, 30));
        return ticks >= cap.Ticks ? cap : TimeSpan.FromTicks((long)ticks);
    }

    // The idle wait between polls. A store whose wait fails (a listener that cannot connect) must not make the
    // worker poll faster: the wait then lasts the poll interval anyway.
    private async Task WaitForTasksAsync(TimeSpan timeout, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try { await _queue.WaitForTasksAsync(timeout, ct).ConfigureAwait(false); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var rest = timeout - clock.Elapsed;
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
            Emit(WorkerEvents.Message, $"could not tell whether the queue is empty, polling on: {LeaseKeeper.Describe(e)}", WorkerEventLevel.Warning);
            return true;
        }
    }

    // The outcome counters of the Meter (docs/telemetry.md): lost, released and unrecorded runs end nothing.
    private static void CountOutcome(RunOutcome outcome, KeyValuePair<string, object?> table, KeyValuePair<string, object?> type)
    {
        var counter = outcome switch
        {
            RunOutcome.Succeeded => QueueTelemetry.SucceededCounter,
            RunOutcome.Retried => QueueTelemetry.RetriedCounter,
            RunOutcome.Failed => QueueTelemetry.FailedCounter,
            RunOutcome.Cancelled => QueueTelemetry.CancelledCounter,
            _ => null,
        };
        counter?.Add(1, table, type);
    }

    private void CountEnded(AcquireEnding ended)
    {
        var c = _counters;
        var outcome = ended.Outcome == TaskOutcome.Cancelled
            ? c.Count(RunOutcome.Cancelled, "cancelled at acquire (cancel was requested)")
            : c.Count(RunOutcome.Failed, $"failed at acquire: {ended.Message}");
        Interlocked.Increment(ref c.Processed);
        CountOutcome(outcome.Outcome, _queue.TableTag, new(QueueTelemetry.TypeTag, ended.Type));
        Emit(WorkerEvents.TaskNotStarted, $"end {ended.Key} ({ended.Type}) not started: {outcome.Text}", LevelOf(outcome.Outcome),
            ended.Key, ended.Type, ended.Attempts, duration: null, outcome.Outcome);
    }

    private async Task ReleaseAsync(IEnumerable<AcquiredTask> tasks)
    {
        foreach (var t in tasks)
        {
            try
            {
                await t.ReleaseAsync().ConfigureAwait(false);
                Interlocked.Increment(ref _counters.Released);
                Log($"{t.Key} ({t.Type}) acquired as the worker stopped: released");
            }
            catch (Exception e) { Log($"{t.Key} acquired as the worker stopped, not released (its lease expires after the alive time): {LeaseKeeper.Describe(e)}"); }
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
        foreach (var r in _running.Values) r.StopNow(HandlerStop.Shutdown);
    }

    /// <summary>The attempt's limit: the tightest of the worker's, the route's and the task's own.</summary>
    private TimeSpan? TimeoutOf(AcquiredTask task)
    {
        TimeSpan? tightest = null;
        foreach (var t in new[] { _options.Timeout, RouteTimeout?.Invoke(task.Type), task.Timeout })
            if (t is { } v && (tightest is null || v < tightest)) tightest = v;
        return tightest;
    }

    // A task just acquired: its lease counts as renewed when the acquire was sent.
    private RunningTask NewEntry(AcquiredTask task, long acquiredAt) => new(task, acquiredAt, AbandonAfter) { Timeout = TimeoutOf(task) };

    // prefetched: it waited in the ready queue (its start line says how long).
    private async Task RunOneAsync(ProcessorSlot slot, RunningTask entry, bool prefetched, CancellationToken graceful, CancellationToken loopEnded)
    {
        var task = entry.Task;
        var timeout = entry.Timeout;
        if (timeout is { } t) task.Deadline = DateTimeOffset.Now + t;
        task.WorkerSession = SessionId;
        _running[task.Lease] = entry;
        if (graceful.IsCancellationRequested) task.OnStopRequested();
        if (_hardStopping) entry.StopNow(HandlerStop.Shutdown);
        Interlocked.Increment(ref _counters.Processed);
        // The run's span: a child of nothing here (a worker has no caller), linked to the submit's trace; the
        // finish or retry it writes is its child (docs/telemetry.md).
        // Only with a listener: without one, no traceparent is parsed and no span name is built per task.
        Activity? activity = null;
        if (QueueTelemetry.Source.HasListeners())
        {
            Activity.Current = null; // a trace of its own even under a host's activity (this async flow only)
            activity = QueueTelemetry.Source.StartActivity(ActivityKind.Consumer, links: QueueTelemetry.LinkTo(task.TraceParent), name: $"perfectqueue run {task.Type}");
            activity?.SetTag(QueueTelemetry.TableTag, _queue.Config.Table).SetTag(QueueTelemetry.KeyTag, task.Key).SetTag(QueueTelemetry.TypeTag, task.Type)
                .SetTag(QueueTelemetry.AttemptTag, task.Attempt).SetTag(QueueTelemetry.SessionTag, SessionId);
        }
        using var runSpan = activity;
        var typeTag = new KeyValuePair<string, object?>(QueueTelemetry.TypeTag, task.Type);
        var tableTag = _queue.TableTag;
        QueueTelemetry.RunningCounter.Add(1, tableTag, typeTag);
        Emit(WorkerEvents.TaskStarted, $"start {task.Key} ({task.Type}) attempt {task.Attempt} on {slot.Name}{(timeout is { } limit ? $", timeout {TaskConclusion.Seconds(limit)}" : "")}" +
            (prefetched ? $", prefetched {System.Diagnostics.Stopwatch.GetElapsedTime(entry.AcquiredAt).TotalSeconds:0.###}s before" : ""), task: task);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        // The attempt's time is up: its handler is stopped, and its task retried.
        using var timer = timeout is { } after ? new Timer(_ =>
        {
            if (entry.StopNow(HandlerStop.TimedOut)) Emit(WorkerEvents.TaskTimedOut, $"{task.Key} timed out after {TaskConclusion.Seconds(after)}: its handler is stopped", WorkerEventLevel.Warning, task);
        }, null, after, Timeout.InfiniteTimeSpan) : null;
        // A cancel request or a lost lease cancels the task's token: the handler is asked to stop, and after the
        // grace period it is stopped.
        Timer? grace = null;
        using var graceRegistration = task.CancellationToken.Register(() =>
            grace = new Timer(_ => entry.StopNow(task.LostBecause is null ? HandlerStop.CancelRequested : HandlerStop.Lost), null, CancelGracePeriod, Timeout.InfiniteTimeSpan));

        var processor = slot.Processor!;
        Exception? failure = null;
        var abandoned = false;
        Task? returned = null; // the slot given back, once its handler has ended
        Concluded outcome;
        try
        {
            string? result = null;
            var run = Task.Run(() => processor.RunAsync(task, entry.StopToken));
            if (await Task.WhenAny(run, entry.Abandoned).ConfigureAwait(false) == run)
            {
                try { result = await run.ConfigureAwait(false); }
                catch (Exception e) { failure = e; }
            }
            else
            {
                // The handler ignored its stop for the whole stop limit: go on without it. Its lease is not extended
                // again, its task is concluded as its stop says, and its processor is replaced.
                abandoned = true;
                _ = run.ContinueWith(r => _ = r.Exception, TaskContinuationOptions.OnlyOnFaulted);
                failure = new ProcessorKilledException($"its handler did not stop within {TaskConclusion.Seconds(entry.StopLimit)} of being told to, and was abandoned");
                Emit(WorkerEvents.TaskAbandoned, $"{task.Key}: its handler did not stop within {TaskConclusion.Seconds(entry.StopLimit)} of being stopped ({entry.StoppedBy}): it is abandoned and {slot.Name} replaced", WorkerEventLevel.Warning, task);
            }
            entry.Ended();
            entry.Concluding = true;
            if (abandoned || failure is ProcessorKilledException || failure is ProcessorFailedException { Killed: true }) Interlocked.Increment(ref _counters.Killed);
            // The processor is free once its handler has ended: the task stays held (heartbeated, fenced) until its
            // finish lands, and the next task starts meanwhile, so a task's finish and the next acquire share the
            // wait for the database instead of adding up (docs/performance.md, "Where the drain's time goes").
            returned = ReturnSlotAsync(slot, abandoned, failure, loopEnded);
            outcome = await _conclusion.ConcludeAsync(entry, failure, result).ConfigureAwait(false);
        }
        catch (PreemptedException e)
        {
            outcome = _counters.Count(RunOutcome.Lost, $"lost ({e.Reason}); nothing written");
        }
        catch (Exception e)
        {
            // The lease will expire and another worker will run it again: at-least-once, nothing lost.
            outcome = _counters.Count(RunOutcome.NotRecorded, $"not recorded ({e.GetType().Name}: {e.Message}); its lease will expire and it will run again");
        }
        finally
        {
            entry.Ended();
            grace?.Dispose();
            _running.TryRemove(new KeyValuePair<Lease, RunningTask>(task.Lease, entry)); // only the entry this run added
        }
        QueueTelemetry.RunningCounter.Add(-1, tableTag, typeTag);
        QueueTelemetry.RunDurationHistogram.Record(clock.Elapsed.TotalSeconds, tableTag, typeTag, new(QueueTelemetry.OutcomeTag, outcome.Outcome.ToString()));
        CountOutcome(outcome.Outcome, tableTag, typeTag);
        if (activity is not null)
        {
            activity.SetTag(QueueTelemetry.OutcomeTag, outcome.Outcome.ToString());
            if (outcome.Outcome is RunOutcome.Succeeded or RunOutcome.Cancelled or RunOutcome.Released) activity.SetStatus(ActivityStatusCode.Ok);
            else activity.SetStatus(ActivityStatusCode.Error, outcome.Text);
        }
        Emit(WorkerEvents.TaskEnded, $"end {task.Key} ({task.Type}) after {clock.Elapsed.TotalSeconds:F3}s: {outcome.Text}", LevelOf(outcome.Outcome), task,
            clock.Elapsed, outcome.Outcome);
        activity?.Dispose(); // the run ends here; giving back (or replacing) its processor is not part of it
        await (returned ?? ReturnSlotAsync(slot, abandoned, failure, loopEnded)).ConfigureAwait(false);
    }

    private async Task ReturnSlotAsync(ProcessorSlot slot, bool abandoned, Exception? failure, CancellationToken loopEnded)
    {
        try { await _slots.ReturnAsync(slot, abandoned, failure, loopEnded).ConfigureAwait(false); }
        finally { Interlocked.Exchange(ref _freed, NewSignal()).TrySetResult(); }
    }
}
