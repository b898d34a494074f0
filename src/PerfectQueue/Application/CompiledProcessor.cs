using PerfectQueue.Workers;

namespace PerfectQueue.Application;

/// <summary>Runs compiled handlers routed by a <see cref="Dispatch"/>: a new handler instance per task.</summary>
public sealed class CompiledProcessor(Dispatch dispatch) : ITaskProcessor
{
    /// <summary>
    /// In a child process: after a stop, wait for the handler to really end instead of abandoning it, so the
    /// child reports its end only once nothing of the task runs any more (the parent kills a child that takes too long).
    /// </summary>
    internal bool WaitsForHandler { get; init; }

    public async Task<string?> RunAsync(AcquiredTask task, CancellationToken stop)
    {
        var handler = dispatch.CreateHandler(task.Type) ?? throw new NoHandlerException(task.Type);
        handler.CurrentTask = task;
        task.ProcessorName ??= "compiled";
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(task.CancellationToken, stop);
        // Task.Run: a synchronous Run() must not hold up the stop. A handler that ignores its token cannot be
        // killed in-process; after a stop it is abandoned and its task concluded without it.
        var running = Task.Run(() => handler.RunAsync(cancel.Token), CancellationToken.None);
        try
        {
            if (WaitsForHandler) await running.ConfigureAwait(false);
            else await running.WaitAsync(stop).ConfigureAwait(false);
        }
        catch (Exception e) when (!stop.IsCancellationRequested)
        {
            // A compiled handler has no streams: its history shows its exception (type, message, where it was thrown).
            task.Output.Append("error", e.ToString());
            throw;
        }
        if (handler.Result is { } result) task.Output.Append("output", result);
        return handler.Result;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
