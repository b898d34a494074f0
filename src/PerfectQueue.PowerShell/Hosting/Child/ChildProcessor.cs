using System.Management.Automation;
using System.Text.Json.Nodes;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting.Child;

/// <summary>What a child process is given at setup: scriptblock handlers (texts by route index) or a compiled assembly.</summary>
internal sealed record ChildHandlers(HandlerRoutes? Routes, string? AssemblyPath, string? Dispatch, string? InitializationScript, IReadOnlyList<string> ImportModules)
{
    public JsonObject Setup(int number, string moduleManifest, ChildProcessSettings settings) => new()
    {
        ["t"] = ChildMessage.Setup,
        ["number"] = number,
        ["manifest"] = moduleManifest,
        ["handlers"] = Routes is null ? null : new JsonArray([.. Routes.Texts.Select(t => (JsonNode?)t)]),
        ["init"] = InitializationScript,
        ["modules"] = new JsonArray([.. ImportModules.Select(m => (JsonNode?)m)]),
        ["assembly"] = AssemblyPath,
        ["dispatch"] = Dispatch,
        ["beatMs"] = settings.HeartbeatInterval.TotalMilliseconds,
    };
}

/// <summary>
/// A processor that runs each task in a child pwsh of its own (processor_type: process): a hung, crashed or
/// leaking handler cannot take the worker down. The parent keeps the lease and applies the handler's writes;
/// a child that crashed, froze or had to be killed makes this processor unusable (the worker replaces it), and
/// so does a child over the memory ceiling after a task.
/// </summary>
internal sealed class ChildProcessor : ITaskProcessor
{
    private readonly string _name;
    private readonly int _number;
    private readonly string _moduleManifest;
    private readonly ChildHandlers _handlers;
    private readonly ChildProcessSettings _settings;
    private readonly Action<string> _log;
    private readonly Action<WorkerEvent> _emit;
    private ChildProcess _child;
    private string? _retired; // why the child must not run another task, though it may still be alive

    /// <summary>Starts the child and waits until it is ready.</summary>
    /// <exception cref="InvalidOperationException">the child could not start (its initialization script failed ...).</exception>
    public ChildProcessor(int number, string moduleManifest, ChildHandlers handlers, ChildProcessSettings settings, Action<WorkerEvent> log)
    {
        _number = number;
        _name = $"processor {number}";
        _moduleManifest = moduleManifest;
        _handlers = handlers;
        _settings = settings;
        _emit = log;
        _log = line => log(new WorkerEvent(DateTimeOffset.Now, line));
        _child = StartChild();
    }

    private ChildProcess StartChild() => ChildProcess.Start(_name, _moduleManifest, _handlers.Setup(_number, _moduleManifest, _settings), _settings, _emit);

    public bool IsUsable => _child.IsAlive && _retired is null;

    public async Task<string?> RunAsync(AcquiredTask task, CancellationToken stop)
    {
        int? route = null;
        if (_handlers.Routes is { } routes) route = routes.Find(task.Type) ?? throw new NoHandlerException(task.Type);
        await EnsureChildAsync().ConfigureAwait(false);
        task.ProcessorName = "process";
        var child = _child;
        var outcome = await child.RunAsync(task, route, stop).ConfigureAwait(false);
        try { return Conclude(child, task, outcome, stop); }
        finally { CheckMemory(child); }
    }

    // Asked to run while its child is gone or retired (a worker that does not replace unusable processors, or an
    // idle child that died or froze): start a new child first rather than fail the task.
    private async Task EnsureChildAsync()
    {
        if (IsUsable) return;
        var why = _retired ?? await _child.Gone.ConfigureAwait(false);
        _log($"{_name}: starting a new child process ({why})");
        await _child.DisposeAsync().ConfigureAwait(false);
        _retired = null;
        try { _child = StartChild(); }
        catch (InvalidOperationException e) { throw new ProcessorFailedException(e.Message, inner: e); }
    }

    private string? Conclude(ChildProcess child, AcquiredTask task, ChildProcess.Outcome outcome, CancellationToken stop)
    {
        if (stop.IsCancellationRequested)
        {
            if (outcome.Signalled || !child.IsAlive)
            {
                _retired = "it was killed";
                var how = child.Gone.IsCompleted ? child.Gone.Result : "it ended after SIGTERM";
                throw new ProcessorKilledException($"The handler of '{task.Key}' did not obey the stop message: {how} ({outcome.StopElapsed.TotalSeconds:0.###} s after it).");
            }
            throw new OperationCanceledException($"The handler of '{task.Key}' was stopped.", stop);
        }
        if (outcome.End is not { } end)
        {
            // The child is gone under the task: crashed, killed from outside, or frozen (the watchdog killed it).
            throw new ProcessorFailedException(child.Gone.Result, killed: child.WasFrozen);
        }
        if (end.ContainsKey("output")) task.Output.Replace((string?)end["output"]);
        if ((bool?)end["ok"] == true) return (string?)end["result"];
        var message = (string?)end["message"] ?? "the handler failed";
        throw (string?)end["kind"] switch
        {
            "nohandler" => new NoHandlerException(task.Type),
            "cancelled" => new OperationCanceledException(message, task.CancellationToken),
            _ => new RuntimeException(message),
        };
    }

    // The memory ceiling (-MaxProcessorMemory): a child that grew past it after a task is replaced.
    private void CheckMemory(ChildProcess child)
    {
        if (_settings.MaxMemoryBytes is not { } max || !child.IsAlive) return;
        var used = child.WorkingSet();
        if (used <= max) return;
        _retired = $"child process {child.Pid} uses {Mb(used)} MB, more than the memory ceiling of {Mb(max)} MB";
        _log($"{_name}: {_retired}: recycled");
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("0.#", System.Globalization.CultureInfo.InvariantCulture);

    public ValueTask DisposeAsync() => _child.DisposeAsync();
}
