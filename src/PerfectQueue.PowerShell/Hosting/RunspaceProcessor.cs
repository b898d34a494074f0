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
    private readonly Action<string> _log;

    public RunspaceProcessor(int number, InitialSessionState state, HandlerRoutes routes, string? initializationScript, Queue queue, Action<string> log)
        : this(number, state, routes.Texts, initializationScript, queue, log) => _routes = routes;

    /// <summary>
    /// A runspace for handler texts by route index, without the routes: a child process is told each task's route
    /// index by its parent (<see cref="RunRouteAsync"/>), and has no queue (its task's writes go to the parent).
    /// </summary>
    internal RunspaceProcessor(int number, InitialSessionState state, IReadOnlyList<string> handlerTexts, string? initializationScript, Queue? queue, Action<string> log)
    {
        _queue = queue;
        _log = log;
        _runspace = RunspaceFactory.CreateRunspace(state);
        _runspace.Name = $"PerfectQueue processor {number}";
        // One thread per runspace for its whole life: the default starts a new thread for every invocation,
        // which cost about 1 ms of CPU per task (measured by build.ps1 bench's author).
        _runspace.ThreadOptions = PSThreadOptions.ReuseThread;
        _runspace.Open();
        Invoke("param([string[]] $texts) $global:ErrorActionPreference = 'Stop'; $global:PSNativeCommandUseErrorActionPreference = $true; " +
            "$global:PerfectQueueHandlers = @(foreach ($t in $texts) { [scriptblock]::Create($t) })",
            [handlerTexts.ToArray()], "loading the handlers");
        if (!string.IsNullOrWhiteSpace(initializationScript)) Invoke(initializationScript, [], "running -InitializationScript");
    }

    private void Invoke(string script, object[] arguments, string what)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _runspace;
        ps.AddScript(script);
        foreach (var a in arguments) ps.AddArgument(a);
        try { ps.Invoke(); }
        catch (RuntimeException e) { throw new InvalidOperationException($"{_runspace.Name}: {what} failed: {e.Message}", e); }
        if (ps.HadErrors && ps.Streams.Error.Count > 0)
            throw new InvalidOperationException($"{_runspace.Name}: {what} failed: {ps.Streams.Error[0]}");
    }

    public Task<string?> RunAsync(AcquiredTask task, CancellationToken stop) =>
        RunRouteAsync(task, _routes!.Find(task.Type) ?? throw new NoHandlerException(task.Type), stop);

    /// <summary>Runs the handler of route <paramref name="index"/> for <paramref name="task"/>.</summary>
    internal async Task<string?> RunRouteAsync(AcquiredTask task, int index, CancellationToken stop)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _runspace;
        // $Task is the handler's first argument, and also visible by name to handlers without a param block.
        ps.AddScript("param($PerfectQueueRoute, $Task) & $global:PerfectQueueHandlers[$PerfectQueueRoute] $Task")
            .AddArgument(index).AddArgument(new PQAcquiredTask(task, _queue!));
        var output = new PSDataCollection<PSObject>();
        output.DataAdded += (_, e) => _log($"{task.Key}: {output[e.Index]}");
        ps.Streams.Warning.DataAdded += (_, e) => _log($"{task.Key}: WARNING: {ps.Streams.Warning[e.Index]}");
        ps.Streams.Information.DataAdded += (_, e) => _log($"{task.Key}: {ps.Streams.Information[e.Index]}");
        string? lastStderr = null;
        ps.Streams.Error.DataAdded += (_, e) =>
        {
            var record = ps.Streams.Error[e.Index];
            if (IsStderr(record))
            {
                lastStderr = record.Exception.Message;
                _log($"{task.Key}: stderr: {lastStderr}");
            }
            else _log($"{task.Key}: ERROR: {record}");
        };
        using var stopping = stop.Register(() => ps.BeginStop(null, null));
        try
        {
            await Task.Factory.FromAsync(ps.BeginInvoke<PSObject, PSObject>(null, output), ps.EndInvoke).ConfigureAwait(false);
        }
        catch (RuntimeException e) when (stop.IsCancellationRequested)
        {
            // Whatever a stop interrupted ends as stopped, so the task is released, not retried: usually that is a
            // PipelineStoppedException, but a stop that lands while a command's module is being auto-loaded
            // surfaces as "found in the module ... but the module could not be loaded".
            throw new OperationCanceledException($"The handler of '{task.Key}' was stopped.", e, stop);
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
        stop.ThrowIfCancellationRequested();
        // The last thing the handler wrote is kept as the finish message (the engine makes it storable and cuts
        // it), so Get-PQTask shows what it did.
        return output.LastOrDefault(o => o is not null)?.ToString();
    }

    // A line a native program wrote to stderr: PowerShell wraps each in an error record of its own.
    private static bool IsStderr(ErrorRecord record) =>
        record.Exception is RemoteException && record.FullyQualifiedErrorId is "NativeCommandError" or "NativeCommandErrorMessage";

    public ValueTask DisposeAsync()
    {
        _runspace.Dispose();
        return ValueTask.CompletedTask;
    }
}
