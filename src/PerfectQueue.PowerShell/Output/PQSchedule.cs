using PerfectQueue.Schedules;

namespace PerfectQueue.PowerShell;

/// <summary>A schedule as Get-PQSchedule shows it: local times, what its last fire's task is doing, and the queue it came from.</summary>
public sealed class PQSchedule
{
    internal PQSchedule(ScheduleInfo info, Queue queue)
    {
        Name = info.Name;
        Cron = info.Cron;
        TimeZone = info.TimeZone;
        Type = info.Type;
        User = info.User;
        MaxRunning = info.MaxRunning;
        Data = PowerShellData.ToHashtable(info.Data);
        Overlap = info.Overlap;
        MissedRuns = info.MissedRuns;
        Paused = info.Paused;
        NextFireAt = info.NextFireAt.LocalDateTime;
        LastFireAt = info.LastFireAt?.LocalDateTime;
        LastFireKey = info.LastFireKey;
        LastFireStatus = info.LastFireStatus;
        LastFireOutcome = info.LastFireOutcome;
        SkipCount = info.SkipCount;
        LastSkipAt = info.LastSkipAt?.LocalDateTime;
        MissedCount = info.MissedCount;
        LastMissedAt = info.LastMissedAt?.LocalDateTime;
        CreatedAt = info.CreatedAt.LocalDateTime;
        UpdatedAt = info.UpdatedAt.LocalDateTime;
        Queue = queue;
    }

    /// <summary>The schedule's name; each fire's task key is &lt;Name&gt;@&lt;UTC fire time&gt;.</summary>
    public string Name { get; }
    /// <summary>The cron expression: 5 fields, or 6 with seconds first.</summary>
    public string Cron { get; }
    /// <summary>The time zone the cron is read in (IANA or Windows id; UTC by default).</summary>
    public string TimeZone { get; }
    /// <summary>The type of each fire's task.</summary>
    public string Type { get; }
    public string? User { get; }
    public int? MaxRunning { get; }
    /// <summary>Each fire's task data.</summary>
    public System.Collections.Specialized.OrderedDictionary Data { get; }
    public ScheduleOverlap Overlap { get; }
    public ScheduleMissedRuns MissedRuns { get; }
    /// <summary>Suspended (Suspend-PQSchedule): fires nothing until Resume-PQSchedule.</summary>
    public bool Paused { get; }
    /// <summary>The next fire, local time (in the past while no worker has fired it yet).</summary>
    public DateTime NextFireAt { get; }
    public DateTime? LastFireAt { get; }
    /// <summary>The task key of the last fire, for Get-PQTask -Key.</summary>
    public string? LastFireKey { get; }
    /// <summary>The last fire's task status; empty when it is gone (cleaned up) or there was no fire yet.</summary>
    public TaskState? LastFireStatus { get; }
    public TaskOutcome? LastFireOutcome { get; }
    /// <summary>The last fire's task as one word: Waiting, Running, Finished/Succeeded...; empty when none or gone.</summary>
    public string? LastFireResult => LastFireStatus is null ? null : LastFireOutcome is { } o ? $"{LastFireStatus}/{o}" : LastFireStatus.ToString();
    /// <summary>Fires skipped because the previous fire's task was unfinished (Overlap Skip).</summary>
    public long SkipCount { get; }
    public DateTime? LastSkipAt { get; }
    /// <summary>Fire times that passed with no worker running (not counting the one RunOnce ran).</summary>
    public long MissedCount { get; }
    public DateTime? LastMissedAt { get; }
    public DateTime CreatedAt { get; }
    public DateTime UpdatedAt { get; }
    /// <summary>The queue the schedule came from, so piped commands act on the same queue.</summary>
    public Queue Queue { get; }

    public override string ToString() => Name;
}
