using System.Management.Automation;
using System.Management.Automation.Runspaces;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// A processor that runs scriptblock handlers in its own runspace, reused from task to task. The handlers
/// are rebuilt from their text inside this runspace: a ScriptBlock belongs to the runspace that created it
/// and must never run in several at once. $ErrorActionPreference is Stop there, and so is a native command's
/// non-zero exit code ($PSNativeCommandUseErrorActionPreference): a failing command or program (pg_dump, rsync,
/// robocopy ...) fails the task, which is then retried, instead of being ignored. Native stderr and other error
/// records go to the worker log, a line each, tagged with the task key.
/// </summary>
internal sealed class RunspaceProcessor : ITaskProcessor
{
    private readonly Runspace _runspace;
    private readonly HandlerRoutes? _routes;
    private readonly Queue? _queue;
    private readonly Action<WorkerEvent> _log;
    private readonly TimeSpan? _interruptAfter;
    // The runspace runs every pipeline on this thread (PSThreadOptions.UseCurrentThread), which the processor owns:
    // a background thread (a handler that ignores every stop cannot keep pwsh from exiting), whose loop survives
    // an interrupt that lands after its handler ended (one landing in PowerShell's own pipeline thread, between
    // pipelines, would crash the process). One thread for the runspace's whole life: a thread per invocation cost
    // about 1 ms of CPU per task.
    private readonly Thread _thread;
    private readonly System.Collections.Concurrent.BlockingCollection<Action> _work = [];
    private volatile bool _busy;
    private volatile bool _interrupted;
    private int _disposed;

    /// <param name="interruptAfter">How long after a stop a handler that ignores the pipeline stop (blocked in
    /// Thread.Sleep, a wait, a lock) has its thread interrupted; null: never.</param>
    public RunspaceProcessor(int number, InitialSessionState state, HandlerRoutes routes, string? initializationScript, Queue queue, Action<WorkerEvent> log, TimeSpan? interruptAfter = null)
        : this(number, state, routes.Texts, initializationScript, queue, log, interruptAfter) => _routes = routes;

    /// <summary>
    /// A runspace for handler texts by route index, without the routes: a child process is told each task's route
    /// index by its parent (<see cref="RunRouteAsync"/>), and has no queue (its task's writes go to the parent).
    /// </summary>
    internal RunspaceProcessor(int number, InitialSessionState state, IReadOnlyList<string> handlerTexts, string? initializationScript, Queue? queue, Action<WorkerEvent> log, TimeSpan? interruptAfter = null)
    {
        _interruptAfter = interruptAfter;
        _queue = queue;
        _log = log;
        _runspace = RunspaceFactory.CreateRunspace(state);
        _runspace.Name = $"PerfectQueue processor {number}";
        _runspace.ThreadOptions = PSThreadOptions.UseCurrentThread;
        _thread = new Thread(Loop) { IsBackground = true, Name = _runspace.Name };
        _thread.Start();
        try
        {
            OnThread(() =>
            {
                _runspace.Open();
                var loaded = Invoke("param([string[]] $texts) $global:ErrorActionPreference = 'Stop'; $global:PSNativeCommandUseErrorActionPreference = $true; " +
                    "$global:PerfectQueueHandlers = @(foreach ($t in $texts) { [scriptblock]::Create($t) }); " +
                    RunHandlerDefinition, [handlerTexts.ToArray()], "loading the handlers");
                _runHandler = loaded.Select(o => o?.BaseObject).OfType<FunctionInfo>().Single();
                if (!string.IsNullOrWhiteSpace(initializationScript)) Invoke(initializationScript, [], "running -InitializationScript");
            }).GetAwaiter().GetResult();
        }
        catch
        {
            _work.CompleteAdding();
            _runspace.Dispose();
            throw;
        }
    }

    private void Loop()
    {
        foreach (var item in Consume())
        {
            try { item(); }
            catch (ThreadInterruptedException) { /* an interrupt that came after its handler ended: spent here */ }
        }
    }

    private IEnumerable<Action> Consume()
    {
        while (true)
        {
            Action item;
            try
            {
                if (!_work.TryTake(out item!, Timeout.Infinite)) yield break;
            }
            catch (ThreadInterruptedException) { continue; }
            catch (InvalidOperationException) { yield break; }
            yield return item;
        }
    }

