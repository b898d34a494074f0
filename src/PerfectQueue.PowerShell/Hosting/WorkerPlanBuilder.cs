using System.Management.Automation.Runspaces;
using PerfectQueue.Application;
using PerfectQueue.PowerShell.Hosting.Child;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>What one worker run uses; a restart loads a new one (config file, handler script or assembly read again).</summary>
internal sealed record WorkerPlan(Queue Queue, WorkerOptions Options, Func<int, ITaskProcessor> CreateProcessor, string Routes, string? LogPath)
{
    /// <summary>A route's own timeout for a task type (a route given as @{ Script = {...}; Timeout = 600 }).</summary>
    public Func<string, TimeSpan?>? RouteTimeout { get; init; }
    /// <summary>Called when a restart has replaced this plan (compiled handlers: let their load context go).</summary>
    public Action? Retire { get; init; }
    /// <summary>Which config file environment this plan read and why (null: no config file), for the log.</summary>
    public string? ConfigChoice { get; init; }
    /// <summary>How the log's lines are written (-LogFormat, else the config file's log_format).</summary>
    public WorkerLogFormat LogFormat { get; init; }
}

/// <summary>What the handlers are, as Start-PQWorker was given them: exactly one of the three is set.</summary>
internal sealed record HandlerSource(HandlerRoutes? Inline, string? HandlerPath, string? AssemblyPath, string? Dispatch)
{
    /// <summary>Runs once in each processor before any task (its text: a child process rebuilds it).</summary>
    public string? InitializationScript { get; init; }
    /// <summary>Modules imported into each processor's runspace.</summary>
    public IReadOnlyList<string> ImportModules { get; init; } = [];
}

/// <summary>
/// The one place a worker's plan is built: configuration (the session's queue or a config file), Start-PQWorker's
/// parameters over it, and the processor type's factory. Start-PQWorker resolves paths against the caller's
/// session once; <see cref="Build"/> runs at start and again at each restart, on any thread.
/// </summary>
internal sealed class WorkerPlanBuilder
{
    /// <summary>Start-PQWorker's parameters that override the configuration; null: the configuration's value.</summary>
    public sealed record Overrides
    {
        public ProcessorType? ProcessorType { get; init; }
        public int? Processors { get; init; }
        public int? Prefetch { get; init; }
        public TimeSpan? PollInterval { get; init; }
        public TimeSpan? AliveTime { get; init; }
        public TimeSpan? HeartbeatInterval { get; init; }
        public TimeSpan? RetryWait { get; init; }
        public int? MaxAttempts { get; init; }
        public TimeSpan? GracefulKillLimit { get; init; }
        public TimeSpan CancelGracePeriod { get; init; } = TimeSpan.FromSeconds(10);
        public TimeSpan? Timeout { get; init; }
        public int? MaxTasksPerProcessor { get; init; }
        public TimeSpan? ChildKillInterval { get; init; }
        public TimeSpan? ChildHeartbeatInterval { get; init; }
        public TimeSpan? ChildHeartbeatLimit { get; init; }
        /// <summary>-MaxProcessorMemory: a child process over this working set after a task is replaced.</summary>
        public long? MaxProcessorMemory { get; init; }
        public int? MaxTasks { get; init; }
        public bool UntilEmpty { get; init; }
        /// <summary>-NoSchedules: this worker fires no schedules.</summary>
        public bool NoSchedules { get; init; }
        public string? LogPath { get; init; }
        public WorkerLogFormat? LogFormat { get; init; }
    }

    private readonly Queue? _sessionQueue;
    private readonly string? _configPath;
    private readonly string? _environment;
    private readonly HandlerSource _handlers;
    private readonly Overrides _overrides;
    private readonly InitialSessionState _state;
    private readonly string _moduleManifest;

    /// <param name="sessionQueue">The session's queue (Connect-PQQueue, -Queue), when no config file is given.</param>
    /// <param name="moduleManifest">This module's manifest: every runspace (and child process) imports it.</param>
    public WorkerPlanBuilder(Queue? sessionQueue, string? configPath, string? environment, HandlerSource handlers, Overrides overrides, string moduleManifest)
    {
        _sessionQueue = sessionQueue;
        _configPath = configPath;
        _environment = environment;
        _handlers = handlers;
        _overrides = overrides;
        _moduleManifest = moduleManifest;
        _state = SessionState(moduleManifest, handlers.ImportModules);
    }

    /// <summary>Receives the plan's own log lines (set once the worker's log exists).</summary>
    public Action<string> Log { get; set; } = _ => { };

    /// <summary>Receives the processors' log events: handler output, child processes (set once the worker's log exists).</summary>
    public Action<WorkerEvent> Emit { get; set; } = _ => { };

