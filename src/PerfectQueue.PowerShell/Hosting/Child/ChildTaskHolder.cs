using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace PerfectQueue.PowerShell.Hosting.Child;

/// <summary>
/// In a child process: the task's writes, sent to the parent as requests and applied there with its real, fenced
/// task. Each waits for the parent's reply; an error comes back as the same exception type.
/// </summary>
internal sealed class ChildTaskHolder(ChildChannel channel, ConcurrentDictionary<long, TaskCompletionSource<JsonObject>> pending) : IRemoteTaskHolder
{
    private static long _lastId;

    /// <summary>The output the child's handler wrote so far (its task's <see cref="AcquiredTask.Output"/>), sent with each write that ends the attempt.</summary>
    public AttemptOutput? Output { get; set; }

    public Task FinishAsync(TaskOutcome outcome, string? message, CancellationToken ct) =>
        AskAsync(new JsonObject { ["op"] = "finish", ["outcome"] = outcome.ToString(), ["message"] = message, ["output"] = Output?.Text }, ct);

    public async Task<bool> RetryAsync(string? message, TimeSpan? delay, CancellationToken ct)
    {
        var reply = await AskAsync(new JsonObject { ["op"] = "retry", ["message"] = message, ["delayMs"] = delay is { } d ? d.TotalMilliseconds : null, ["output"] = Output?.Text }, ct).ConfigureAwait(false);
        return (bool?)reply["result"] ?? true;
    }

    public Task ReleaseAsync(CancellationToken ct) => AskAsync(new JsonObject { ["op"] = "release", ["output"] = Output?.Text }, ct);

    public Task UpdateDataAsync(string json, CancellationToken ct) => AskAsync(new JsonObject { ["op"] = "updateData", ["data"] = json }, ct);

    public async Task<HeartbeatResult> HeartbeatAsync(TimeSpan? aliveTime, CancellationToken ct)
    {
        var reply = await AskAsync(new JsonObject { ["op"] = "heartbeat", ["aliveTimeMs"] = aliveTime is { } a ? a.TotalMilliseconds : null }, ct).ConfigureAwait(false);
        return Enum.Parse<HeartbeatResult>((string?)reply["result"] ?? nameof(HeartbeatResult.Alive));
    }

    private async Task<JsonObject> AskAsync(JsonObject request, CancellationToken ct)
    {
        var id = Interlocked.Increment(ref _lastId);
        request["t"] = ChildMessage.Request;
        request["id"] = id;
        var reply = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[id] = reply;
        try
        {
            await channel.SendAsync(request, ct).ConfigureAwait(false);
            var answer = await reply.Task.WaitAsync(ct).ConfigureAwait(false);
            if ((bool?)answer["ok"] == true) return answer;
            throw ChildErrors.FromJson(answer["error"] as JsonObject);
        }
        finally { pending.TryRemove(id, out _); }
    }

}
