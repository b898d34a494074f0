using System.Diagnostics;
using System.Globalization;
using System.IO.Pipes;
using System.Text.Json.Nodes;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting.Child;

/// <summary>
/// One running child pwsh and the parent's end of its pipe: starting it (bounded wait for ready), reading its
/// messages, applying its task writes with the real fenced task, watching its heartbeats (a silent child is
/// killed as frozen), and a run's stop escalation (stop message, SIGTERM, SIGTERM, SIGKILL).
/// </summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    /// <summary>The longest a child may take from start to ready (pwsh start, module import, initialization script).</summary>
    public static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(90);

    /// <summary>The least a child is given to exit when asked, before it is killed (a busy machine is slow to end a process).</summary>
    private static readonly TimeSpan ExitLimit = TimeSpan.FromSeconds(5);

    private readonly string _name; // "processor 2", for the log and errors
    private readonly ChildProcessSettings _settings;
    private readonly Action<string> _log;
    private readonly Action<WorkerEvent> _emit; // what the child's processor said, as it said it
    private readonly Process _process;
    private readonly ChildChannel _channel;
    private readonly TaskCompletionSource<string> _gone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly CancellationTokenSource _closing = new();
    private long _lastHeardMs;
    private long _seq;
    private volatile Run? _run;
    private volatile string? _frozen; // set when the watchdog killed it as frozen
    private volatile bool _exiting;   // we asked it to exit: its end is no news

    private sealed record Run(long Seq, AcquiredTask Task, TaskCompletionSource<JsonObject> Ended);

    public int Pid { get; }
    /// <summary>Completes with why the child is gone ("died: exited with code 1", "sent no heartbeat ...").</summary>
    public Task<string> Gone => _gone.Task;
    public bool IsAlive => !_gone.Task.IsCompleted;
    /// <summary>True when the watchdog killed it for falling silent.</summary>
    public bool WasFrozen => _frozen is not null;

    private ChildProcess(string name, ChildProcessSettings settings, Action<WorkerEvent> log, Process process, ChildChannel channel)
    {
        _name = name;
        _settings = settings;
        _emit = log;
        _log = line => log(new WorkerEvent(DateTimeOffset.Now, line));
        _process = process;
        _channel = channel;
        Pid = process.Id;
    }

    /// <summary>Starts a child and gives it <paramref name="setup"/>; returns once it is ready.</summary>
    /// <exception cref="InvalidOperationException">it could not start: names the processor, the pid and the child's own error.</exception>
    public static ChildProcess Start(string name, string moduleManifest, JsonObject setup, ChildProcessSettings settings, Action<WorkerEvent> log)
    {
        var pipeName = $"pq-{Environment.ProcessId}-{Guid.NewGuid():N}";
        var server = new NamedPipeServerStream(pipeName, PipeDirection.InOut, 1, PipeTransmissionMode.Byte,
            PipeOptions.Asynchronous | PipeOptions.CurrentUserOnly);
        Process process;
        try { process = ChildLauncher.Start(moduleManifest, pipeName); }
        catch
        {
            server.Dispose();
            throw;
        }
        var child = new ChildProcess(name, settings, log, process, new ChildChannel(server));
        child._log($"{name}: child process {child.Pid} started");
        child.ForwardOutput();
        try
        {
            child.HandshakeAsync(server, setup).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            child.KillNow();
            var why = e is TimeoutException ? $"not ready after {StartLimit.TotalSeconds:0} s" : e.Message;
            child._log($"{name}: child process {child.Pid} could not start: {why}");
            child._channel.Dispose();
            throw new InvalidOperationException($"{name}: child process {child.Pid} could not start: {why}", e);
        }
        child.Watch();
        return child;
    }

    private async Task HandshakeAsync(NamedPipeServerStream server, JsonObject setup)
    {
        using var limit = new CancellationTokenSource(StartLimit);
        var exited = _process.WaitForExitAsync(limit.Token);
        var connected = server.WaitForConnectionAsync(limit.Token);
        if (await Task.WhenAny(connected, exited).ConfigureAwait(false) != connected) throw await EarlyExitAsync(limit.IsCancellationRequested).ConfigureAwait(false);
        await connected.ConfigureAwait(false);
        await _channel.SendAsync(setup, limit.Token).ConfigureAwait(false);
        while (true)
        {
            var receiving = _channel.ReceiveAsync(limit.Token);
            if (await Task.WhenAny(receiving, exited).ConfigureAwait(false) != receiving && !receiving.IsCompleted) throw await EarlyExitAsync(limit.IsCancellationRequested).ConfigureAwait(false);
            var message = await receiving.ConfigureAwait(false) ?? throw await EarlyExitAsync(false).ConfigureAwait(false);
            switch (ChildMessage.KindOf(message))
            {
                case ChildMessage.Ready: return;
                case ChildMessage.SetupFailed: throw new InvalidOperationException((string?)message["message"] ?? "its setup failed");
                case ChildMessage.Log: _emit(ChildMessage.EventOf(message)); break;
            }
        }
    }

    private async Task<Exception> EarlyExitAsync(bool timedOut)
    {
        if (timedOut) return new TimeoutException();
        await WaitExitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        var stderr = _lastStderr is { } line ? $" (its last error line: {line})" : "";
        return new InvalidOperationException($"it {(_process.HasExited ? ChildSignals.DescribeExit(_process.ExitCode) : "closed its pipe")} before it was ready{stderr}");
    }

    private volatile string? _lastStderr;

    // Anything the child writes outside the protocol (a handler's [Console]::WriteLine, a native program's output):
    // the worker log, a line each, tagged with the pid and the task.
    private void ForwardOutput()
    {
        _process.OutputDataReceived += (_, e) => { if (e.Data is { } line) _log($"child {Pid} {Tag()}: {line}"); };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not { } line) return;
            if (line.Length > 0) _lastStderr = line;
            _log($"child {Pid} {Tag()}: stderr: {line}");
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _process.StandardInput.Close(); // it reads nothing from stdin: a handler that does sees end of input, not a hang
    }

    private string Tag() => _run?.Task.Key is { } key ? key : "(idle)";

    private long NowMs => _clock.ElapsedMilliseconds;

    private void Watch()
    {
        Interlocked.Exchange(ref _lastHeardMs, NowMs);
        _ = Task.Run(ReadLoopAsync);
        _ = Task.Run(WatchdogAsync);
        _ = Task.Run(async () =>
        {
            try { await _process.WaitForExitAsync(_closing.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            Ended(null);
        });
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (await _channel.ReceiveAsync().ConfigureAwait(false) is { } message)
            {
                Interlocked.Exchange(ref _lastHeardMs, NowMs);
                switch (ChildMessage.KindOf(message))
                {
                    case ChildMessage.Log: _emit(ChildMessage.EventOf(message)); break;
                    case ChildMessage.Request: _ = Task.Run(() => ApplyAsync(message)); break;
                    case ChildMessage.End:
                        if (_run is { } run && (long?)message["seq"] == run.Seq) run.Ended.TrySetResult(message);
                        break;
                }
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ObjectDisposedException)
        {
            if (!_gone.Task.IsCompleted && !_exiting) _log($"{_name}: child process {Pid}: its pipe failed: {e.Message}");
        }
        Ended(null);
    }

    // No message (beat, log, request, end) for HeartbeatLimit: the whole process stopped (SIGSTOP, a hang below .NET).
    private async Task WatchdogAsync()
    {
        var step = TimeSpan.FromMilliseconds(Math.Clamp(_settings.HeartbeatInterval.TotalMilliseconds / 2, 50, 1000));
        while (!_gone.Task.IsCompleted)
        {
            try { await Task.Delay(step, _closing.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            var silentMs = NowMs - Interlocked.Read(ref _lastHeardMs);
            if (silentMs <= _settings.HeartbeatLimit.TotalMilliseconds) continue;
            var why = $"child process {Pid} sent no heartbeat for {Seconds(silentMs)} s (frozen): killed";
            _frozen = why;
            _log($"{_name}: {why}{(_run?.Task.Key is { } key ? $" (it ran {key})" : " (it was idle)")}");
            KillNow();
            Ended(why);
            return;
        }
    }

    private void Ended(string? why)
    {
        if (_gone.Task.IsCompleted) return;
        if (why is null)
        {
            WaitExitAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
            why = _process.HasExited
                ? $"child process {Pid} died: {ChildSignals.DescribeExit(_process.ExitCode)}"
                : $"child process {Pid} closed its pipe";
        }
        if (_gone.TrySetResult(why) && !_exiting && _frozen is null) _log($"{_name}: {why}");
    }

    private async Task WaitExitAsync(TimeSpan limit)
    {
        using var wait = new CancellationTokenSource(limit);
        try { await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { /* still running */ }
    }

    // ---- one task ----

    /// <summary>What a run came to: the child's end message, or null when the child is gone (see <see cref="Gone"/>).</summary>
    public sealed record Outcome(JsonObject? End, bool Signalled, TimeSpan StopElapsed);

    /// <summary>Runs <paramref name="task"/> in the child (route: the parent's route index, null for compiled handlers).</summary>
    public async Task<Outcome> RunAsync(AcquiredTask task, int? route, CancellationToken stop)
    {
        var run = new Run(Interlocked.Increment(ref _seq), task, new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously));
        _run = run;
        try
        {
            var message = new JsonObject
            {
                ["t"] = ChildMessage.Run, ["seq"] = run.Seq, ["key"] = task.Key, ["type"] = task.Type, ["user"] = task.User,
                ["maxRunning"] = task.MaxRunning, ["createdAt"] = task.StoredCreatedAt, ["attempt"] = task.Attempt,
                ["lastMessage"] = task.LastMessage, ["route"] = route,
                ["data"] = task.StoredData is { } data ? Convert.ToBase64String(data) : null,
                ["leaseExpiresAt"] = task.LeaseExpiresAt.ToUnixTimeMilliseconds(),
                ["deadline"] = task.Deadline?.ToUnixTimeMilliseconds(),
                ["cancel"] = task.IsCancellationRequested, ["lost"] = task.LostBecause?.Reason.ToString(),
                ["stopRequested"] = task.IsStopRequested,
            };
            try { await _channel.SendAsync(message).ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or ObjectDisposedException) { Ended(null); }

            using var cancelled = task.CancellationToken.Register(() => Post(new JsonObject
            {
                ["t"] = ChildMessage.Cancel, ["lost"] = task.LostBecause?.Reason.ToString(),
            }));
            using var stopRequested = task.StopRequestedToken.Register(() => Post(ChildMessage.Of(ChildMessage.StopRequested)));
            var done = Task.WhenAny(run.Ended.Task, _gone.Task);
            Task<(bool Signalled, TimeSpan Elapsed)>? escalation = null;
            using (stop.Register(() => escalation = EscalateAsync(task, done)))
                await done.ConfigureAwait(false);
            var (signalled, elapsed) = escalation is null ? (false, TimeSpan.Zero) : await escalation.ConfigureAwait(false);
            return new Outcome(run.Ended.Task.IsCompleted ? run.Ended.Task.Result : null, signalled, elapsed);
        }
        finally { _run = null; }
    }

    // A hard stop: the stop message; no end after one kill interval: SIGTERM; again after two; SIGKILL at three
    // (WorkerOptions.StopLimit). Windows has no SIGTERM: the stop message, then Kill() at three intervals.
    private async Task<(bool, TimeSpan)> EscalateAsync(AcquiredTask task, Task done)
    {
        var clock = Stopwatch.StartNew();
        var step = _settings.KillInterval;
        _log($"{_name}: stop message sent to child process {Pid} for {task.Key}");
        Post(ChildMessage.Of(ChildMessage.Stop));
        var signalled = false;
        for (var i = 1; i <= 3; i++)
        {
            // A timer may fire a hair early: loop, so a step is never shorter than the interval.
            for (var left = step * i - clock.Elapsed; left > TimeSpan.Zero; left = step * i - clock.Elapsed)
            {
                if (await Task.WhenAny(done, Task.Delay(left + TimeSpan.FromMilliseconds(1))).ConfigureAwait(false) == done)
                    return (signalled, clock.Elapsed);
            }
            if (done.IsCompleted) return (signalled, clock.Elapsed);
            if (i < 3 && !OperatingSystem.IsWindows())
            {
                signalled = true;
                _log($"{_name}: SIGTERM sent to child process {Pid} for {task.Key}, {Seconds(clock.ElapsedMilliseconds)} s after the stop message (no end yet)");
                ChildSignals.Send(Pid, ChildSignals.SIGTERM);
            }
            else if (i == 3)
            {
                signalled = true;
                _log($"{_name}: SIGKILL sent to child process {Pid} for {task.Key}, {Seconds(clock.ElapsedMilliseconds)} s after the stop message (it did not stop): killed");
                KillNow();
            }
        }
        await done.ConfigureAwait(false);
        return (signalled, clock.Elapsed);
    }

    private void Post(JsonObject message) => _ = PostAsync(message);

    private async Task PostAsync(JsonObject message)
    {
        try { await _channel.SendAsync(message).ConfigureAwait(false); }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException) { /* the child is gone: its end says why */ }
    }

    // A write the child's handler asked for, applied with the real fenced task; the reply carries the result or the error.
    private async Task ApplyAsync(JsonObject request)
    {
        var reply = new JsonObject { ["t"] = ChildMessage.Reply, ["id"] = (long?)request["id"] ?? 0 };
        try
        {
            var task = _run?.Task ?? throw new InvalidOperationException("No task is running in this child process.");
            JsonNode? result = null;
            // The handler's writes carry what it wrote so far: this attempt's history row is written with them.
            if (request.ContainsKey("output")) task.Output.Replace((string?)request["output"]);
            switch ((string?)request["op"])
            {
                case "finish":
                    await task.FinishAsync(Enum.Parse<TaskOutcome>((string?)request["outcome"] ?? nameof(TaskOutcome.Succeeded)), (string?)request["message"]).ConfigureAwait(false);
                    break;
                case "retry":
                    result = await task.RetryAsync((string?)request["message"], (double?)request["delayMs"] is { } ms ? TimeSpan.FromMilliseconds(ms) : null).ConfigureAwait(false);
                    break;
                case "release":
                    await task.ReleaseAsync().ConfigureAwait(false);
                    break;
                case "updateData":
                    await task.UpdateDataAsync((string?)request["data"]).ConfigureAwait(false);
                    break;
                case "heartbeat":
                    result = (await task.HeartbeatAsync((double?)request["aliveTimeMs"] is { } a ? TimeSpan.FromMilliseconds(a) : null).ConfigureAwait(false)).ToString();
                    break;
                default: throw new InvalidOperationException($"Unknown request '{(string?)request["op"]}'.");
            }
            reply["ok"] = true;
            reply["result"] = result;
        }
        catch (Exception e)
        {
            reply["ok"] = false;
            reply["error"] = ChildErrors.ToJson(e);
        }
        await PostAsync(reply).ConfigureAwait(false);
    }

    // ---- the end ----

    /// <summary>The child's working set now (0 when it is gone).</summary>
    public long WorkingSet()
    {
        try
        {
            _process.Refresh();
            return _process.HasExited ? 0 : _process.WorkingSet64;
        }
        catch (InvalidOperationException) { return 0; }
    }

    /// <summary>SIGKILL for the child and whatever it started.</summary>
    public void KillNow()
    {
        try { _process.Kill(entireProcessTree: true); }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException) { /* already gone */ }
    }

    /// <summary>Asks the child to exit; kills it if it has not within a kill interval (at least 5 s).</summary>
    public async ValueTask DisposeAsync()
    {
        _exiting = true;
        if (IsAlive)
        {
            await PostAsync(ChildMessage.Of(ChildMessage.Exit)).ConfigureAwait(false);
            await WaitExitAsync(_settings.KillInterval > ExitLimit ? _settings.KillInterval : ExitLimit).ConfigureAwait(false);
            if (!_process.HasExited)
            {
                _log($"{_name}: child process {Pid} did not exit when asked: killed");
                KillNow();
                await WaitExitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            if (_process.HasExited) _log($"{_name}: child process {Pid} exited: {ChildSignals.DescribeExit(_process.ExitCode)}");
        }
        await _closing.CancelAsync().ConfigureAwait(false);
        _channel.Dispose();
        _process.Dispose();
    }

    private static string Seconds(long ms) => (ms / 1000.0).ToString("0.000", CultureInfo.InvariantCulture);
}
