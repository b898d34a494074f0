using PerfectQueue.Storage;

namespace PerfectQueue;

/// <summary>What a worker session is doing, derived from its row and the database clock (like a task's status).</summary>
public enum WorkerState
{
    /// <summary>The worker beat within its alive time and nobody asked it to stop.</summary>
    Alive,
    /// <summary>Alive, and a stop was requested (Stop-PQWorker): it acquires nothing more and ends when its running tasks end.</summary>
    Stopping,
    /// <summary>
    /// No beat for the worker's alive time: it was killed, lost its database, or hangs. Its task leases have run out
    /// too, so other workers may run its tasks. Cleanup deletes the row once it has been dead for retention_time.
    /// </summary>
    Dead,
}

/// <summary>
/// One running (or dead) worker, as its session row records it: where it runs, since when, how many
/// processors it has and how many tasks run now. Times are the database clock's.
/// </summary>
public sealed class WorkerSessionInfo
{
    /// <summary>The session id: 12 lowercase hex digits, chosen by the worker when it starts.</summary>
    public required string Id { get; init; }
    /// <summary>The machine the worker runs on.</summary>
    public required string Host { get; init; }
    /// <summary>The worker's process id on <see cref="Host"/>.</summary>
    public int Pid { get; init; }
    public int Processors { get; init; }
    /// <summary>Tasks running at the last beat.</summary>
    public int Running { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset LastBeatAt { get; init; }
    /// <summary>The last beat plus the worker's alive time: without another beat by then, the session is dead.</summary>
    public DateTimeOffset AliveUntil { get; init; }
    public bool StopRequested { get; init; }
    /// <summary>How the worker runs handlers: 'thread' (runspaces) or 'process' (child processes). Sessions of workers older than schema version 3 read as 'thread'.</summary>
    public string ProcessorType { get; init; } = "thread";
    /// <summary>The database clock when the row was read; <see cref="State"/> is as of then.</summary>
    public DateTimeOffset ReadAt { get; init; }

    public WorkerState State => AliveUntil <= ReadAt ? WorkerState.Dead : StopRequested ? WorkerState.Stopping : WorkerState.Alive;
    public bool IsAlive => State != WorkerState.Dead;

    internal static WorkerSessionInfo From(WorkerSessionRow row) => new()
    {
        Id = row.Id,
        Host = row.Host,
        Pid = row.Pid,
        Processors = row.Processors,
        Running = row.Running,
        StartedAt = TaskStates.Time(row.StartedAt),
        LastBeatAt = TaskStates.Time(row.LastBeatAt),
        AliveUntil = TaskStates.Time(row.AliveUntil),
        StopRequested = row.StopRequested,
        ProcessorType = string.IsNullOrWhiteSpace(row.ProcessorType) ? "thread" : row.ProcessorType, // older workers ran threads only
        ReadAt = TaskStates.Time(row.Now),
    };

    public override string ToString() => $"{Id} ({Host} pid {Pid}, {State})";
}
