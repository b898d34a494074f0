using System.Collections.Concurrent;
using System.ComponentModel;
using System.IO.Pipes;
using System.Management.Automation.Runspaces;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using PerfectQueue.Application;
using PerfectQueue.PowerShell.Hosting;
using PerfectQueue.PowerShell.Hosting.Child;
using PerfectQueue.Storage;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Internal;

/// <summary>
/// Not an API: the entry point of a process-mode worker's child process, which the worker starts as
/// <c>pwsh -NoProfile -NonInteractive -Command "Import-Module $env:PERFECTQUEUE_CHILD_MODULE; [PerfectQueue.PowerShell.Internal.ChildHost]::Run($env:PERFECTQUEUE_CHILD_PIPE)"</c>.
/// It connects to the worker's pipe, is given its handlers there, and runs one task at a time (docs/worker.md,
/// "Process processors"). It may change in any release.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class ChildHost
{
    /// <summary>Runs the child until the worker says exit, closes the pipe, or SIGTERM ends it; then exits the process.</summary>
    public static void Run(string pipeName)
    {
        int code;
        try
        {
            var pipe = new NamedPipeClientStream(".", pipeName, PipeDirection.InOut, PipeOptions.Asynchronous | PipeOptions.CurrentUserOnly);
            pipe.Connect(TimeSpan.FromSeconds(30));
            using var channel = new ChildChannel(pipe);
            code = new ChildLoop(channel).RunAsync().GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"PerfectQueue child process failed: {e.Message}");
            code = 2;
        }
        // Exit now, whatever a handler left running (a thread it started, a stopped pipeline that never ended).
        Environment.Exit(code);
    }
}

/// <summary>The child's side of the protocol: setup, then one task at a time; its heartbeats come from a thread of their own.</summary>
internal sealed class ChildLoop(ChildChannel channel)
{
    private readonly ConcurrentDictionary<long, TaskCompletionSource<JsonObject>> _pending = new();
    private readonly object _gate = new();
    private ITaskProcessor? _processor;
    private Running? _running;
    private volatile bool _terminating;

    private sealed record Running(long Seq, AcquiredTask Task, CancellationTokenSource Stop);

    public async Task<int> RunAsync()
    {
        var setup = await channel.ReceiveAsync().ConfigureAwait(false);
        if (setup is null) return 0;
        if (ChildMessage.KindOf(setup) != ChildMessage.Setup) throw new InvalidDataException($"expected setup, got '{ChildMessage.KindOf(setup)}'");
        StartBeats(TimeSpan.FromMilliseconds((double?)setup["beatMs"] ?? 2000));
        using var signals = CatchSignals();
        try { _processor = Build(setup); }
        catch (Exception e)
        {
            await channel.SendAsync(new JsonObject { ["t"] = ChildMessage.SetupFailed, ["message"] = Message(e) }).ConfigureAwait(false);
            return 1;
        }
        await channel.SendAsync(new JsonObject { ["t"] = ChildMessage.Ready, ["pid"] = Environment.ProcessId }).ConfigureAwait(false);

        while (await channel.ReceiveAsync().ConfigureAwait(false) is { } message)
        {
            switch (ChildMessage.KindOf(message))
            {
                case ChildMessage.Run: Start(message); break;
                case ChildMessage.Cancel:
                    if (_running?.Task is { } cancelled)
                    {
                        if (Enum.TryParse<PreemptionReason>((string?)message["lost"], out var reason)) cancelled.OnLost(TaskStates.Preempted(cancelled.Key, reason, "continue"));
                        else cancelled.OnCancelRequested();
                    }
                    break;
                case ChildMessage.StopRequested: _running?.Task.OnStopRequested(); break;
                case ChildMessage.Stop: StopRunning(); break;
                case ChildMessage.Reply:
                    if (_pending.TryRemove((long?)message["id"] ?? 0, out var waiting)) waiting.TrySetResult(message);
                    break;
                case ChildMessage.Exit: return 0;
            }
        }
        StopRunning(); // the worker is gone: nothing can be written for this task any more
        return 0;
    }

    private ITaskProcessor Build(JsonObject setup)
    {
        if ((string?)setup["assembly"] is { } assembly)
            return new CompiledProcessor(HandlerAssembly.LoadDispatch(assembly, (string?)setup["dispatch"])) { WaitsForHandler = true };
        var state = InitialSessionState.CreateDefault2();
        state.ImportPSModule((string)setup["manifest"]!);
        var modules = Strings(setup["modules"]);
        if (modules.Length > 0) state.ImportPSModule(modules);
        return new RunspaceProcessor((int?)setup["number"] ?? 1, state, Strings(setup["handlers"]), (string?)setup["init"], null,
            e => Send(ChildMessage.LogOf(e)));
    }

