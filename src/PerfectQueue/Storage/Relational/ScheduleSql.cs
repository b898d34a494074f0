namespace PerfectQueue.Storage;

/// <summary>
/// The schedule statements, the same standard SQL on every dialect (as <see cref="PortableSql"/> is for tasks): dialects
/// give their quoted table, their clock expression or parameter, and a statement prefix where they need one (SQL
/// Server declares @now). Parameters are built by the *Args methods, so every store passes the same names.
/// </summary>
internal static class ScheduleSql
{
    /// <summary>The suffix of the schedules table: &lt;table&gt;_schedules.</summary>
    public const string TableSuffix = "_schedules";

    /// <summary>The columns, read into <see cref="ScheduleRow"/> by name; without <paramref name="data"/>, Data reads as NULL (the firer's listing).</summary>
    public static string Columns(Func<string, string> quote, bool data = true) => string.Join(", ",
        $"schedule_name AS {quote("Name")}", $"cron_expression AS {quote("Cron")}", $"time_zone AS {quote("TimeZone")}",
        $"task_type AS {quote("Type")}", $"user_name AS {quote("User")}", $"{(data ? "data" : "NULL")} AS {quote("Data")}", $"max_running AS {quote("MaxRunning")}",
        $"overlap AS {quote("Overlap")}", $"missed_runs AS {quote("MissedRuns")}", $"paused AS {quote("Paused")}",
        $"next_fire_at AS {quote("NextFireAt")}", $"last_fire_at AS {quote("LastFireAt")}", $"last_fire_key AS {quote("LastFireKey")}",
        $"skip_count AS {quote("SkipCount")}", $"last_skip_at AS {quote("LastSkipAt")}", $"missed_count AS {quote("MissedCount")}",
        $"last_missed_at AS {quote("LastMissedAt")}", $"created_at AS {quote("CreatedAt")}", $"updated_at AS {quote("UpdatedAt")}");

    public static string Add(string quotedSchedules, string now) => $"""
        INSERT INTO {quotedSchedules} (schedule_name, cron_expression, time_zone, task_type, user_name, data, max_running, overlap, missed_runs,
            paused, next_fire_at, skip_count, missed_count, created_at, updated_at)
        VALUES (@name, @cron, @zone, @type, @user, @data, @maxRunning, @overlap, @missedRuns, @paused, @next, 0, 0, {now}, {now})
        """;

    public static string Update(string quotedSchedules, string now) => $"""
        UPDATE {quotedSchedules} SET cron_expression = @cron, time_zone = @zone, task_type = @type, user_name = @user, data = @data,
            max_running = @maxRunning, overlap = @overlap, missed_runs = @missedRuns, paused = @paused, next_fire_at = COALESCE(@next, next_fire_at),
            updated_at = {now}
        WHERE schedule_name = @name
        """;

    public static string Remove(string quotedSchedules) => $"DELETE FROM {quotedSchedules} WHERE schedule_name = @name";

    public static string List(string quotedSchedules, string columns) => $"SELECT {columns} FROM {quotedSchedules} ORDER BY schedule_name";

    /// <summary>One schedule's data: the firer reads it only for a schedule it fires (data may be megabytes; the listing runs every second).</summary>
    public static string Data(string quotedSchedules) => $"SELECT data FROM {quotedSchedules} WHERE schedule_name = @name";

    /// <summary>The compare-and-set advance: only the worker that still sees the expected next fire moves it.</summary>
    public static string Advance(string quotedSchedules, string now) => $"""
        UPDATE {quotedSchedules} SET next_fire_at = @next,
            last_fire_at = COALESCE(@firedAt, last_fire_at), last_fire_key = COALESCE(@firedKey, last_fire_key),
            skip_count = skip_count + @skips, last_skip_at = COALESCE(@skippedAt, last_skip_at),
            missed_count = missed_count + @missed, last_missed_at = COALESCE(@missedAt, last_missed_at), updated_at = {now}
        WHERE schedule_name = @name AND next_fire_at = @expected AND paused = 0
        """;

    /// <summary>Parameters of <see cref="Add"/> and <see cref="Update"/>; <paramref name="keepNext"/>: an update leaves the next fire as stored (a firer may have just moved it).</summary>
    public static object RowArgs(ScheduleRow r, bool keepNext = false) => new
    {
        name = r.Name, cron = r.Cron, zone = r.TimeZone, type = r.Type, user = r.User, data = r.Data, maxRunning = r.MaxRunning,
        overlap = r.Overlap, missedRuns = r.MissedRuns, paused = r.Paused ? 1 : 0, next = keepNext ? (long?)null : r.NextFireAt,
    };

    public static object NameArgs(string name) => new { name };

    public static object AdvanceArgs(ScheduleAdvance a) => new
    {
        name = a.Name, expected = a.ExpectedNext, next = a.Next, firedAt = a.FiredAt, firedKey = a.FiredKey,
        skips = a.Skips, skippedAt = a.SkippedAt, missed = a.Missed, missedAt = a.MissedAt,
    };

    /// <summary>Sample rows for the statement inventories (the SQL Server tests check parameters against them).</summary>
    public static ScheduleRow SampleRow() => new()
    {
        Name = "nightly", Cron = "0 3 * * *", TimeZone = "Europe/Berlin", Type = "backup", User = "team-a", Data = [0x7B, 0x7D], MaxRunning = 1,
        Overlap = "Skip", MissedRuns = "RunOnce", NextFireAt = 1_767_225_600_000,
    };

    public static ScheduleAdvance SampleAdvance() => new("nightly", 1_767_225_600_000, 1_767_312_000_000, 1_767_225_600_000, "nightly@2026-01-01T00:00:00Z", 0, null, 0, null);
}