    // Runs on the processor's thread; the task ends when it did. The caller's current activity (a task's run span)
    // is current there too while it runs, so what a handler does with an instrumented client is that run's child.
    private Task OnThread(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var activity = System.Diagnostics.Activity.Current;
        _work.Add(() =>
        {
            var previous = System.Diagnostics.Activity.Current;
            System.Diagnostics.Activity.Current = activity;
            try { action(); done.TrySetResult(); }
            catch (Exception e) { done.TrySetException(e); }
            finally { System.Diagnostics.Activity.Current = previous; }
        });
        return done.Task;
    }

    // Each task calls this function, defined once per runspace, by its FunctionInfo: a script given as text
    // (AddScript) went through the parser's cache and the compiler for every task (docs/worker.md, "Scriptblock
    // handler cost"). It is removed from the function table once taken, so a handler can neither call nor
    // replace it. A command the API invokes runs in the global scope (no local scope is asked for), as the script
    // per task did: $Task, the handler's first argument, is a global variable, seen by name by handlers without a
    // param block and by a module's functions; the handler itself (&) runs in a scope of its own.
    private const string RunHandlerDefinition =
        "function global:PerfectQueueRunHandler { param($PerfectQueueRoute, $Task) & $global:PerfectQueueHandlers[$PerfectQueueRoute] $Task }; " +
        "Get-Item -LiteralPath function:PerfectQueueRunHandler; Remove-Item -LiteralPath function:PerfectQueueRunHandler";
    private FunctionInfo _runHandler = null!;