    public WorkerPlan Build()
    {
        QueueConfig config;
        string? configChoice = null;
        if (_configPath is null) config = _sessionQueue!.Settings.Clone();
        else
        {
            // Chosen again at each restart: a reload reads the file (and the variables) as they are then.
            (config, var environment, var why) = QueueConfigFile.LoadChoosingEnvironment(_configPath, _environment);
            configChoice = $"config {_configPath}: environment {environment} ({why})";
        }
        var o = _overrides;
        if (o.RetryWait is { } wait) config.RetryWait = wait;
        if (o.MaxAttempts is { } attempts) config.MaxAttempts = attempts;
        if (o.Prefetch is { } prefetch) config.Prefetch = prefetch; // WorkerOptions.Prefetch is init-only: set before From
        var queue = _sessionQueue is not null && PQSession.SettingsKey(config) == PQSession.SettingsKey(_sessionQueue.Settings) ? _sessionQueue : PQSession.Open(config);

        var options = WorkerOptions.From(config);
        if (o.ProcessorType is { } type) options.ProcessorType = type;
        if (o.Processors is { } p) options.Processors = p;
        if (o.PollInterval is { } pi) options.PollInterval = pi;
        if (o.AliveTime is { } at) options.AliveTime = at;
        if (o.HeartbeatInterval is { } hb) options.HeartbeatInterval = hb;
        if (o.GracefulKillLimit is { } gk) options.GracefulKillLimit = gk;
        options.CancelGracePeriod = o.CancelGracePeriod;
        if (o.Timeout is { } t) options.Timeout = t;
        if (o.MaxTasksPerProcessor is { } mt) options.MaxTasksPerProcessor = mt;
        options.Child = options.Child with
        {
            KillInterval = o.ChildKillInterval ?? options.Child.KillInterval,
            HeartbeatInterval = o.ChildHeartbeatInterval ?? options.Child.HeartbeatInterval,
            HeartbeatLimit = o.ChildHeartbeatLimit ?? options.Child.HeartbeatLimit,
            MaxMemoryBytes = o.MaxProcessorMemory ?? options.Child.MaxMemoryBytes,
        };
        options.MaxTasks = o.MaxTasks;
        options.UntilEmpty = o.UntilEmpty;
        if (o.NoSchedules) options.FireSchedules = false;
        options.Validate();

        var logFile = o.LogPath ?? config.Log; // a config file's log is already relative to the file (QueueConfigFile)
        var logPath = logFile is null ? null : Path.GetFullPath(logFile);
        var logFormat = o.LogFormat ?? config.LogFormat;
        var emit = Emit;
        if (_handlers.AssemblyPath is { } assemblyPath)
        {
            var dispatch = HandlerAssembly.LoadDispatch(assemblyPath, _handlers.Dispatch);
            var routes = $"{string.Join(", ", dispatch.RouteNames)} ({dispatch.GetType().FullName})";
            Func<int, ITaskProcessor> create = options.ProcessorType switch
            {
                ProcessorType.Thread => _ => new CompiledProcessor(dispatch),
                _ => Children(new ChildHandlers(null, assemblyPath, _handlers.Dispatch, null, []), options.Child, emit),
            };
            return new WorkerPlan(queue, options, create, routes, logPath) { Retire = () => HandlerAssembly.Unload(dispatch), ConfigChoice = configChoice, LogFormat = logFormat };
        }
        var table = _handlers.HandlerPath is { } path ? HandlerScript.Load(path, _state) : _handlers.Inline!;
        var initialization = _handlers.InitializationScript;
        Func<int, ITaskProcessor> createRunspace = options.ProcessorType switch
        {
            ProcessorType.Thread => i => new RunspaceProcessor(i + 1, _state, table, initialization, queue, e => emit(e), interruptAfter: options.Child.KillInterval * 2),
            _ => Children(new ChildHandlers(table, null, null, initialization, _handlers.ImportModules), options.Child, emit),
        };
        return new WorkerPlan(queue, options, createRunspace, string.Join(", ", table.Names), logPath) { RouteTimeout = table.TimeoutFor, ConfigChoice = configChoice, LogFormat = logFormat };
    }

    // processor_type: process: each processor a child pwsh, given these handlers over its pipe.
    private Func<int, ITaskProcessor> Children(ChildHandlers handlers, ChildProcessSettings settings, Action<WorkerEvent> emit)
    {
        ChildLauncher.Check(); // no pwsh to start (the module hosted in another .NET program): say so at start
        var manifest = _moduleManifest;
        return i => new ChildProcessor(i + 1, manifest, handlers, settings, e => emit(e));
    }

    // Each processor's runspace: PowerShell's defaults, this module (for $Task's type and the cmdlets), and -ImportModule.
    private static InitialSessionState SessionState(string moduleManifest, IReadOnlyList<string> importModules)
    {
        var state = InitialSessionState.CreateDefault2();
        state.ImportPSModule(moduleManifest);
        if (importModules.Count > 0) state.ImportPSModule([.. importModules]);
        return state;
    }
}
