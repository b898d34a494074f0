using System.Collections.Specialized;

namespace PerfectQueue.PowerShell;

/// <summary>What Measure-PQQueue shows: counts per status, per type and per user, and the oldest wait.</summary>
public sealed class PQQueueMeasure
{
    internal PQQueueMeasure(QueueSummary s)
    {
        Queue = s.Queue;
        Total = s.Total;
        Scheduled = s.CountOf(TaskState.Scheduled);
        Waiting = s.CountOf(TaskState.Waiting);
        Running = s.CountOf(TaskState.Running);
        CancelRequested = s.CountOf(TaskState.CancelRequested);
        Finished = s.CountOf(TaskState.Finished);
        OldestWaitingAge = s.OldestWaitingAge;
        ByType = Group(s, c => c.Type);
        ByUser = Group(s, c => c.User ?? "");
        Counts = s.Counts;
    }

    private static OrderedDictionary Group(QueueSummary s, Func<QueueCount, string> key)
    {
        var result = new OrderedDictionary(StringComparer.Ordinal);
        foreach (var g in s.Counts.GroupBy(key).OrderBy(g => g.Key, StringComparer.Ordinal))
            result[g.Key] = g.Sum(c => c.Count);
        return result;
    }

    public string Queue { get; }
    public long Total { get; }
    public long Scheduled { get; }
    public long Waiting { get; }
    public long Running { get; }
    public long CancelRequested { get; }
    public long Finished { get; }
    /// <summary>How long the longest-waiting due task has waited; empty when none waits.</summary>
    public TimeSpan? OldestWaitingAge { get; }
    /// <summary>Task counts per type (all statuses).</summary>
    public OrderedDictionary ByType { get; }
    /// <summary>Task counts per user ('' for tasks without one).</summary>
    public OrderedDictionary ByUser { get; }
    /// <summary>Every count by status, type and user.</summary>
    public IReadOnlyList<QueueCount> Counts { get; }

    /// <summary>The paused scopes (Suspend-PQQueue), oldest first, such as "type 'backup'"; empty when nothing is paused.</summary>
    public string[] Paused { get; internal set; } = [];
    /// <summary>How many of the waiting tasks the pauses hold back (each counted once).</summary>
    public long PausedWaiting { get; internal set; }
}
