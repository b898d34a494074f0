using PerfectQueue.Schedules;
using Xunit;

namespace PerfectQueue.Tests.Schedules;

/// <summary>Cron parsing, time zones and daylight saving, on fixed instants (no clock), and the fire key format.</summary>
public sealed class ScheduleCronTests
{
    private static DateTimeOffset Utc(string iso) => DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal);

    [Fact]
    public void Five_fields_are_minute_hour_day_month_weekday_and_six_put_seconds_first()
    {
        var five = ScheduleCron.Parse("0 3 * * *");
        Assert.Equal(Utc("2026-12-02T03:00:00Z"), five.Next(Utc("2026-12-01T03:00:00Z")));
        var six = ScheduleCron.Parse("*/2 * * * * *");
        Assert.Equal(Utc("2026-12-02T10:00:02Z"), six.Next(Utc("2026-12-02T10:00:00Z")));
        Assert.Equal(Utc("2026-12-02T10:00:02Z"), six.Next(Utc("2026-12-02T10:00:01.500Z")));
        // Extra blanks are not fields; the stored expression has single spaces.
        Assert.Equal("0 3 * * *", ScheduleCron.Parse("  0  3 * *\t* ").Expression);
        Assert.Equal("UTC", five.TimeZoneId);
    }

    [Theory]
    [InlineData("61 * * * *", "minute")]
    [InlineData("0 25 * * *", "hour")]
    [InlineData("0 3 32 * *", "day-of-month")]
    [InlineData("0 3 * 13 *", "month")]
    [InlineData("0 3 * * 9", "day-of-week")]
    [InlineData("75 0 3 * * *", "second")]
    [InlineData("0 x 3 * * *", "minute")]
    public void A_bad_expression_names_the_field(string expression, string field)
    {
        var e = Assert.Throws<ArgumentException>(() => ScheduleCron.Parse(expression));
        Assert.Contains($"bad {field} field", e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("* * * *")]
    [InlineData("* * * * * * *")]
    public void A_wrong_number_of_fields_says_how_many_are_wanted(string expression)
    {
        var e = Assert.Throws<ArgumentException>(() => ScheduleCron.Parse(expression));
        Assert.Contains("5 ", e.Message);
        Assert.Contains("6", e.Message);
    }

    [Fact]
    public void An_expression_that_never_fires_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => ScheduleCron.Parse("0 0 30 2 *"));
        Assert.Contains("never fires", e.Message);
    }

    [Fact]
    public void IANA_and_Windows_time_zone_ids_give_the_same_fire_times()
    {
        var iana = ScheduleCron.Parse("0 3 * * *", "Europe/Berlin");
        var windows = ScheduleCron.Parse("0 3 * * *", "W. Europe Standard Time");
        // Summer: CEST is UTC+2; winter: CET is UTC+1.
        Assert.Equal(Utc("2026-07-01T01:00:00Z"), iana.Next(Utc("2026-06-30T12:00:00Z")));
        Assert.Equal(Utc("2026-12-02T02:00:00Z"), iana.Next(Utc("2026-12-01T12:00:00Z")));
        Assert.Equal(iana.Next(Utc("2026-06-30T12:00:00Z")), windows.Next(Utc("2026-06-30T12:00:00Z")));
        Assert.Equal(iana.Next(Utc("2026-12-01T12:00:00Z")), windows.Next(Utc("2026-12-01T12:00:00Z")));
        Assert.Equal("W. Europe Standard Time", windows.TimeZoneId);
    }

    [Fact]
    public void An_unknown_time_zone_names_both_kinds_of_id()
    {
        var e = Assert.Throws<ArgumentException>(() => ScheduleCron.Parse("0 3 * * *", "Mars/Olympus_Mons"));
        Assert.Contains("Mars/Olympus_Mons", e.Message);
        Assert.Contains("IANA", e.Message);
        Assert.Contains("Windows", e.Message);
    }

    [Fact]
    public void A_fire_time_in_the_spring_gap_fires_when_the_gap_ends()
    {
        // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist that day.
        var cron = ScheduleCron.Parse("30 2 * * *", "Europe/Berlin");
        Assert.Equal(Utc("2026-03-28T01:30:00Z"), cron.Next(Utc("2026-03-27T12:00:00Z")));
        Assert.Equal(Utc("2026-03-29T01:00:00Z"), cron.Next(Utc("2026-03-28T01:30:00Z")));
        Assert.Equal(Utc("2026-03-30T00:30:00Z"), cron.Next(Utc("2026-03-29T01:00:00Z")));
    }

    [Fact]
    public void A_fire_time_in_the_autumn_repeat_fires_once()
    {
        // 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 and at 01:30 UTC.
        var cron = ScheduleCron.Parse("30 2 * * *", "Europe/Berlin");
        Assert.Equal(Utc("2026-10-25T00:30:00Z"), cron.Next(Utc("2026-10-24T12:00:00Z")));
        Assert.Equal(Utc("2026-10-26T01:30:00Z"), cron.Next(Utc("2026-10-25T00:30:00Z")));
    }

    [Fact]
    public void Fire_keys_are_the_name_an_at_sign_and_the_UTC_time_to_the_second()
    {
        Assert.Equal("nightly@2026-12-02T03:00:00Z", ScheduleNames.FireKey("nightly", Utc("2026-12-02T03:00:00Z")));
        Assert.Equal("nightly@2026-12-02T03:00:00Z", ScheduleNames.FireKey("nightly", Utc("2026-12-02T04:00:00+01:00")));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a@b")]
    [InlineData("two words")]
    [InlineData("tab\tname")]
    [InlineData("line\nbreak")]
    public void Bad_schedule_names_are_refused_with_a_reason(string name) => Assert.NotNull(ScheduleNames.Problem(name));

    [Fact]
    public void A_name_at_the_limit_gives_fire_and_notice_keys_within_the_task_key_limit()
    {
        var name = new string('n', ScheduleNames.MaxLength);
        Assert.Null(ScheduleNames.Problem(name));
        Assert.NotNull(ScheduleNames.Problem(name + "n"));
        var notice = Notices.KeyPrefix + "skipped:" + ScheduleNames.FireKey(name, Utc("2026-12-02T03:00:00Z"));
        Assert.Null(TaskText.NameProblem("key", notice));
    }
}
