using System.Text.Json.Nodes;

namespace PerfectQueue.Schedules;

/// <summary>What a schedule does when a fire comes due while the task of its previous fire is not finished.</summary>
public enum ScheduleOverlap
{
    /// <summary>Fire nothing this time; the skip is counted on the schedule (and a FireSkipped notice submitted).</summary>
    Skip,
    /// <summary>Fire anyway: the fires' tasks may run side by side.</summary>
    Allow,
}

/// <summary>What a schedule does about fire times that passed while no worker fired it (docs/schedules.md, "Missed runs").</summary>
public enum ScheduleMissedRuns
{
    /// <summary>Fire nothing for the missed times; the next fire is the next one in the future.</summary>
    Skip,
    /// <summary>Fire once, for the latest missed time, then go on as scheduled.</summary>
    RunOnce,
}

/// <summary>A schedule to register: a name, when (cron and time zone) and the task each fire submits.</summary>
public sealed class ScheduleDefinition
{
    public required string Name { get; init; }
    /// <summary>5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first).</summary>
    public required string Cron { get; init; }
    /// <summary>IANA (Europe/Berlin) or Windows (W. Europe Standard Time) id; null: UTC.</summary>
    public string? TimeZone { get; init; }
    /// <summary>The type of each fire's task.</summary>
    public required string Type { get; init; }
    /// <summary>Each fire's task data, as Submit takes it (a JSON object, a dictionary, an object).</summary>
    public object? Data { get; init; }
    public string? User { get; init; }
    public int? MaxRunning { get; init; }
    public ScheduleOverlap Overlap { get; init; } = ScheduleOverlap.Skip;
    public ScheduleMissedRuns MissedRuns { get; init; } = ScheduleMissedRuns.RunOnce;
    /// <summary>Register it suspended: it fires nothing until resumed.</summary>
    public bool Paused { get; init; }
    /// <summary>Compression of the stored data; null: the queue's setting.</summary>
    public DataCompression? Compression { get; init; }
}

/// <summary>
/// A change to a registered schedule: every property left null keeps its value. <see cref="User"/> "" removes the
/// user, <see cref="MaxRunning"/> 0 removes the limit. A new cron or time zone sets the next fire from now.
/// </summary>
public sealed class ScheduleChange
{
    public string? Cron { get; init; }
    public string? TimeZone { get; init; }
    public string? Type { get; init; }
    /// <summary>Replaces the data when <see cref="SetData"/> is true (null data is an empty object).</summary>
    public object? Data { get; init; }
    public bool SetData { get; init; }
    public string? User { get; init; }
    public int? MaxRunning { get; init; }
    public ScheduleOverlap? Overlap { get; init; }
    public ScheduleMissedRuns? MissedRuns { get; init; }
    public DataCompression? Compression { get; init; }
}

/// <summary>A schedule as stored, read on the database clock, with what its last fire's task is doing.</summary>
public sealed class ScheduleInfo
{
    public required string Name { get; init; }
    public required string Cron { get; init; }
    public required string TimeZone { get; init; }
    public required string Type { get; init; }
    public string? User { get; init; }
    public int? MaxRunning { get; init; }
    public required JsonObject Data { get; init; }
    public ScheduleOverlap Overlap { get; init; }
    public ScheduleMissedRuns MissedRuns { get; init; }
    /// <summary>Suspended (Suspend-PQSchedule): fires nothing until resumed.</summary>
    public bool Paused { get; init; }
    /// <summary>The fire the schedule waits for (it may be in the past until a worker fires it).</summary>
    public DateTimeOffset NextFireAt { get; init; }
    public DateTimeOffset? LastFireAt { get; init; }
    /// <summary>The task key of the last fire: &lt;name&gt;@&lt;UTC fire time&gt;.</summary>
    public string? LastFireKey { get; init; }
    /// <summary>The last fire's task status; null when it is gone (cleaned up after its retention) or there was no fire.</summary>
    public TaskState? LastFireStatus { get; init; }
    public TaskOutcome? LastFireOutcome { get; init; }
    /// <summary>Fires skipped because the previous fire's task was unfinished (Overlap Skip).</summary>
    public long SkipCount { get; init; }
    public DateTimeOffset? LastSkipAt { get; init; }
    /// <summary>Fire times that passed with no worker to fire them (and were not run; RunOnce runs the latest).</summary>
    public long MissedCount { get; init; }
    public DateTimeOffset? LastMissedAt { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    /// <summary>The database clock when this was read.</summary>
    public DateTimeOffset ReadAt { get; init; }

    public override string ToString() => Name;
}

/// <summary>A schedule name is taken (Register without Force).</summary>
public sealed class ScheduleAlreadyExistsException : AlreadyExistsException
{
    public ScheduleAlreadyExistsException(string name)
        : base($"A schedule named '{name}' already exists. Change it with Set-PQSchedule (Queue.SetSchedule), or register with -Force (force: true) to replace it.", name) => Name = name;
    public string Name { get; }
}

/// <summary>No schedule has this name.</summary>
public sealed class ScheduleNotFoundException : NotFoundException
{
    public ScheduleNotFoundException(string name)
        : base($"No schedule is named '{name}'. Get-PQSchedule (Queue.ListSchedules) lists them.", name) => Name = name;
    public string Name { get; }
}