    private System.Collections.ObjectModel.Collection<PSObject> Invoke(string script, object[] arguments, string what)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _runspace;
        ps.AddScript(script);
        foreach (var a in arguments) ps.AddArgument(a);
        System.Collections.ObjectModel.Collection<PSObject> result;
        try { result = ps.Invoke(); }
        catch (RuntimeException e) { throw new InvalidOperationException($"{_runspace.Name}: {what} failed: {e.Message}", e); }
        if (ps.HadErrors && ps.Streams.Error.Count > 0)
            throw new InvalidOperationException($"{_runspace.Name}: {what} failed: {ps.Streams.Error[0]}");
        return result;
    }

    public Task<string?> RunAsync(AcquiredTask task, CancellationToken stop) =>
        RunRouteAsync(task, _routes!.Find(task.Type) ?? throw new NoHandlerException(task.Type), stop);

    // A handler's line (its output, warnings, errors) for the worker's log, with the task it belongs to.
    private void Say(AcquiredTask task, string message, WorkerEventLevel level = WorkerEventLevel.Information, string name = WorkerEvents.TaskOutput) =>
        _log(new WorkerEvent(DateTimeOffset.Now, message) { Event = name, Level = level, Key = task.Key, Type = task.Type, Attempt = task.Attempt });

    /// <summary>Runs the handler of route <paramref name="index"/> for <paramref name="task"/>.</summary>
    internal async Task<string?> RunRouteAsync(AcquiredTask task, int index, CancellationToken stop)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _runspace;
        ps.AddCommand(_runHandler).AddArgument(index).AddArgument(new PQAcquiredTask(task, _queue!));
        // The history keeps what the streams carry (task.Output, bounded; docs/history.md); the log shows what it showed before.
        task.ProcessorName ??= "thread";
        var history = task.Output;
        var output = new PSDataCollection<PSObject>();
        output.DataAdded += (_, e) =>
        {
            var line = output[e.Index]?.ToString();
            history.Append("output", line);
            Say(task, $"{task.Key}: {line}");
        };
        ps.Streams.Warning.DataAdded += (_, e) =>
        {
            var w = ps.Streams.Warning[e.Index];
            history.Append("warning", w.Message);
            Say(task, $"{task.Key}: WARNING: {w}", WorkerEventLevel.Warning);
        };
        ps.Streams.Information.DataAdded += (_, e) =>
        {
            var i = ps.Streams.Information[e.Index];
            history.Append("information", i.ToString());
            Say(task, $"{task.Key}: {i}");
        };
        // Verbose records reach the stream only when the handler turned them on ($VerbosePreference, -Verbose): kept then.
        ps.Streams.Verbose.DataAdded += (_, e) => history.Append("verbose", ps.Streams.Verbose[e.Index].Message);
        string? lastStderr = null;
        ps.Streams.Error.DataAdded += (_, e) =>
        {
            var record = ps.Streams.Error[e.Index];
            history.Append("error", IsStderr(record) ? record.Exception.Message : record.ToString());
            if (IsStderr(record))
            {
                lastStderr = record.Exception.Message;
                Say(task, $"{task.Key}: stderr: {lastStderr}", WorkerEventLevel.Warning);
            }
            else Say(task, $"{task.Key}: ERROR: {record}", WorkerEventLevel.Warning);
        };
        // A stop is a pipeline stop first. A handler blocked where a pipeline stop cannot reach (Thread.Sleep, a wait)
        // has its thread interrupted after a while, and the runspace is replaced afterwards. A handler blocked in
        // native code ignores both, and the worker abandons it at the stop limit.
        ProcessorKilledException Interrupted(Exception? inner) => new($"The handler of '{task.Key}' ignored the pipeline stop; its thread was interrupted.", inner);
        // Only while this run lasts: once an interrupt was sent the runspace is never used again, so it cannot reach
        // another task's handler; one landing after this handler ended is spent by the thread's loop.
        var gate = new object();
        var active = true;
        Timer? interrupt = null;
        using var stopping = stop.Register(() =>
        {
            ps.BeginStop(null, null);
            if (_interruptAfter is { } after)
                lock (gate)
                    interrupt = active ? new Timer(_ =>
                    {
                        lock (gate)
                        {
                            if (!active || !_busy) return;
                            _interrupted = true;
                            _thread.Interrupt();
                        }
                        Say(task, $"{task.Key}: its handler ignored the pipeline stop for {after.TotalSeconds:0.###}s: its thread is interrupted", WorkerEventLevel.Warning, WorkerEvents.Message);
                    }, null, after, Timeout.InfiniteTimeSpan) : null;
        });
        using var endRun = new DisposeAction(() => { lock (gate) { active = false; interrupt?.Dispose(); } });
        try
        {
            return await InvokeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (!stop.IsCancellationRequested && e is not OperationCanceledException)
        {
            history.Append("error", e.Message); // the terminating error (Write-Error under Stop, throw): the history shows it where it happened
            throw;
        }

        async Task<string?> InvokeAsync()
        {
            try
            {
                await OnThread(() =>
                {
                    _busy = true;
                    try { ps.Invoke(null, output); }
                    finally { _busy = false; }
                }).ConfigureAwait(false);
            }
            catch (RuntimeException e) when (stop.IsCancellationRequested)
            {
                // Whatever a stop interrupted ends as stopped, so the task is released, not retried: usually that is a
                // PipelineStoppedException, but a stop that lands while a command's module is being auto-loaded
                // surfaces as "found in the module ... but the module could not be loaded".
                if (_interrupted) throw Interrupted(e);
                throw new OperationCanceledException($"The handler of '{task.Key}' was stopped.", e, stop);
            }
            catch (ThreadInterruptedException e) when (stop.IsCancellationRequested)
            {
                throw Interrupted(e);
            }
            catch (RuntimeException e) when (e.InnerException is OperationCanceledException && task.IsCancellationRequested)
            {
                throw new OperationCanceledException(e.Message, e, task.CancellationToken);
            }
            catch (ActionPreferenceStopException e) when (e.ErrorRecord is { } record)
            {
                // "The running command stopped because the preference variable ... is set to Stop: " is noise in a task's
                // message: keep the handler's own text (Write-Error's, or the native program's exit code), and the
                // program's last stderr line, which usually says why.
                var text = record.ToString();
                if (record.Exception is NativeCommandExitException && lastStderr is not null) text += $" Its last stderr line: {lastStderr}";
                throw new RuntimeException(text, e, record);
            }
            if (_interrupted && stop.IsCancellationRequested) throw Interrupted(null);
            stop.ThrowIfCancellationRequested();
            // The last thing the handler wrote is kept as the finish message (the engine makes it storable and cuts
            // it), so Get-PQTask shows what it did.
            return output.LastOrDefault(o => o is not null)?.ToString();
        }
    }

    // A line a native program wrote to stderr: PowerShell wraps each in an error record of its own.
    private static bool IsStderr(ErrorRecord record) =>
        record.Exception is RemoteException && record.FullyQualifiedErrorId is "NativeCommandError" or "NativeCommandErrorMessage";

    /// <summary>A runspace whose thread was interrupted is not used again (see RunAsync).</summary>
    public bool IsUsable => !_interrupted;

    private sealed class DisposeAction(Action action) : IDisposable
    {
        public void Dispose() => action();
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return ValueTask.CompletedTask;
        // A handler still blocked (abandoned) holds the runspace: closing it now would wait for it. It is closed on its
        // own thread if that handler ever returns.
        if (_busy) _work.Add(() => _runspace.Dispose());
        else _runspace.Dispose();
        _work.CompleteAdding();
        return ValueTask.CompletedTask;
    }
}
