namespace PerfectQueue.Workers;

/// <summary>How a worker runs. Defaults come from the queue's configuration (the original's keys).</summary>
public sealed class WorkerOptions
{
    /// <summary>How many tasks run at once.</summary>
    public int Processors { get; set; } = 1;
    /// <summary>How many leased tasks the worker keeps ready beyond its free processors, for many short tasks (0: none; docs/worker.md, "Prefetch").</summary>
    public int Prefetch { get; init; }
    /// <summary>What a processor is: a runspace (thread) or a child process. Shown by Get-PQWorker.</summary>
    public ProcessorType ProcessorType { get; set; } = ProcessorType.Thread;
    /// <summary>How long an idle worker waits between polls (a PostgreSQL submit wakes it early).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>The lease each task is acquired with and extended by.</summary>
    public TimeSpan AliveTime { get; set; } = TimeSpan.FromSeconds(300);
    /// <summary>How often the worker extends every lease it holds (one round trip for all).</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>
    /// After a graceful stop, how long a handler may still run before it is stopped.
    /// Null: wait for it (the original's child_graceful_kill_limit default).
    /// </summary>
    public TimeSpan? GracefulKillLimit { get; set; }
    /// <summary>How long a handler may go on after its task's cancel was asked (or the task was lost) before it is stopped.</summary>
    public TimeSpan CancelGracePeriod { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// The longest a handler may run (an attempt); null: no limit. A route's and a task's own timeout may be
    /// tighter; the tightest wins. A handler that runs out is stopped and its task retried (Failed at max_attempts).
    /// </summary>
    public TimeSpan? Timeout { get; set; }
    /// <summary>Replace a processor (a new runspace or child) after it ran this many tasks: for leaky scripts. Null: never.</summary>
    public int? MaxTasksPerProcessor { get; set; }
    /// <summary>Stop after acquiring this many tasks (null: no limit).</summary>
    public int? MaxTasks { get; set; }
    /// <summary>Stop when nothing is due and nothing runs.</summary>
    public bool UntilEmpty { get; set; }
    /// <summary>How a stop is enforced, and how child processes are watched.</summary>
    public ChildProcessSettings Child { get; set; } = new();
    /// <summary>Fire the queue's due schedules while running (docs/schedules.md); Start-PQWorker -NoSchedules turns it off.</summary>
    public bool FireSchedules { get; set; } = true;

    public WorkerOptions Clone()
    {
        var copy = (WorkerOptions)MemberwiseClone();
        copy.Child = Child with { };
        return copy;
    }

    public static WorkerOptions From(QueueConfig config) => new()
    {
        Processors = config.Processors,
        Prefetch = config.Prefetch,
        ProcessorType = config.ProcessorType == "process" ? ProcessorType.Process : ProcessorType.Thread,
        PollInterval = config.PollInterval,
        AliveTime = config.AliveTime,
        HeartbeatInterval = config.TaskHeartbeatInterval,
        GracefulKillLimit = config.ChildGracefulKillLimit,
        FireSchedules = config.FireSchedules,
        Child = new ChildProcessSettings
        {
            KillInterval = config.ChildKillInterval,
            HeartbeatInterval = config.ChildHeartbeatInterval,
            HeartbeatLimit = config.ChildHeartbeatLimit,
        },
    };

    /// <summary>
    /// From a hard stop (cancel grace over, timeout, immediate stop, lost lease) to the handler being gone whatever
    /// it does: a thread-mode runspace is abandoned then; a child has been sent its stop message, SIGTERM at one and
    /// two kill intervals, and SIGKILL at three.
    /// </summary>
    public TimeSpan StopLimit => Child.KillInterval * 3;

    /// <summary>The largest <see cref="Prefetch"/>: what one acquire may lease.</summary>
    public const int MaxPrefetch = Queue.MaxBatch;

    public void Validate()
    {
        if (Processors < 1) throw new ArgumentException($"Processors must be at least 1 (got {Processors}).", nameof(Processors));
        if (Prefetch is < 0 or > MaxPrefetch)
            throw new ArgumentException($"Prefetch must be between 0 (none) and {MaxPrefetch} (got {Prefetch}): one acquire leases at most {Queue.MaxBatch} tasks.", nameof(Prefetch));
        if (PollInterval <= TimeSpan.Zero) throw new ArgumentException("PollInterval must be more than zero.", nameof(PollInterval));
        if (AliveTime <= TimeSpan.Zero) throw new ArgumentException("AliveTime must be more than zero.", nameof(AliveTime));
        if (HeartbeatInterval <= TimeSpan.Zero || HeartbeatInterval >= AliveTime)
            throw new ArgumentException($"HeartbeatInterval must be more than zero and less than AliveTime ({AliveTime}), or leases expire between heartbeats.", nameof(HeartbeatInterval));
        if (MaxTasks is < 1) throw new ArgumentException("MaxTasks must be at least 1.", nameof(MaxTasks));
        if (MaxTasksPerProcessor is < 1) throw new ArgumentException("MaxTasksPerProcessor must be at least 1.", nameof(MaxTasksPerProcessor));
        if (GracefulKillLimit is { } g && g < TimeSpan.Zero) throw new ArgumentException("GracefulKillLimit must not be negative.", nameof(GracefulKillLimit));
        if (CancelGracePeriod < TimeSpan.Zero) throw new ArgumentException("CancelGracePeriod must not be negative.", nameof(CancelGracePeriod));
        if (Timeout is { } t && t <= TimeSpan.Zero) throw new ArgumentException("Timeout must be more than zero.", nameof(Timeout));
        Child.Validate();
    }
}

/// <summary>The original's child_* settings, typed: how a stop is escalated and how a child process is watched.</summary>
public sealed record ChildProcessSettings
{
    /// <summary>child_kill_interval: the step of a hard stop's escalation (stop message, SIGTERM, SIGTERM, SIGKILL).</summary>
    public TimeSpan KillInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>child_heartbeat_interval: how often a child says it is alive.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>child_heartbeat_limit: no beat for this long and a child is taken as frozen: killed, its task retried.</summary>
    public TimeSpan HeartbeatLimit { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>A child whose working set exceeds this after a task is replaced (null: no ceiling).</summary>
    public long? MaxMemoryBytes { get; init; }

    public void Validate()
    {
        if (KillInterval <= TimeSpan.Zero) throw new ArgumentException("child_kill_interval must be more than zero.", nameof(KillInterval));
        if (HeartbeatInterval <= TimeSpan.Zero) throw new ArgumentException("child_heartbeat_interval must be more than zero.", nameof(HeartbeatInterval));
        if (HeartbeatLimit <= HeartbeatInterval)
            throw new ArgumentException($"child_heartbeat_limit ({HeartbeatLimit.TotalSeconds:0.###}s) must be more than child_heartbeat_interval ({HeartbeatInterval.TotalSeconds:0.###}s), or every child is taken as frozen.", nameof(HeartbeatLimit));
        if (MaxMemoryBytes is < 1) throw new ArgumentException("MaxMemoryBytes must be more than zero.", nameof(MaxMemoryBytes));
    }
}

/// <summary>Why a worker stopped.</summary>
public enum WorkerStopReason
{
    /// <summary>UntilEmpty: nothing was due and nothing ran.</summary>
    Empty,
    /// <summary>MaxTasks were acquired and have ended.</summary>
    MaxTasks,
    /// <summary>A graceful stop (Ctrl+C, SIGTERM, Stop-Job).</summary>
    GracefulStop,
    /// <summary>Stop-PQWorker asked it to stop.</summary>
    StopRequested,
    /// <summary>An immediate stop (a second Ctrl+C, SIGQUIT, a second Stop-Job).</summary>
    ImmediateStop,
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
    /// <summary>Handlers stopped because they ran past their timeout.</summary>
    public int TimedOut { get; init; }
    /// <summary>Handlers that did not obey a stop: their child process was killed or their runspace abandoned (frozen children too).</summary>
    public int Killed { get; init; }
    /// <summary>Processors replaced while the worker ran (a crashed, killed or recycled child, an abandoned runspace).</summary>
    public int ProcessorRestarts { get; init; }
    public TimeSpan Duration { get; init; }
    /// <summary>How many times the worker restarted (SIGUSR1, SIGHUP) and loaded its configuration and handlers again.</summary>
    public int Restarts { get; init; }
    /// <summary>Why the worker stopped.</summary>
    public WorkerStopReason Reason { get; init; }
    /// <summary>Why the worker stopped, as text: "empty", "max tasks", "graceful stop", "stop requested" (Stop-PQWorker), "immediate stop".</summary>
    public string StoppedBecause => Text(Reason);
    /// <summary>The worker's session id while it ran (Get-PQWorker's Id).</summary>
    public string? SessionId { get; init; }

    public static string Text(WorkerStopReason reason) => reason switch
    {
        WorkerStopReason.Empty => "empty",
        WorkerStopReason.MaxTasks => "max tasks",
        WorkerStopReason.GracefulStop => "graceful stop",
        WorkerStopReason.StopRequested => "stop requested",
        _ => "immediate stop",
    };
}

