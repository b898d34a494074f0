namespace PerfectQueue;

/// <summary>How many tasks a queue holds, per status, type and user (what Measure-PQQueue shows).</summary>
public sealed class QueueSummary
{
    public required string Queue { get; init; }
    /// <summary>The database clock when counted.</summary>
    public required DateTimeOffset At { get; init; }
    public required IReadOnlyList<QueueCount> Counts { get; init; }
    /// <summary>When the longest-waiting due task became due; null when none waits.</summary>
    public DateTimeOffset? OldestWaitingSince { get; init; }

    public long Total => Counts.Sum(c => c.Count);
    public long CountOf(TaskState state) => Counts.Where(c => c.State == state).Sum(c => c.Count);
    /// <summary>How long the longest-waiting due task has waited; null when none waits.</summary>
    public TimeSpan? OldestWaitingAge => OldestWaitingSince is { } since ? At - since : null;
}

/// <summary>The number of tasks with one status, type and user.</summary>
public sealed record QueueCount(TaskState State, string Type, string? User, long Count);
