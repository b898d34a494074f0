namespace PerfectQueue;

/// <summary>The state of a task as users see it. Derived from the stored row and the database clock.</summary>
public enum TaskState
{
    /// <summary>Not due yet: its run-at is in the future, or it waits out a retry.</summary>
    Scheduled,
    /// <summary>Due and not leased (an expired lease counts as not leased).</summary>
    Waiting,
    /// <summary>Leased by a worker whose lease has not expired.</summary>
    Running,
    /// <summary>Cancel was asked for a running task that has not finished yet.</summary>
    CancelRequested,
    /// <summary>Finished; see <see cref="TaskOutcome"/>.</summary>
    Finished,
}

/// <summary>How a finished task ended.</summary>
public enum TaskOutcome
{
    Succeeded,
    /// <summary>Gave up after max_attempts; the message keeps the last error.</summary>
    Failed,
    Cancelled,
    ForceFinished,
}
