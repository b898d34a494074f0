using System.Globalization;
using Cronos;

namespace PerfectQueue.Schedules;

/// <summary>
/// A schedule's cron expression in its time zone, parsed by Cronos: 5 fields (minute hour day-of-month month
/// day-of-week), or 6 with seconds first, or a Cronos macro such as @daily. Daylight-saving gaps and repeats are
/// Cronos's rules (docs/schedules.md, "Time zones and daylight saving").
/// </summary>
public sealed class ScheduleCron
{
    /// <summary>The time zone of a schedule that names none.</summary>
    public const string DefaultTimeZone = "UTC";

    private static readonly string[] FiveFields = ["minute", "hour", "day-of-month", "month", "day-of-week"];
    private static readonly string[] SixFields = ["second", "minute", "hour", "day-of-month", "month", "day-of-week"];

    private readonly CronExpression _cron;

    private ScheduleCron(string expression, CronExpression cron, string timeZoneId, TimeZoneInfo zone)
    {
        Expression = expression;
        _cron = cron;
        TimeZoneId = timeZoneId;
        TimeZone = zone;
    }

    /// <summary>The expression, trimmed and with single spaces between its fields.</summary>
    public string Expression { get; }
    /// <summary>The time zone id as given (IANA or Windows), or UTC.</summary>
    public string TimeZoneId { get; }
    public TimeZoneInfo TimeZone { get; }

    /// <summary>Parses and checks an expression and a time zone id (null or empty: UTC).</summary>
    /// <exception cref="ArgumentException">what is wrong, naming the field or the time zone.</exception>
    public static ScheduleCron Parse(string? expression, string? timeZone = null)
    {
        var zoneId = string.IsNullOrWhiteSpace(timeZone) ? DefaultTimeZone : timeZone.Trim();
        var zone = FindZone(zoneId);
        if (string.IsNullOrWhiteSpace(expression))
            throw new ArgumentException("The cron expression is empty. Give 5 fields (minute hour day-of-month month day-of-week), such as '0 3 * * *' for 03:00 every day, or 6 with seconds first.", nameof(expression));
        var fields = expression.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        var text = string.Join(' ', fields);
        CronFormat format;
        string[] names;
        if (fields is [['@', ..]]) (format, names) = (CronFormat.IncludeSeconds, []);
        else if (fields.Length == 5) (format, names) = (CronFormat.Standard, FiveFields);
        else if (fields.Length == 6) (format, names) = (CronFormat.IncludeSeconds, SixFields);
        else
            throw new ArgumentException($"The cron expression '{text}' has {fields.Length} field(s); give 5 (minute hour day-of-month month day-of-week) or 6 (second first), such as '0 3 * * *' or '*/10 * * * * *'.", nameof(expression));
        CronExpression cron;
        try
        {
            cron = CronExpression.Parse(text, format);
        }
        catch (CronFormatException e)
        {
            throw new ArgumentException(BadFieldMessage(text, fields, names, format, e), nameof(expression), e);
        }
        var parsed = new ScheduleCron(text, cron, zoneId, zone);
        // An expression that parses but can never match (February 30) would sit in the table forever.
        if (parsed.Next(DateTimeOffset.UtcNow) is null)
            throw new ArgumentException($"The cron expression '{text}' never fires (no date matches its day-of-month and month, such as February 30). Check those fields.", nameof(expression));
        return parsed;
    }

    // Cronos says what is wrong but not always where: each field is tried alone (the others '*') to name the one at fault.
    private static string BadFieldMessage(string text, string[] fields, string[] names, CronFormat format, CronFormatException e)
    {
        for (var i = 0; i < names.Length; i++)
        {
            var alone = string.Join(' ', fields.Select((f, j) => j == i ? f : "*"));
            try { CronExpression.Parse(alone, format); }
            catch (CronFormatException)
            {
                return $"The cron expression '{text}' has a bad {names[i]} field ('{fields[i]}', field {i + 1} of {names.Length}): {e.Message.TrimEnd('.')}. " +
                    "Fields are " + string.Join(' ', names) + "; each takes *, a number, a range a-b, a list a,b or a step */n.";
            }
        }
        return $"The cron expression '{text}' is not valid: {e.Message.TrimEnd('.')}. Give 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first.";
    }

    /// <summary>Finds a time zone by IANA id (Europe/Berlin) or Windows id (W. Europe Standard Time).</summary>
    /// <exception cref="ArgumentException">no such time zone on this host.</exception>
    public static TimeZoneInfo FindZone(string id)
    {
        if (string.Equals(id, DefaultTimeZone, StringComparison.OrdinalIgnoreCase)) return TimeZoneInfo.Utc;
        try
        {
            return TimeZoneInfo.FindSystemTimeZoneById(id);
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            throw new ArgumentException($"The time zone '{id}' is not known on this host. Give an IANA id such as 'Europe/Berlin' or a Windows id such as 'W. Europe Standard Time', or leave it out for UTC.", "timeZone", e);
        }
    }

    /// <summary>The first fire time after <paramref name="instant"/> (at or after it when <paramref name="inclusive"/>); null: none.</summary>
    public DateTimeOffset? Next(DateTimeOffset instant, bool inclusive = false) =>
        _cron.GetNextOccurrence(instant.UtcDateTime, TimeZone, inclusive) is { } next ? new DateTimeOffset(next, TimeSpan.Zero) : null;

    /// <summary>The same on Unix milliseconds (the database clock's unit); null: none.</summary>
    internal long? NextMs(long unixMs, bool inclusive = false) =>
        Next(DateTimeOffset.FromUnixTimeMilliseconds(unixMs), inclusive)?.ToUnixTimeMilliseconds();

    /// <summary>Fire times from <paramref name="fromMs"/> (inclusive) to before <paramref name="toMs"/>: how many (at most <paramref name="cap"/>) and the last.</summary>
    internal (int Count, long? Last) Between(long fromMs, long toMs, int cap)
    {
        var count = 0;
        long? last = null;
        for (var t = NextMs(fromMs, inclusive: true); t is { } at && at < toMs && count < cap; t = NextMs(at))
        {
            count++;
            last = at;
        }
        return (count, last);
    }

    public override string ToString() => TimeZoneId == DefaultTimeZone ? Expression : $"{Expression} ({TimeZoneId})";

    /// <summary>The fire time as the task key writes it: UTC, whole seconds, ISO 8601 with Z.</summary>
    internal static string FormatFireTime(long unixMs) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
