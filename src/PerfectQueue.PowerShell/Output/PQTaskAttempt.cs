namespace PerfectQueue.PowerShell;

/// <summary>One attempt of a task as Get-PQTaskHistory shows it: local times (docs/history.md).</summary>
public sealed class PQTaskAttempt
{
    internal PQTaskAttempt(TaskAttempt a, Queue queue)
    {
        Key = a.Key;
        Attempt = a.Attempt;
        StartedAt = a.StartedAt?.LocalDateTime;
        EndedAt = a.EndedAt?.LocalDateTime;
        Duration = a.Duration;
        Host = a.Host;
        WorkerSession = a.WorkerSession;
        Processor = a.Processor;
        Outcome = a.Outcome;
        Message = a.Message;
        Output = a.Output;
        Queue = queue;
    }

    public string Key { get; }
    /// <summary>The attempt number as the task had it (a released attempt is not counted: the next one has the same number).</summary>
    public int Attempt { get; }
    /// <summary>When it was acquired (database clock, local time); null for a Lost attempt.</summary>
    public DateTime? StartedAt { get; }
    /// <summary>When the write that ended it was applied; null for a Lost attempt.</summary>
    public DateTime? EndedAt { get; }
    public TimeSpan? Duration { get; }
    /// <summary>The machine that ran it.</summary>
    public string? Host { get; }
    /// <summary>The worker session that ran it (Get-PQWorker's Id); null for Receive-PQTask and .NET holders.</summary>
    public string? WorkerSession { get; }
    /// <summary>thread, process, compiled, or client (no worker).</summary>
    public string? Processor { get; }
    /// <summary>Succeeded, Failed, Cancelled, Retried, TimedOut, Released, or Lost (its worker never wrote: it died).</summary>
    public string Outcome { get; }
    public string? Message { get; }
    /// <summary>The handler's streams as lines tagged [output], [error], [warning], [information], [verbose]; at most 64 KB.</summary>
    public string? Output { get; }
    /// <summary>The queue it came from.</summary>
    public Queue Queue { get; }
}