    private void Start(JsonObject run)
    {
        var row = new TaskRow
        {
            Key = (string)run["key"]!,
            Type = (string)run["type"]!,
            User = (string?)run["user"],
            MaxRunning = (int?)run["maxRunning"],
            CreatedAt = (long?)run["createdAt"] ?? 0,
            Attempts = (int?)run["attempt"] ?? 1,
            Message = (string?)run["lastMessage"],
            Data = (string?)run["data"] is { } data ? Convert.FromBase64String(data) : null,
        };
        var holder = new ChildTaskHolder(channel, _pending);
        var task = new AcquiredTask(row, DateTimeOffset.FromUnixTimeMilliseconds((long?)run["leaseExpiresAt"] ?? 0), holder)
        {
            Deadline = (long?)run["deadline"] is { } deadline ? DateTimeOffset.FromUnixTimeMilliseconds(deadline) : null,
        };
        holder.Output = task.Output;
        if (Enum.TryParse<PreemptionReason>((string?)run["lost"], out var reason)) task.OnLost(TaskStates.Preempted(task.Key, reason, "continue"));
        else if ((bool?)run["cancel"] == true) task.OnCancelRequested();
        if ((bool?)run["stopRequested"] == true) task.OnStopRequested();
        var running = new Running((long?)run["seq"] ?? 0, task, new CancellationTokenSource());
        lock (_gate) _running = running;
        var route = (int?)run["route"];
        _ = Task.Run(() => RunTaskAsync(running, route));
    }

    private async Task RunTaskAsync(Running running, int? route)
    {
        var end = new JsonObject { ["t"] = ChildMessage.End, ["seq"] = running.Seq };
        try
        {
            var result = _processor is RunspaceProcessor runspace && route is { } index
                ? await runspace.RunRouteAsync(running.Task, index, running.Stop.Token).ConfigureAwait(false)
                : await _processor!.RunAsync(running.Task, running.Stop.Token).ConfigureAwait(false);
            end["ok"] = true;
            end["result"] = result;
        }
        catch (Exception e)
        {
            end["ok"] = false;
            end["kind"] = e switch
            {
                NoHandlerException => "nohandler",
                OperationCanceledException when running.Stop.IsCancellationRequested => "stopped",
                OperationCanceledException when running.Task.IsCancellationRequested => "cancelled",
                _ => "failed",
            };
            end["message"] = Message(e);
        }
        end["output"] = running.Task.Output.Text; // the attempt's history output travels back to the parent, which writes it
        lock (_gate) if (_running == running) _running = null;
        try { Send(end); }
        catch (IOException) { /* the worker is gone */ }
        if (_terminating) Environment.Exit(143); // SIGTERM came while it ran: now that it ended, go
    }

    private void StopRunning()
    {
        Running? running;
        lock (_gate) running = _running;
        try { running?.Stop.Cancel(); }
        catch (AggregateException) { /* a callback threw; the token is cancelled anyway */ }
    }

    // SIGTERM (the worker's escalation, or anyone's): stop the handler and exit as soon as it ended; at once when idle.
    // SIGINT and SIGQUIT (a Ctrl+C in the worker's terminal reaches its whole process group): the worker decides.
    private IDisposable CatchSignals()
    {
        if (OperatingSystem.IsWindows()) return new CompositeDisposable([]);
        return new CompositeDisposable(
        [
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                _terminating = true;
                bool idle;
                lock (_gate) idle = _running is null;
                if (idle) Environment.Exit(143);
                try { Send(new JsonObject { ["t"] = ChildMessage.Log, ["line"] = $"child process {Environment.ProcessId}: SIGTERM received: stopping the handler, exiting when it ends" }); }
                catch (Exception) { /* the worker is gone */ }
                StopRunning();
            }),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, context => context.Cancel = true),
            PosixSignalRegistration.Create(PosixSignal.SIGQUIT, context => context.Cancel = true),
        ]);
    }

    private sealed class CompositeDisposable(IDisposable[] parts) : IDisposable
    {
        public void Dispose() { foreach (var p in parts) p.Dispose(); }
    }

    // From a thread of its own: a handler blocked in a .NET or native call (its runspace's thread) still beats;
    // only a stopped or hung process falls silent.
    private void StartBeats(TimeSpan interval)
    {
        var thread = new Thread(() =>
        {
            var beat = ChildMessage.Of(ChildMessage.Beat);
            while (true)
            {
                Thread.Sleep(interval);
                try { Send(beat); }
                catch (Exception) { return; } // the channel is closed: the worker is gone
            }
        }) { IsBackground = true, Name = "PerfectQueue child heartbeat" };
        thread.Start();
    }

    private void Send(JsonObject message) => channel.Send(message);

    private static string[] Strings(JsonNode? node) => node is JsonArray a ? [.. a.Select(n => (string?)n ?? "")] : [];

    private static string Message(Exception e) => e is AggregateException { InnerException: { } inner } ? inner.Message : e.Message;
}
