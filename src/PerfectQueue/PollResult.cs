namespace PerfectQueue;

/// <summary>
/// What one acquire did: the tasks handed out, and the tasks it finished instead of handing out (a cancel
/// request seen after the task was given back, or max_attempts spent by attempts whose leases expired).
/// A worker counts and logs the endings, and does not take a poll that only ended tasks for an empty queue.
/// </summary>
internal sealed record PollResult(IReadOnlyList<AcquiredTask> Tasks, IReadOnlyList<AcquireEnding> Ended)
{
    public static readonly PollResult Empty = new([], []);
}

/// <summary>A task an acquire finished instead of handing it out.</summary>
internal sealed record AcquireEnding(string Key, string Type, TaskOutcome Outcome, string Message, int Attempts);
