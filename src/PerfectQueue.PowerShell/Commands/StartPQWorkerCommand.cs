using System.Collections;
using System.Collections.Concurrent;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Runtime.InteropServices;
using PerfectQueue.Application;
using PerfectQueue.PowerShell.Hosting;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Runs a worker (the original's run): scriptblock handlers in runspaces, one per processor, reused from task
/// to task, or compiled handlers routed by a Dispatch class. Log lines go to the host (capturable as
/// information records) or to -LogPath; when the worker stops it writes a summary. Ctrl+C, SIGINT and SIGTERM
/// stop it gracefully (running tasks end, nothing new is acquired); a second Ctrl+C or SIGQUIT stops the
/// handlers now and releases their tasks; SIGUSR1 and SIGHUP restart it (graceful, immediate) with its
/// configuration and handlers loaded again; SIGUSR2 reopens the log file. -AsJob runs it as a job instead.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "PQWorker", DefaultParameterSetName = HandlerSet)]
[OutputType(typeof(WorkerSummary))]
[OutputType(typeof(WorkerJob))]
public sealed class StartPQWorkerCommand : PQCmdlet
{
    private const string HandlerSet = "Handler";
    private const string HandlerPathSet = "HandlerPath";
    private const string AssemblySet = "Assembly";

    /// <summary>Routes: task type (or a regular expression: a [regex] key, or a string starting with '^') → scriptblock.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = HandlerSet)]
    [ValidateNotNull]
    public IDictionary Handler { get; set; } = new Hashtable();

    /// <summary>A script that returns the route table (read again on restart).</summary>
    [Parameter(Mandatory = true, ParameterSetName = HandlerPathSet)]
    [ValidateNotNullOrEmpty]
    public string HandlerPath { get; set; } = "";

    /// <summary>An assembly of compiled handlers: classes deriving from PerfectQueue.Application.Base, routed by a Dispatch class (loaded again on restart).</summary>
    [Parameter(Mandatory = true, ParameterSetName = AssemblySet)]
    [ValidateNotNullOrEmpty]
    public string AssemblyPath { get; set; } = "";

    /// <summary>The Dispatch class in -AssemblyPath (full or simple name). Default: the assembly's only one.</summary>
    [Parameter(ParameterSetName = AssemblySet)]
    [ValidateNotNullOrEmpty]
    public string? Dispatch { get; set; }

    /// <summary>A config file (the original's YAML with environments, or JSON): the queue and the worker's settings. Parameters override it.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ConfigPath { get; set; }

    /// <summary>The environment in -ConfigPath. Default: $env:PERFECTQUEUE_ENVIRONMENT, then $env:RAILS_ENV, then development.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ConfigEnvironmentCompleter))]
    public string? Environment { get; set; }

    /// <summary>Writes the log to this file (appending) instead of the host. Default: the config's log key, else the host.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? LogPath { get; set; }

    /// <summary>How log lines are written: Text (the default) or Json, one object per line for log shippers. Default: the config's log_format, else Text.</summary>
    [Parameter]
    public WorkerLogFormat? LogFormat { get; set; }

    /// <summary>Runs the worker as a job of this session; Stop-Job stops it gracefully.</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    /// <summary>The job's name (with -AsJob).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? JobName { get; set; }

    /// <summary>How many tasks run at once. Default: the queue's processors (1).</summary>
    [Parameter]
    [ValidateRange(1, 256)]
    public int? Processors { get; set; }

    /// <summary>How many leased tasks to keep ready beyond the free processors, for many short tasks (0: none). Default: the config's prefetch (0).</summary>
    [Parameter]
    [ValidateRange(0, WorkerOptions.MaxPrefetch)]
    public int? Prefetch { get; set; }

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

    /// <summary>Do not fire the queue's due schedules (Register-PQSchedule); other workers still do. Overrides fire_schedules.</summary>
    [Parameter]
    public SwitchParameter NoSchedules { get; set; }

    /// <summary>After a graceful stop, how long running handlers may go on before they are stopped and their tasks released. Default: wait for them.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? GracefulKillLimit { get; set; }

    /// <summary>How long a handler may go on after its task's cancel was asked before it is stopped. Default: 10 s.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan CancelGracePeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Thread: a runspace per processor in this process (the default). Process: a child pwsh per processor, which a hung, crashed or leaking handler cannot take down. Default: the config's processor_type.</summary>
    [Parameter]
    public ProcessorType? ProcessorType { get; set; }

    /// <summary>The longest one attempt may run; a route's or a task's own timeout may be tighter (the tightest wins). The handler is then stopped and its task retried.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? Timeout { get; set; }

    /// <summary>Replaces a processor (a new runspace or child process) after it ran this many tasks: for leaky scripts.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int? MaxTasksPerProcessor { get; set; }

    /// <summary>The step of a hard stop (child_kill_interval, 2 s): a child is sent its stop message, SIGTERM after one and two steps, SIGKILL after three; a runspace is abandoned after three.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? ChildKillInterval { get; set; }

    /// <summary>How often a child process says it is alive (child_heartbeat_interval, 2 s).</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? ChildHeartbeatInterval { get; set; }

    /// <summary>A child silent this long is taken as frozen, killed, and its task retried (child_heartbeat_limit, 10 s).</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? ChildHeartbeatLimit { get; set; }

    /// <summary>Process processors: a child process whose working set is over this many bytes after a task is replaced by a new one (for leaky scripts). Default: no ceiling.</summary>
    [Parameter]
    [ValidateRange(1L, long.MaxValue)]
    public long? MaxProcessorMemory { get; set; }

    /// <summary>Runs once in each processor's runspace before any task (functions, variables, connections).</summary>
    [Parameter(ParameterSetName = HandlerSet)]
    [Parameter(ParameterSetName = HandlerPathSet)]
    public ScriptBlock? InitializationScript { get; set; }

    /// <summary>Modules to import into each processor's runspace.</summary>
    [Parameter(ParameterSetName = HandlerSet)]
    [Parameter(ParameterSetName = HandlerPathSet)]
    [ValidateNotNullOrEmpty]
    public string[] ImportModule { get; set; } = [];

    private WorkerHost? _host;
    private string? _queueDescription; // named by a connection failure's error
    private int _interrupts;

    // PowerShell calls StopProcessing once per pipeline (and also after this command has returned, for a later
    // command's Ctrl+C): it stops the foreground worker gracefully; a second Ctrl+C is counted by the SIGINT
    // registration below. A worker started -AsJob is stopped with Stop-Job only.
    protected override void StopProcessing()
    {
        base.StopProcessing();
        if (!AsJob) _host?.StopGracefully("Ctrl+C");
    }

    private void OnInterrupt(WorkerHost host)
    {
        if (Interlocked.Increment(ref _interrupts) == 1) host.StopGracefully("Ctrl+C (SIGINT)");
        else host.StopNow("second Ctrl+C (SIGINT)");
    }

    protected override void EndProcessing()
    {
        if (ConfigPath is not null && MyInvocation.BoundParameters.ContainsKey(nameof(Queue)))
            Terminate(new ArgumentException("Give -ConfigPath or -Queue, not both: the config file names the queue."), ConfigPath);
        if (Environment is not null && ConfigPath is null)
            Terminate(new ArgumentException("-Environment chooses a section of -ConfigPath; give -ConfigPath too."), Environment);

        // Everything the cmdlet resolves against the caller's session, once: a restart reloads from these on a worker thread.
        var configPath = ConfigPath is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
        var handlerPath = ParameterSetName == HandlerPathSet ? SessionState.Path.GetUnresolvedProviderPathFromPSPath(HandlerPath) : null;
        var assemblyPath = ParameterSetName == AssemblySet ? SessionState.Path.GetUnresolvedProviderPathFromPSPath(AssemblyPath) : null;
        var logPath = LogPath is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(LogPath);
        var sessionQueue = configPath is null ? CurrentQueue() : null;
        _queueDescription = sessionQueue?.Description;
        var handlers = new HandlerSource(ParameterSetName == HandlerSet ? NewRoutes(Handler) : null, handlerPath, assemblyPath, Dispatch)
        {
            InitializationScript = InitializationScript?.ToString(),
            ImportModules = ResolveModules(),
        };
        var overrides = new WorkerPlanBuilder.Overrides
        {
            ProcessorType = ProcessorType, Processors = Processors, Prefetch = Prefetch, PollInterval = PollInterval, AliveTime = AliveTime,
            HeartbeatInterval = HeartbeatInterval, RetryWait = RetryWait, MaxAttempts = MaxAttempts, GracefulKillLimit = GracefulKillLimit,
            CancelGracePeriod = CancelGracePeriod, Timeout = Timeout, MaxTasksPerProcessor = MaxTasksPerProcessor,
            ChildKillInterval = ChildKillInterval, ChildHeartbeatInterval = ChildHeartbeatInterval, ChildHeartbeatLimit = ChildHeartbeatLimit,
            MaxProcessorMemory = MaxProcessorMemory,
            MaxTasks = MaxTasks, UntilEmpty = UntilEmpty, LogPath = logPath, LogFormat = LogFormat,
            NoSchedules = NoSchedules,
        };
        var builder = new WorkerPlanBuilder(sessionQueue, configPath, Environment, handlers, overrides,
            Path.Combine(MyInvocation.MyCommand.Module.ModuleBase, "PerfectQueue.psd1"));

        WorkerLog? log = null;
        Action<string> toHost = _ => { };
        builder.Log = line => log!.Write(line);
        builder.Emit = e => log!.Write(e);
        WorkerPlan Load() => builder.Build();

        WorkerPlan first;
        try
        {
            first = Load();
            _queueDescription = first.Queue.Description;
            log = new WorkerLog(first.LogPath, line => toHost(line), first.LogFormat);
        }
        catch (Exception e) when (e is PerfectQueueException or ArgumentException or System.Data.Common.DbException)
        {
            Terminate(e, configPath ?? assemblyPath ?? handlerPath ?? sessionQueue?.Description);
            return;
        }
        WriteVerbose($"Routes: {first.Routes}");
        _host = new WorkerHost(first, Load, log);

        if (AsJob)
        {
            // Get-Job shows the command line: an inline URL's password must not be part of it.
            var job = new WorkerJob(UrlText.Mask(MyInvocation.Line), JobName, _host);
            toHost = job.WriteLine;
            JobRepository.Add(job);
            // pwsh exiting closes every runspace, and closing one waits for its pipeline: a handler that ignores a
            // stop would hang the exit, and its task would only come back when its lease ran out. Stopped as the
            // session exits, the worker releases its tasks (not counted as attempts) within the stop limit.
            var host = _host;
            Events.SubscribeEvent(null, null, PSEngineEvent.Exiting, null, (_, _) => host.StopAtExit(), supportEvent: true, forwardEvent: false);
            job.Start();
            WriteObject(job);
            return;
        }
        RunInForeground(_host, line => toHost = line);
    }

    private void Terminate(Exception e, object? target)
    {
        var record = e is ArgumentException a
            ? PQErrors.InvalidArgumentError(a, target)
            : PQErrors.For(e, target, _queueDescription);
        ThrowTerminatingError(record);
    }

    private HandlerRoutes NewRoutes(IDictionary table)
    {
        try { return new HandlerRoutes(table); }
        catch (ArgumentException e) { Terminate(e, table); throw; }
    }

    private void RunInForeground(WorkerHost host, Action<Action<string>> setHostWriter)
    {
        // Only this thread may write to the pipeline: the worker's threads hand their lines over.
        var events = new BlockingCollection<string>();
        setHostWriter(line => { try { events.Add(line); } catch (InvalidOperationException) { } });

        var run = Task.Run(host.RunAsync);
        _ = run.ContinueWith(_ => events.CompleteAdding(), TaskScheduler.Default);
        var stopped = false;
        // Signals are handled only while the worker runs; the process's default handling comes back afterwards.
        // SIGINT is also PowerShell's Ctrl+C (StopProcessing): counting it here is what makes a second one immediate.
        using (Signal(PosixSignal.SIGINT, () => OnInterrupt(host), allPlatforms: true))
        using (Signal(PosixSignal.SIGTERM, () => host.StopGracefully("SIGTERM")))
        using (Signal(PosixSignal.SIGQUIT, () => host.StopNow("SIGQUIT")))
        using (Signal(PosixSignal.SIGHUP, () => host.Restart(immediate: true, "SIGHUP")))
        using (Signal(UserSignal(1), () => host.Restart(immediate: false, "SIGUSR1")))
        using (Signal(UserSignal(2), () => host.ReopenLog("SIGUSR2")))
        {
            foreach (var line in events.GetConsumingEnumerable())
            {
                // After Ctrl+C the pipeline takes nothing more, but the user should still see the worker finish
                // and release its tasks: those lines go straight to the host.
                if (!stopped)
                {
                    try { WriteInformation(new HostInformationMessage { Message = line }, ["PSHOST", "PerfectQueue"]); continue; }
                    catch (PipelineStoppedException) { stopped = true; }
                }
                try { Host.UI.WriteLine(line); }
                catch (Exception e) when (e is PipelineStoppedException or InvalidOperationException or NotImplementedException or IOException) { }
            }
            run.ContinueWith(_ => { }, TaskScheduler.Default).Wait(); // the run has ended before its signals are let go
        }
        WorkerSummary summary;
        try
        {
            summary = run.GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is PerfectQueueException or System.Data.Common.DbException or InvalidOperationException or ArgumentException)
        {
            if (stopped) throw new PipelineStoppedException();
            Terminate(e, host.Log.Path);
            return;
        }
        finally
        {
            host.Dispose();
        }
        if (stopped) throw new PipelineStoppedException();
        WriteObject(summary);
    }

    // SIGUSR1/SIGUSR2 have no PosixSignal name; their raw numbers differ between Linux and the BSDs (macOS).
    private static PosixSignal? UserSignal(int n) =>
        OperatingSystem.IsLinux() ? (PosixSignal)(n == 1 ? 10 : 12)
        : OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD() ? (PosixSignal)(n == 1 ? 30 : 31)
        : null;

    private static PosixSignalRegistration? Signal(PosixSignal? signal, Action handle, bool allPlatforms = false)
    {
        if (signal is null || (OperatingSystem.IsWindows() && !allPlatforms)) return null;
        try
        {
            return PosixSignalRegistration.Create(signal.Value, context =>
            {
                context.Cancel = true; // the worker acts on it itself
                handle();
            });
        }
        catch (PlatformNotSupportedException) { return null; }
    }

    // -ImportModule names a module that cannot be found: fail the start, not every task later. A module already
    // imported here, a path that exists, or a module Get-Module -ListAvailable finds is taken as given.
    private string[] ResolveModules()
    {
        var resolved = new List<string>();
        foreach (var name in ImportModule)
        {
            var looksLikePath = name.IndexOfAny(['/', '\\']) >= 0 || name.EndsWith(".psd1", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".psm1", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
            if (looksLikePath)
            {
                var full = SessionState.Path.GetUnresolvedProviderPathFromPSPath(name);
                if (File.Exists(full) || Directory.Exists(full)) { resolved.Add(full); continue; }
            }
            else
            {
                var found = InvokeCommand.InvokeScript("param($n) @(Get-Module -Name $n) + @(Get-Module -ListAvailable -Name $n) | Select-Object -First 1", true, PipelineResultTypes.None, null, name);
                if (found.Count > 0 && found[0] is not null) { resolved.Add(name); continue; }
            }
            Terminate(new ArgumentException($"-ImportModule: the module '{name}' was not found. Install it (Install-PSResource {name}), give its path, or correct the name; Get-Module -ListAvailable lists what this session can import."), name);
        }
        return [.. resolved];
    }
}
