using System.Diagnostics;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// Runs a worker for Start-PQWorker, in the foreground or as a job, and restarts it on request: a graceful
/// restart (SIGUSR1) lets running tasks end, an immediate one (SIGHUP) stops them and releases their tasks;
/// both then load the configuration and handlers again. A reload that fails is logged and the previous ones
/// are kept, so a bad edit never stops a worker. The summary covers every run.
/// </summary>
internal sealed class WorkerHost : IDisposable
{
    private readonly Func<WorkerPlan> _load;
    private readonly CancellationTokenSource _graceful = new();
    private readonly CancellationTokenSource _immediate = new();
    private readonly object _gate = new();
    private CancellationTokenSource? _runGraceful, _runImmediate;
    private enum RestartKind { Graceful, Immediate }
    private RestartKind? _restart;
    private WorkerPlan _plan;

    public WorkerHost(WorkerPlan first, Func<WorkerPlan> load, WorkerLog log)
    {
        _plan = first;
        _load = load;
        Log = log;
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    private Task<WorkerSummary>? _run;

    // pwsh itself is exiting (`exit` with a worker job running, the session closed, SIGTERM to a pwsh whose worker is
    // a job): a task cut off by that is released, not retried with an attempt counted. The process waits for the
    // releases, boundedly: every handler ends or is abandoned within the stop limit.
    private void OnProcessExit(object? sender, EventArgs e) => StopAtExit();

    /// <summary>The session or process is exiting: stop now, and wait (boundedly) for the tasks to be released.</summary>
    public void StopAtExit()
    {
        if (_run is not { IsCompleted: false } run) return;
        StopNow("pwsh is exiting");
        try { run.Wait(_plan.Options.StopLimit + _plan.Options.Child.KillInterval + TimeSpan.FromSeconds(5)); }
        catch (AggregateException) { /* the run failed: its job reports it */ }
    }

    public WorkerLog Log { get; }

    /// <summary>The queue the worker runs on, masked: for errors that name it.</summary>
    public string QueueDescription => _plan.Queue.Description;

    public bool IsStopping => _graceful.IsCancellationRequested || _immediate.IsCancellationRequested;

    /// <summary>Stop acquiring, let running tasks end (up to the graceful kill limit), then exit.</summary>
    public void StopGracefully(string why)
    {
        if (_graceful.IsCancellationRequested) return;
        Log.Write($"{why}: graceful stop");
        _graceful.Cancel();
    }

    /// <summary>Stop the handlers now and release their tasks.</summary>
    public void StopNow(string why)
    {
        if (_immediate.IsCancellationRequested) return;
        Log.Write($"{why}: immediate stop");
        _immediate.Cancel();
    }

    public void Restart(bool immediate, string why)
    {
        lock (_gate)
        {
            if (IsStopping) return;
            Log.Write($"{why}: {(immediate ? "immediate" : "graceful")} restart");
            if (immediate || _restart is null) _restart = immediate ? RestartKind.Immediate : RestartKind.Graceful;
            (immediate ? _runImmediate : _runGraceful)?.Cancel();
        }
    }

    /// <summary>Reopens the log file at its path (after rotation moved it away).</summary>
    public void ReopenLog(string why)
    {
        try
        {
            Log.Reopen();
            Log.Write($"{why}: log reopened{(Log.Path is { } p ? $" at {p}" : "")}");
        }
        catch (ConfigException e)
        {
            Log.Write($"{why}: the log could not be reopened, still writing to the old file: {e.Message}");
        }
    }

    public Task<WorkerSummary> RunAsync() => _run = RunAllAsync();

    private async Task<WorkerSummary> RunAllAsync()
    {
        var clock = Stopwatch.StartNew();
        var runs = new List<WorkerSummary>();
        WorkerPlan? previous = null; // after a reload: what to go back to if the new plan cannot even start
        while (!IsStopping || runs.Count == 0)
        {
            var plan = _plan;
            var options = plan.Options.Clone();
            var processed = runs.Sum(r => r.Processed);
            if (options.MaxTasks is { } max) options.MaxTasks = max - processed; // MaxTasks counts across restarts
            if (options.MaxTasks is <= 0) break;

            using var graceful = CancellationTokenSource.CreateLinkedTokenSource(_graceful.Token);
            using var immediate = CancellationTokenSource.CreateLinkedTokenSource(_immediate.Token);
            lock (_gate)
            {
                _runGraceful = graceful;
                _runImmediate = immediate;
                if (_restart is { } pending) (pending == RestartKind.Immediate ? immediate : graceful).Cancel(); // asked for between runs
            }
            if (plan.ConfigChoice is { } choice) Log.Write(choice);
            Log.Write($"routes: {plan.Routes}");
            var worker = new Worker(plan.Queue, options, plan.CreateProcessor, Log.Write)
            {
                RouteTimeout = plan.RouteTimeout,
                StopIsRestart = () => { lock (_gate) return _restart is not null && !IsStopping; },
            };
            WorkerSummary summary;
            try { summary = await worker.RunAsync(graceful.Token, immediate.Token).ConfigureAwait(false); }
            catch (Exception e) when (previous is not null && e is not OperationCanceledException)
            {
                // The reloaded configuration or handlers cannot start (an initialization script that fails):
                // keep working with the ones that did.
                Log.Write($"restart: the reloaded configuration or handlers could not start, so the previous ones are kept: {e.Message}");
                (_plan, previous) = (previous, null);
                plan.Retire?.Invoke();
                if (_plan.LogPath != Log.Path) SwitchLog(_plan.LogPath);
                Log.Format = _plan.LogFormat;
                continue;
            }
            finally
            {
                lock (_gate) { _runGraceful = _runImmediate = null; }
            }
            runs.Add(summary);
            previous?.Retire?.Invoke();
            previous = null;

            RestartKind? restart;
            lock (_gate) { restart = _restart; _restart = null; }
            // Stop-PQWorker asked this worker to stop: that wins over a restart asked meanwhile.
            if (restart is null || IsStopping || summary.Reason == WorkerStopReason.StopRequested) break;
            try
            {
                var next = _load();
                if (next.LogPath != Log.Path) SwitchLog(next.LogPath);
                Log.Format = next.LogFormat;
                (previous, _plan) = (_plan, next);
                Log.Write($"restarted ({restart.Value.ToString().ToLowerInvariant()}): configuration and handlers loaded again");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.Write($"restart ({restart.Value.ToString().ToLowerInvariant()}): loading the configuration or handlers failed, so the previous ones are kept: {e.Message}");
            }
        }
        var last = runs.LastOrDefault();
        return new WorkerSummary
        {
            Processed = runs.Sum(r => r.Processed),
            Succeeded = runs.Sum(r => r.Succeeded),
            Retried = runs.Sum(r => r.Retried),
            Failed = runs.Sum(r => r.Failed),
            Cancelled = runs.Sum(r => r.Cancelled),
            Released = runs.Sum(r => r.Released),
            Lost = runs.Sum(r => r.Lost),
            TimedOut = runs.Sum(r => r.TimedOut),
            Killed = runs.Sum(r => r.Killed),
            ProcessorRestarts = runs.Sum(r => r.ProcessorRestarts),
            Restarts = Math.Max(0, runs.Count - 1),
            Duration = clock.Elapsed,
            Reason = last?.Reason ?? (IsStopping ? WorkerStopReason.GracefulStop : WorkerStopReason.MaxTasks),
            SessionId = last?.SessionId,
        };
    }

    private void SwitchLog(string? path)
    {
        try { Log.UseFile(path); }
        catch (ConfigException e) { Log.Write($"the log stays where it was: {e.Message}"); }
    }

    // The token sources are not disposed: a late signal (its registration is released a moment after the run)
    // must find them usable. They hold no timers, so nothing leaks.
    public void Dispose()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        Log.Dispose();
    }
}
