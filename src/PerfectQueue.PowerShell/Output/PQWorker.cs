namespace PerfectQueue.PowerShell;

/// <summary>A worker session as Get-PQWorker shows it: local times, its state, and the queue it came from.</summary>
public sealed class PQWorker
{
    internal PQWorker(WorkerSessionInfo info, Queue queue)
    {
        Id = info.Id;
        Host = info.Host;
        Pid = info.Pid;
        State = info.State;
        Processors = info.Processors;
        Running = info.Running;
        StartedAt = info.StartedAt.LocalDateTime;
        LastBeatAt = info.LastBeatAt.LocalDateTime;
        AliveUntil = info.AliveUntil.LocalDateTime;
        StopRequested = info.StopRequested;
        ProcessorType = info.ProcessorType;
        IsAlive = info.IsAlive;
        LastBeatAge = info.LastBeatAge;
        RunningKeys = [.. info.RunningKeys];
        Queue = queue;
    }

    /// <summary>The session id, for Stop-PQWorker -Id.</summary>
    public string Id { get; }
    /// <summary>The machine the worker runs on.</summary>
    public string Host { get; }
    /// <summary>The worker's process id on its host.</summary>
    public int Pid { get; }
    /// <summary>Alive, Stopping (Stop-PQWorker, or it was told to stop and drains) or Dead (three missed beats, at least 10 s; docs/worker.md).</summary>
    public WorkerState State { get; }
    public int Processors { get; }
    /// <summary>Tasks running at the last beat.</summary>
    public int Running { get; }
    public DateTime StartedAt { get; }
    public DateTime LastBeatAt { get; }
    /// <summary>Without another beat by then, the session is dead (its last beat plus three beat intervals, at least 10 s, at most its alive time).</summary>
    public DateTime AliveUntil { get; }
    public bool StopRequested { get; }
    /// <summary>'thread' (runspaces) or 'process' (a child process per processor); sessions of older workers show 'thread'.</summary>
    public string ProcessorType { get; }
    public bool IsAlive { get; }
    /// <summary>How long ago its last beat was when Get-PQWorker read it (database clock): three beat intervals (at least 10 s) without one, and it is Dead.</summary>
    public TimeSpan LastBeatAge { get; }
    /// <summary>The keys of the tasks it runs now, oldest first (read just after the session: a task that started or ended in between may differ from <see cref="Running"/>).</summary>
    public string[] RunningKeys { get; }
    /// <summary>The queue the session came from, so piped commands act on the same queue.</summary>
    public Queue Queue { get; }
    /// <summary>The queue's paused scopes when listed (Suspend-PQQueue): this worker acquires no waiting task of them. Empty when nothing is paused.</summary>
    public string[] Paused { get; internal set; } = [];

    public override string ToString() => Id;
}
