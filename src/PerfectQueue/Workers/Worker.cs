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
    private readonly ConcurrentDictionary<long, Running> _running = new();
    // Completed (and replaced) each time a processor frees up. A round takes the current one before it polls,
    // so a processor that frees up while the round polls is never missed, and nothing stale is left waiting.
    private TaskCompletionSource _freed = NewSignal();
    private volatile bool _hardStopping;
    private long? _sessionStartedAt;
    private bool _sessionFailing;
    private int _processed, _succeeded, _retried, _failed, _cancelled, _released, _lost;

    private sealed record Running(AcquiredTask Task, CancellationTokenSource Stop);

    /// <param name="queue">The queue to work on.</param>
    /// <param name="options">How to run.</param>
    /// <param name="createProcessor">Makes processor number i (0-based); each runs one task at a time.</param>
    /// <param name="log">Receives a line per task start and end, and per notable event. Called from worker threads.</param>
    public Worker(Queue queue, WorkerOptions options, Func<int, ITaskProcessor> createProcessor, Action<WorkerEvent>? log = null)
    {
        _queue = queue;
        _options = options;
        _createProcessor = createProcessor;
        _log = log;
        options.Validate();
    }

    /// <summary>How long a handler may go on after its task's cancel was asked (or the task was lost) before it is stopped.</summary>
    public TimeSpan CancelGracePeriod { get; init; } = TimeSpan.FromSeconds(10);

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
        using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(graceful, immediate);
        using var stopBeats = new CancellationTokenSource();
        var beats = Task.Run(() => HeartbeatLoopAsync(stopRequested, stopBeats.Token));
        string stoppedBecause;
        var acquired = 0;
        Log($"worker started: {_options.Processors} processor(s) on {_queue.Description}, session {SessionId}");
        try
        {
            while (true)
            {
                if (immediate.IsCancellationRequested) { stoppedBecause = "immediate stop"; break; }
                if (graceful.IsCancellationRequested) { stoppedBecause = stopRequested.IsCancellationRequested ? "stop requested" : "graceful stop"; break; }
                if (_options.MaxTasks is { } max && acquired >= max) { stoppedBecause = "max tasks"; break; }

                var freed = Volatile.Read(ref _freed).Task;
                var free = Math.Min(idle.Count, Math.Min(Queue.MaxBatch, (_options.MaxTasks ?? int.MaxValue) - acquired));
                IReadOnlyList<AcquiredTask> got = [];
                var polled = false;
                // Empty means: nothing came back while nothing of ours ran. A task running during the poll may
                // have kept its user at max_running and so hidden that user's due tasks; they show once it ends.
                var idleWhilePolling = _running.IsEmpty;
                if (free > 0)
                {
                    try
                    {
                        got = await _queue.PollMultiAsync(free, _options.AliveTime, stopWaiting.Token).ConfigureAwait(false);
                        polled = true;
                    }
                    catch (OperationCanceledException) when (stopWaiting.IsCancellationRequested) { continue; }
                    catch (Exception e) when (e is DbException or TimeoutException or IOException)
                    {
                        Log($"acquire failed, trying again after the poll interval: {e.Message}");
                    }
                }
                foreach (var task in got)
                {
                    idle.TryPop(out var processor);
                    acquired++;
                    handlers.Add(RunOneAsync(processor!, task, idle));
                }
                handlers.RemoveAll(h => h.IsCompleted);

                if (polled && got.Count == 0 && _options.UntilEmpty && idleWhilePolling && _running.IsEmpty) { stoppedBecause = "empty"; break; }
                if (got.Count > 0 && got.Count == free && idle.IsEmpty)
                {
                    await WaitAsync(ct => freed.WaitAsync(ct), stopWaiting.Token).ConfigureAwait(false);    // full: until a processor frees up
                    // Finishes committed together free their processors together: let the others land before
                    // polling, so one acquire serves them all.
                    await Task.Yield();
                }
                else if (got.Count == 0 || got.Count < free)
                    await WaitAsync(ct => Task.WhenAny(                                                    // idle or drained: poll interval, a submit, or a freed processor
                        _queue.WaitForTasksAsync(_options.PollInterval, ct),
                        freed.WaitAsync(ct)), stopWaiting.Token).ConfigureAwait(false);
            }

            if (stoppedBecause == "immediate stop") StopAll();
            else if (_options.GracefulKillLimit is { } limit && !_running.IsEmpty)
            {
                var drained = Task.WhenAll(handlers);
                if (await Task.WhenAny(drained, Task.Delay(limit, immediate)).ConfigureAwait(false) != drained) StopAll();
            }
            using (immediate.Register(StopAll)) await Task.WhenAll(handlers).ConfigureAwait(false);
            // What ended the run last says why it stopped: an immediate stop while draining, or a Stop-PQWorker
            // that came after a graceful stop (a host deciding whether to restart must see it).
            if (immediate.IsCancellationRequested) stoppedBecause = "immediate stop";
            else if (stopRequested.IsCancellationRequested && stoppedBecause == "graceful stop") stoppedBecause = "stop requested";
        }
        finally
        {
            stopBeats.Cancel();
            await beats.ConfigureAwait(false);
            foreach (var p in processors) await p.DisposeAsync().ConfigureAwait(false);
            await EndSessionAsync().ConfigureAwait(false);
        }

        var summary = new WorkerSummary
        {
            Processed = _processed, Succeeded = _succeeded, Retried = _retried, Failed = _failed, Cancelled = _cancelled,
            Released = _released, Lost = _lost, Duration = clock.Elapsed, StoppedBecause = stoppedBecause, SessionId = SessionId,
        };
        Log($"worker stopped ({stoppedBecause}): {summary.Processed} processed, {summary.Succeeded} succeeded, {summary.Retried} retried, {summary.Failed} failed, {summary.Cancelled} cancelled, {summary.Released} released, {summary.Lost} lost");
        return summary;
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
        foreach (var r in _running.Values) r.Stop.Cancel();
    }

    private async Task RunOneAsync(ITaskProcessor processor, AcquiredTask task, ConcurrentStack<ITaskProcessor> idle)
    {
        using var stop = new CancellationTokenSource();
        // A cancel request or a lost lease cancels the task's token: the handler is asked to stop, and after
        // the grace period it is stopped.
        using var graceRegistration = task.CancellationToken.Register(() => stop.CancelAfter(CancelGracePeriod));
        _running[task.Lease.Id] = new Running(task, stop);
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
            outcome = await ConcludeAsync(task, failure, result).ConfigureAwait(false);
        }
        catch (PreemptedException)
        {
            outcome = Count(ref _lost, "lost (another worker holds it now, or it was force-finished)");
        }
        catch (Exception e)
        {
            // The lease will expire and another worker will run it again: at-least-once, nothing lost.
            outcome = $"not recorded ({e.GetType().Name}: {e.Message}); its lease will expire and it will run again";
        }
        finally
        {
            _running.TryRemove(task.Lease.Id, out _);
            idle.Push(processor);
            Interlocked.Exchange(ref _freed, NewSignal()).TrySetResult();
        }
        Log($"end {task.Key} ({task.Type}) after {clock.Elapsed.TotalSeconds:F3}s: {outcome}");
    }

    private async Task<string> ConcludeAsync(AcquiredTask task, Exception? failure, string? result)
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
        if (_hardStopping && failure is OperationCanceledException)
        {
            await task.ReleaseAsync().ConfigureAwait(false);
            return Count(ref _released, "released (worker stopping)");
        }
        var delay = failure is NoHandlerException ? _queue.RetryPolicy.Wait : (TimeSpan?)null;
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
            catch (Exception e) when (e is not OperationCanceledException)
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
        catch (Exception e) when (e is not OperationCanceledException)
        {
            if (!_sessionFailing) Log($"worker session beat failed, tasks go on; trying again every heartbeat: {e.Message}");
            _sessionFailing = true;
        }
    }

    // A clean exit removes the row; a killed worker leaves it, to show as dead until cleanup deletes it.
    private async Task EndSessionAsync()
    {
        try { await _queue.RemoveWorkerAsync(SessionId!).ConfigureAwait(false); }
        catch (Exception e) when (e is not OperationCanceledException)
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
        var held = _running.Values.Select(r => r.Task).Where(t => !t.IsCompleted && t.LostBecause is null).ToList();
        if (held.Count == 0) return;
        try
        {
            foreach (var report in await _queue.HeartbeatAsync(held, _options.AliveTime).ConfigureAwait(false))
            {
                if (report.Result == HeartbeatResult.CancelRequested && !report.Task.IsCompleted)
                    Log($"cancel requested for {report.Task.Key}: its handler is told, and stopped after {CancelGracePeriod.TotalSeconds:F0}s");
                else if (report.Error is { } lost && !report.Task.IsCompleted)
                    Log($"{report.Task.Key} was lost ({lost.Reason}): its handler is stopped; nothing more is written to it");
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log($"heartbeat failed, trying again in {_options.HeartbeatInterval.TotalSeconds:F0}s: {e.Message}");
        }
    }
}
