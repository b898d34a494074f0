namespace PerfectQueue.Storage;

/// <summary>A schedule row of <c>&lt;table&gt;_schedules</c> as stored (times in Unix ms from the database clock). Schema version 4.</summary>
internal sealed class ScheduleRow
{
    public string Name { get; set; } = "";
    public string Cron { get; set; } = "";
    public string TimeZone { get; set; } = "";
    public string Type { get; set; } = "";
    public string? User { get; set; }
    public byte[]? Data { get; set; }
    public int? MaxRunning { get; set; }
    public string Overlap { get; set; } = "";
    public string MissedRuns { get; set; } = "";
    public bool Paused { get; set; }
    public long NextFireAt { get; set; }
    public long? LastFireAt { get; set; }
    public string? LastFireKey { get; set; }
    public long SkipCount { get; set; }
    public long? LastSkipAt { get; set; }
    public long MissedCount { get; set; }
    public long? LastMissedAt { get; set; }
    public long CreatedAt { get; set; }
    public long UpdatedAt { get; set; }
}

/// <summary>
/// A schedule's move to its next fire, applied only while its next fire is still <see cref="ExpectedNext"/> and it is
/// not paused (compare-and-set: of many workers that fired the same time, one advances it). It records what that fire
/// did: submitted a task (FiredAt, FiredKey), was skipped (Skips, SkippedAt) or found times missed (Missed, MissedAt).
/// </summary>
internal sealed record ScheduleAdvance(string Name, long ExpectedNext, long Next,
    long? FiredAt = null, string? FiredKey = null, int Skips = 0, long? SkippedAt = null, long Missed = 0, long? MissedAt = null);

/// <summary>The schedule operations every relational store implements (its <c>&lt;X&gt;QueueStore.Schedules.cs</c>).</summary>
internal interface IScheduleStore
{
    /// <summary>Inserts a schedule (created and updated now); false if the name is taken.</summary>
    Task<bool> AddScheduleAsync(ScheduleRow row, CancellationToken ct);

    /// <summary>
    /// Replaces a schedule's definition, paused flag and next fire (counters and last fire stay); <paramref name="keepNext"/>
    /// leaves the stored next fire. False if no schedule has the name.
    /// </summary>
    Task<bool> UpdateScheduleAsync(ScheduleRow row, bool keepNext, CancellationToken ct);

    /// <summary>Deletes a schedule; false if no schedule has the name.</summary>
    Task<bool> RemoveScheduleAsync(string name, CancellationToken ct);

    /// <summary>
    /// Every schedule, by name, and the database clock. Empty when the queue has no schedules table yet. Without
    /// <paramref name="withData"/> every row's Data is null (the firer's listing; <see cref="GetScheduleDataAsync"/> reads it).
    /// </summary>
    Task<(IReadOnlyList<ScheduleRow> Rows, long Now)> ListSchedulesAsync(bool withData, CancellationToken ct);

    /// <summary>One schedule's data (null if it has none, or is gone).</summary>
    Task<byte[]?> GetScheduleDataAsync(string name, CancellationToken ct);

    /// <summary>Applies the advance if the schedule's next fire is still the expected one; false if another worker moved it (or it was paused, changed or removed).</summary>
    Task<bool> AdvanceScheduleAsync(ScheduleAdvance advance, CancellationToken ct);
}
