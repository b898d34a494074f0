namespace PerfectQueue.Workers;

/// <summary>
/// Runs one task at a time for a worker: a runspace, a compiled handler, or a child process. The worker owns
/// the task's lifecycle (its lease, its conclusion, timeouts); a processor only runs the handler.
/// </summary>
public interface ITaskProcessor : IAsyncDisposable
{
    /// <summary>
    /// Runs the handler for <paramref name="task"/>. Return normally when it returned; throw its error when
    /// it failed. <paramref name="stop"/> fires when the handler must stop now (a cancel's grace period ran
    /// out, a timeout, an immediate shutdown, a lost lease): stop it and throw <see cref="OperationCanceledException"/>
    /// (<see cref="ProcessorKilledException"/> when stopping it took a kill). The task's own
    /// <see cref="AcquiredTask.CancellationToken"/> is the cooperative signal that comes first.
    /// Returns a short result (for example the handler's last output line), kept as the finish message.
    /// A processor that itself broke under the task (a child process that crashed or froze) throws
    /// <see cref="ProcessorFailedException"/>.
    /// </summary>
    Task<string?> RunAsync(AcquiredTask task, CancellationToken stop);

    /// <summary>
    /// False once this processor cannot run another task (its child died or was killed, it was recycled): the
    /// worker disposes it and makes a new one for its slot. Read after <see cref="RunAsync"/> ended.
    /// </summary>
    bool IsUsable => true;
}

/// <summary>Whether handlers run in runspaces of the worker's process, or each processor in a child process of its own.</summary>
public enum ProcessorType
{
    /// <summary>A runspace per processor, in the worker's process (the default: fastest).</summary>
    Thread,
    /// <summary>A child pwsh per processor: a hung, crashed or leaking handler cannot take the worker down.</summary>
    Process,
}

/// <summary>No handler is routed for a task's type: the task is retried after retry_wait (at least Worker.UnroutedRetryFloor, 60 s), never lost.</summary>
public sealed class NoHandlerException(string type) : Exception($"No handler is routed for task type '{type}'. Add a route for it; the task is retried after retry_wait (at least 60 s).")
{
    public string TaskType { get; } = type;
}

/// <summary>
/// The processor itself broke while it ran a task (its child process crashed, was killed from outside, or froze):
/// the task is retried with this message (the attempt counts), and the processor is replaced.
/// </summary>
public sealed class ProcessorFailedException(string message, bool killed = false, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>True when the worker killed it (a frozen child), false when it died by itself.</summary>
    public bool Killed { get; } = killed;
}

/// <summary>A stop that the handler did not obey: its child process was killed, or its runspace abandoned.</summary>
public sealed class ProcessorKilledException(string message, Exception? inner = null) : OperationCanceledException(message, inner);
