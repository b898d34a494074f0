using PerfectQueue.Workers;

namespace PerfectQueue.Application;

/// <summary>Runs compiled handlers routed by a <see cref="Dispatch"/>: a new handler instance per task.</summary>
public sealed class CompiledProcessor(Dispatch dispatch) : ITaskProcessor
{
    public async Task<string?> RunAsync(AcquiredTask task, CancellationToken stop)
    {
        var handler = dispatch.CreateHandler(task.Type) ?? throw new NoHandlerException(task.Type);
        handler.CurrentTask = task;
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(task.CancellationToken, stop);
        // Task.Run: a synchronous Run() must not hold up the stop. A handler that ignores its token cannot be
        // killed in-process; after a stop it is abandoned and its task concluded without it.
        await Task.Run(() => handler.RunAsync(cancel.Token), CancellationToken.None).WaitAsync(stop).ConfigureAwait(false);
        return handler.Result;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
