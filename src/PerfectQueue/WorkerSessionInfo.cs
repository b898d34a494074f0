using PerfectQueue.Storage;

namespace PerfectQueue;

/// <summary>What a worker session is doing, derived from its row and the database clock (like a task's status).</summary>
public enum WorkerState
{
    /// <summary>The worker beats and nobody asked it to stop.</summary>
    Alive,
    /// <summary>
    /// Alive and stopping: Stop-PQWorker asked it to, or it was told to stop (Ctrl+C, SIGTERM, SIGINT, Stop-Job, an
    /// immediate stop, MaxTasks). It acquires nothing more and ends when its running tasks end.
    /// </summary>
    Stopping,
    /// <summary>
    /// It missed three beats (at least 10 s, at most its alive time; docs/worker.md): it was killed, lost its database,
    /// or hangs. Its tasks' leases run out alive_time after its last beat; then other workers may run them. Cleanup
    /// deletes the row once it has been dead for retention_time.
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
    /// <summary>
    /// The last beat plus three beat intervals (at least 10 s, at most the alive time): without another beat by then,
    /// the session is dead. Workers before this rule wrote the last beat plus their alive time.
    /// </summary>
    public DateTimeOffset AliveUntil { get; init; }
    public bool StopRequested { get; init; }
    /// <summary>How the worker runs handlers: 'thread' (runspaces) or 'process' (child processes). Sessions of workers older than schema version 3 read as 'thread'.</summary>
    public string ProcessorType { get; init; } = "thread";
    /// <summary>
    /// The keys of the tasks this session holds now (leased, lease not expired), oldest lease first: read right after
    /// the session rows, so a task that started or ended in between may be missing or still listed.
    /// </summary>
    public IReadOnlyList<string> RunningKeys { get; init; } = [];
    /// <summary>The database clock when the row was read; <see cref="State"/> is as of then.</summary>
    public DateTimeOffset ReadAt { get; init; }

    public WorkerState State => AliveUntil <= ReadAt ? WorkerState.Dead : StopRequested ? WorkerState.Stopping : WorkerState.Alive;
    public bool IsAlive => State != WorkerState.Dead;
    /// <summary>How long ago the last beat was, as of <see cref="ReadAt"/> (by the database clock).</summary>
    public TimeSpan LastBeatAge => ReadAt > LastBeatAt ? ReadAt - LastBeatAt : TimeSpan.Zero;

    internal static WorkerSessionInfo From(WorkerSessionRow row, IReadOnlyList<string>? runningKeys = null) => new()
    {
        RunningKeys = runningKeys ?? [],
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
