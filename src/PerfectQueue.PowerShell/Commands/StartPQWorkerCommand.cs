using System.Collections;
using System.Collections.Concurrent;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Runtime.InteropServices;
using PerfectQueue.PowerShell.Hosting;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Runs a worker (the original's run): handlers for the queue's tasks, in runspaces, one per processor,
/// reused from task to task. Log lines go to the host (capturable as information records); when the worker
/// stops it writes a summary. Ctrl+C and SIGTERM stop it gracefully (running tasks end, nothing new is
/// acquired); a second Ctrl+C stops the handlers now and releases their tasks.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "PQWorker", DefaultParameterSetName = HandlerSet)]
[OutputType(typeof(WorkerSummary))]
public sealed class StartPQWorkerCommand : PQCmdlet
{
    private const string HandlerSet = "Handler";
    private const string HandlerPathSet = "HandlerPath";

    /// <summary>Routes: task type (or a regular expression: a [regex] key, or a string starting with '^') → scriptblock.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = HandlerSet)]
    [ValidateNotNull]
    public IDictionary Handler { get; set; } = new Hashtable();

    /// <summary>A script that returns the route table.</summary>
    [Parameter(Mandatory = true, ParameterSetName = HandlerPathSet)]
    [ValidateNotNullOrEmpty]
    public string HandlerPath { get; set; } = "";

    /// <summary>How many tasks run at once. Default: the queue's processors (1).</summary>
    [Parameter]
    [ValidateRange(1, 256)]
    public int? Processors { get; set; }

    [Parameter]
    [DurationTransformation]
    public TimeSpan? PollInterval { get; set; }

    [Parameter]
    [DurationTransformation]
    public TimeSpan? AliveTime { get; set; }

    [Parameter]
    [DurationTransformation]
    public TimeSpan? HeartbeatInterval { get; set; }

    /// <summary>How long a failed task waits before its next attempt.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? RetryWait { get; set; }

    /// <summary>After this many attempts a failing task ends Failed.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int? MaxAttempts { get; set; }

    /// <summary>Stop after acquiring this many tasks.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int? MaxTasks { get; set; }

    /// <summary>Stop when nothing is due and nothing runs (for scheduled automation).</summary>
    [Parameter]
    public SwitchParameter UntilEmpty { get; set; }

    /// <summary>After a graceful stop, how long running handlers may go on before they are stopped and their tasks released. Default: wait for them.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? GracefulKillLimit { get; set; }

    /// <summary>How long a handler may go on after its task's cancel was asked before it is stopped. Default: 10 s.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan CancelGracePeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Runs once in each processor's runspace before any task (functions, variables, connections).</summary>
    [Parameter]
    public ScriptBlock? InitializationScript { get; set; }

    /// <summary>Modules to import into each processor's runspace.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[] ImportModule { get; set; } = [];

    private readonly CancellationTokenSource _graceful = new();
    private readonly CancellationTokenSource _immediate = new();
    private int _stops;

    protected override void StopProcessing()
    {
        base.StopProcessing();
        if (Interlocked.Increment(ref _stops) == 1) _graceful.Cancel();
        else _immediate.Cancel();
    }

    protected override void EndProcessing()
    {
        var queue = CurrentQueue();
        var table = ParameterSetName == HandlerPathSet ? LoadHandlerPath() : Handler;
        HandlerRoutes routes;
        try { routes = new HandlerRoutes(table); }
        catch (ArgumentException e) { ThrowTerminatingError(new ErrorRecord(e, PQErrors.InvalidArgument, ErrorCategory.InvalidArgument, table)); return; }

        if (RetryWait is not null || MaxAttempts is not null)
        {
            var config = queue.Config.Clone();
            if (RetryWait is { } wait) config.RetryWait = wait;
            if (MaxAttempts is { } attempts) config.MaxAttempts = attempts;
            queue = PQSession.Open(config);
        }
        var options = WorkerOptions.From(queue.Config);
        if (Processors is { } p) options.Processors = p;
        if (PollInterval is { } pi) options.PollInterval = pi;
        if (AliveTime is { } at) options.AliveTime = at;
        if (HeartbeatInterval is { } hb) options.HeartbeatInterval = hb;
        if (GracefulKillLimit is { } gk) options.GracefulKillLimit = gk;
        options.MaxTasks = MaxTasks;
        options.UntilEmpty = UntilEmpty;

        var events = new BlockingCollection<string>();
        void Log(string line) { try { events.Add($"{DateTime.Now:yyyy-MM-dd HH:mm:ss.fff} {line}"); } catch (InvalidOperationException) { } }
        var state = SessionStateFor();
        Worker worker;
        try
        {
            worker = new Worker(queue, options, i => new RunspaceProcessor(i + 1, state, routes, InitializationScript?.ToString(), queue, Log), e => Log(e.Message))
            {
                CancelGracePeriod = CancelGracePeriod,
            };
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, PQErrors.InvalidArgument, ErrorCategory.InvalidArgument, options));
            return;
        }
        WriteVerbose($"Routes: {string.Join(", ", routes.Names)}");

        // SIGTERM stops gracefully, as in the original (SIGINT is Ctrl+C: StopProcessing). Handled only while
        // the worker runs; the process's default handling comes back afterwards. SIGQUIT is not handled yet:
        // pwsh ended the process right after a handled SIGQUIT (docs/worker.md).
        using var onTerm = Signal(PosixSignal.SIGTERM, "SIGTERM: graceful stop", _graceful, Log);
        var run = Task.Run(() => worker.RunAsync(_graceful.Token, _immediate.Token));
        _ = run.ContinueWith(_ => events.CompleteAdding(), TaskScheduler.Default);
        // Only this thread may write to the pipeline: the worker's threads hand their lines over.
        var stopped = false;
        foreach (var line in events.GetConsumingEnumerable())
        {
            if (stopped) continue; // after Ctrl+C nothing can be written; keep draining until the worker has released its tasks
            try { WriteInformation(new HostInformationMessage { Message = line }, ["PSHOST", "PerfectQueue"]); }
            catch (PipelineStoppedException) { stopped = true; }
        }
        WorkerSummary summary;
        try
        {
            summary = run.GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is PerfectQueueException or System.Data.Common.DbException or InvalidOperationException)
        {
            if (stopped) throw new PipelineStoppedException();
            ThrowTerminatingError(PQErrors.For(e, queue.Description));
            return;
        }
        if (stopped) throw new PipelineStoppedException();
        WriteObject(summary);
    }

    private static PosixSignalRegistration? Signal(PosixSignal signal, string message, CancellationTokenSource stop, Action<string> log)
    {
        try
        {
            return PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true; // the worker stops itself, releasing what it must
                log(message);
                stop.Cancel();
            });
        }
        catch (PlatformNotSupportedException) { return null; }
    }

    private IDictionary LoadHandlerPath()
    {
        var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(HandlerPath);
        if (!File.Exists(path))
            ThrowTerminatingError(new ErrorRecord(new FileNotFoundException($"No handler script at '{path}'.", path), PQErrors.InvalidArgument, ErrorCategory.ObjectNotFound, path));
        var result = InvokeCommand.InvokeScript($". '{path.Replace("'", "''")}'");
        return result.Select(o => o.BaseObject).OfType<IDictionary>().LastOrDefault()
            ?? throw new PSArgumentException($"The handler script '{path}' must return a table of routes: @{{ 'type' = {{ param($Task) ... }} }}.");
    }

    // Each processor's runspace: PowerShell's defaults, this module (for $Task's type and the cmdlets), and -ImportModule.
    private InitialSessionState SessionStateFor()
    {
        var state = InitialSessionState.CreateDefault2();
        state.ImportPSModule(Path.Combine(MyInvocation.MyCommand.Module.ModuleBase, "PerfectQueue.psd1"));
        if (ImportModule.Length > 0) state.ImportPSModule(ImportModule);
        return state;
    }
}
