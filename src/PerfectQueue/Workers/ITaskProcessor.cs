namespace PerfectQueue.Workers;

/// <summary>
/// Runs one task at a time for a worker: a runspace, a compiled handler, or (later) a child process. The
/// worker owns the task's lifecycle; a processor only runs the handler.
/// </summary>
public interface ITaskProcessor : IAsyncDisposable
{
    /// <summary>
    /// Runs the handler for <paramref name="task"/>. Return normally when it returned; throw its error when
    /// it failed. <paramref name="stop"/> fires when the handler must stop now (a cancel's grace period ran
    /// out, or an immediate shutdown): stop it and throw <see cref="OperationCanceledException"/>. The task's
    /// own <see cref="AcquiredTask.CancellationToken"/> is the cooperative signal that comes first.
    /// Returns a short result (for example the handler's last output line), kept as the finish message.
    /// </summary>
    Task<string?> RunAsync(AcquiredTask task, CancellationToken stop);
}

/// <summary>No handler is routed for a task's type: the task is retried after retry_wait (at least Worker.UnroutedRetryFloor, 60 s), never lost.</summary>
public sealed class NoHandlerException(string type) : Exception($"No handler is routed for task type '{type}'. Add a route for it; the task is retried after retry_wait (at least 60 s).")
{
    public string TaskType { get; } = type;
}
