namespace PerfectQueue.Workers;

/// <summary>How a worker runs. Defaults come from the queue's configuration (the original's keys).</summary>
public sealed class WorkerOptions
{
    /// <summary>How many tasks run at once.</summary>
    public int Processors { get; set; } = 1;
    /// <summary>How long an idle worker waits between polls (a PostgreSQL submit wakes it early).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>The lease each task is acquired with and extended by.</summary>
    public TimeSpan AliveTime { get; set; } = TimeSpan.FromSeconds(300);
    /// <summary>How often the worker extends every lease it holds (one round trip for all).</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>
    /// After a graceful stop (or a cancel request), how long a handler may still run before it is stopped.
    /// Null: wait for it (the original's child_graceful_kill_limit default).
    /// </summary>
    public TimeSpan? GracefulKillLimit { get; set; }
    /// <summary>Stop after acquiring this many tasks (null: no limit).</summary>
    public int? MaxTasks { get; set; }
    /// <summary>Stop when nothing is due and nothing runs.</summary>
    public bool UntilEmpty { get; set; }

    public WorkerOptions Clone() => (WorkerOptions)MemberwiseClone();

    public static WorkerOptions From(QueueConfig config) => new()
    {
        Processors = config.Processors,
        PollInterval = config.PollInterval,
        AliveTime = config.AliveTime,
        HeartbeatInterval = config.TaskHeartbeatInterval,
        GracefulKillLimit = config.ChildGracefulKillLimit,
    };

    public void Validate()
    {
        if (Processors < 1) throw new ArgumentException($"Processors must be at least 1 (got {Processors}).", nameof(Processors));
        if (PollInterval <= TimeSpan.Zero) throw new ArgumentException("PollInterval must be more than zero.", nameof(PollInterval));
        if (AliveTime <= TimeSpan.Zero) throw new ArgumentException("AliveTime must be more than zero.", nameof(AliveTime));
        if (HeartbeatInterval <= TimeSpan.Zero || HeartbeatInterval >= AliveTime)
            throw new ArgumentException($"HeartbeatInterval must be more than zero and less than AliveTime ({AliveTime}), or leases expire between heartbeats.", nameof(HeartbeatInterval));
        if (MaxTasks is < 1) throw new ArgumentException("MaxTasks must be at least 1.", nameof(MaxTasks));
        if (GracefulKillLimit is { } g && g < TimeSpan.Zero) throw new ArgumentException("GracefulKillLimit must not be negative.", nameof(GracefulKillLimit));
    }
}

/// <summary>What a worker did, written when it exits (for scheduled automation).</summary>
public sealed class WorkerSummary
{
    public int Processed { get; init; }
    public int Succeeded { get; init; }
    public int Retried { get; init; }
    public int Failed { get; init; }
    public int Cancelled { get; init; }
    /// <summary>Given back unfinished at shutdown (not counted as attempts).</summary>
    public int Released { get; init; }
    /// <summary>Lost to another worker or force-finished while running; nothing was written to them.</summary>
    public int Lost { get; init; }
    public TimeSpan Duration { get; init; }
    /// <summary>How many times the worker restarted (SIGUSR1, SIGHUP) and loaded its configuration and handlers again.</summary>
    public int Restarts { get; init; }
    /// <summary>Why the worker stopped: "empty", "max tasks", "graceful stop", "stop requested" (Stop-PQWorker), "immediate stop".</summary>
    public string StoppedBecause { get; init; } = "";
    /// <summary>The worker's session id while it ran (Get-PQWorker's Id).</summary>
    public string? SessionId { get; init; }
}

/// <summary>One line of what a worker does, for its log.</summary>
public sealed record WorkerEvent(DateTimeOffset At, string Message);
