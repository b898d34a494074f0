using PerfectQueue.Schedules;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Schedules on every backend (the <c>&lt;table&gt;_schedules</c> table, schema version 4): register, change, suspend,
/// remove; the compare-and-set advance; firing on the database clock, missed runs, overlap skips and their notices.
/// Fire times are put where a test needs them by writing the schedule's next fire, never by waiting for a cron time.
/// </summary>
public abstract class ScheduleConformance(IBackendTarget target) : BackendSuite(target)
{
    private static ScheduleDefinition Every(string name, string cron = "* * * * * *", ScheduleOverlap overlap = ScheduleOverlap.Allow,
        ScheduleMissedRuns missed = ScheduleMissedRuns.RunOnce, object? data = null) => new()
    {
        Name = name, Cron = cron, Type = "backup", Data = data ?? new Dictionary<string, object?> { ["db"] = "sales", ["n"] = 3 }, User = "team-a",
        Overlap = overlap, MissedRuns = missed,
    };

    private static async Task SetNextFireAsync(Queue q, string name, DateTimeOffset at)
    {
        var (rows, _) = await q.Schedules.ListSchedulesAsync(withData: true, default);
        var row = Assert.Single(rows, r => r.Name == name);
        row.NextFireAt = at.ToUnixTimeMilliseconds();
        Assert.True(await q.Schedules.UpdateScheduleAsync(row, keepNext: false, default));
    }

    // The database clock, to the whole second (every second is a fire time of "* * * * * *").
    private static DateTimeOffset Second(Queue q) => DateTimeOffset.FromUnixTimeSeconds(q.Now().ToUnixTimeSeconds());

    private static IReadOnlyList<TaskInfo> FiresOf(Queue q, string name) =>
        q.List().Where(t => t.Key.StartsWith(name + "@", StringComparison.Ordinal)).OrderBy(t => t.Key, StringComparer.Ordinal).ToList();

    [BackendFact]
    public void A_registered_schedule_is_listed_with_its_definition_and_a_next_fire_after_now_and_its_name_cannot_be_taken_again()
    {
        var q = Open();
        var before = q.Now();
        var s = q.RegisterSchedule(new ScheduleDefinition
        {
            Name = "nightly", Cron = "0 3 * * *", TimeZone = "Europe/Berlin", Type = "backup", Data = new Dictionary<string, object?> { ["db"] = "sales" },
            User = "team-a", MaxRunning = 1, Overlap = ScheduleOverlap.Skip, MissedRuns = ScheduleMissedRuns.Skip,
        });
        Assert.Equal("nightly", s.Name);
        Assert.Equal("0 3 * * *", s.Cron);
        Assert.Equal("Europe/Berlin", s.TimeZone);
        Assert.Equal("backup", s.Type);
        Assert.Equal("team-a", s.User);
        Assert.Equal(1, s.MaxRunning);
        Assert.Equal("sales", (string?)s.Data["db"]);
        Assert.Equal(ScheduleOverlap.Skip, s.Overlap);
        Assert.Equal(ScheduleMissedRuns.Skip, s.MissedRuns);
        Assert.False(s.Paused);
        Assert.Equal(ScheduleCron.Parse("0 3 * * *", "Europe/Berlin").Next(s.CreatedAt), s.NextFireAt);
        Assert.True(s.NextFireAt > before);
        Assert.Null(s.LastFireKey);
        Assert.Equal(0, s.SkipCount);

        var e = Assert.Throws<ScheduleAlreadyExistsException>(() => q.RegisterSchedule(Every("nightly")));
        Assert.Contains("Set-PQSchedule", e.Message);
        Assert.Equal("0 3 * * *", Assert.Single(q.ListSchedules()).Cron); // the refused register changed nothing

        var replaced = q.RegisterSchedule(Every("nightly", "*/5 * * * *"), force: true);
        Assert.Equal("*/5 * * * *", replaced.Cron);
        Assert.Equal("UTC", replaced.TimeZone);
        Assert.Equal(s.CreatedAt, replaced.CreatedAt);
        Assert.Single(q.ListSchedules());
    }

    [BackendFact]
    public void A_change_keeps_what_it_does_not_name_and_a_new_cron_moves_the_next_fire()
    {
        var q = Open();
        var s = q.RegisterSchedule(Every("hourly", "0 * * * *"));
        var typed = q.SetSchedule("hourly", new ScheduleChange { Type = "report", User = "", MaxRunning = 2 });
        Assert.Equal("report", typed.Type);
        Assert.Null(typed.User);
        Assert.Equal(2, typed.MaxRunning);
        Assert.Equal("0 * * * *", typed.Cron);
        Assert.Equal(s.NextFireAt, typed.NextFireAt);
        Assert.Equal("sales", (string?)typed.Data["db"]);

        var retimed = q.SetSchedule("hourly", new ScheduleChange { Cron = "30 4 1 1 *", SetData = true, Data = new Dictionary<string, object?> { ["x"] = 1 } });
        Assert.Equal(ScheduleCron.Parse("30 4 1 1 *").Next(retimed.UpdatedAt), retimed.NextFireAt);
        Assert.Equal(1, (int?)retimed.Data["x"]);
        Assert.Null(retimed.Data["db"]);
        Assert.Equal("report", retimed.Type);

        Assert.Throws<ScheduleNotFoundException>(() => q.SetSchedule("nope", new ScheduleChange { Type = "x" }));
        var bad = Assert.Throws<ArgumentException>(() => q.SetSchedule("hourly", new ScheduleChange { Cron = "0 99 * * *" }));
        Assert.Contains("hour", bad.Message);
        Assert.Equal("30 4 1 1 *", q.GetSchedule("hourly")!.Cron); // a refused change stores nothing
    }

    [BackendFact]
    public void Unregister_removes_a_schedule_once_and_bad_input_stores_nothing()
    {
        var q = Open();
        q.RegisterSchedule(Every("gone"));
        Assert.True(q.UnregisterSchedule("gone"));
        Assert.False(q.UnregisterSchedule("gone"));
        Assert.Null(q.GetSchedule("gone"));

        Assert.Contains("minute", Assert.Throws<ArgumentException>(() => q.RegisterSchedule(Every("x", "0 61 * * * *"))).Message);
        Assert.Contains("'@'", Assert.Throws<ArgumentException>(() => q.RegisterSchedule(Every("a@b"))).Message);
        Assert.Throws<ArgumentException>(() => q.RegisterSchedule(new ScheduleDefinition { Name = "x", Cron = "* * * * *", Type = "" }));
        Assert.Throws<ArgumentException>(() => q.RegisterSchedule(new ScheduleDefinition { Name = "x", Cron = "* * * * *", Type = "t", Data = "[1,2]" }));
        Assert.Throws<ArgumentException>(() => q.RegisterSchedule(new ScheduleDefinition { Name = "x", Cron = "* * * * *", Type = "t", TimeZone = "No/Where" }));
        Assert.Empty(q.ListSchedules());
    }

    [BackendFact]
    public async Task The_advance_is_a_compare_and_set_on_the_next_fire()
    {
        var q = Open();
        var s = q.RegisterSchedule(Every("cas", "0 3 * * *"));
        var expected = s.NextFireAt.ToUnixTimeMilliseconds();
        var advance = new Storage.ScheduleAdvance("cas", expected, expected + 86_400_000, expected, "cas@x");
        Assert.True(await q.Schedules.AdvanceScheduleAsync(advance, default));
        Assert.False(await q.Schedules.AdvanceScheduleAsync(advance with { Next = expected + 2 * 86_400_000 }, default)); // another worker, too late
        var after = q.GetSchedule("cas")!;
        Assert.Equal(s.NextFireAt.AddDays(1), after.NextFireAt);
        // The firer's listing leaves the data out (it runs every second); a fire reads it by name.
        var (times, _) = await q.Schedules.ListSchedulesAsync(withData: false, default);
        Assert.Null(Assert.Single(times).Data);
        Assert.Equal("sales", (string?)TaskData.Decode(await q.Schedules.GetScheduleDataAsync("cas", default))["db"]);
        Assert.Null(await q.Schedules.GetScheduleDataAsync("nope", default));
        Assert.Equal("cas@x", after.LastFireKey);
        Assert.Equal(s.NextFireAt, after.LastFireAt);
    }

    [BackendFact]
    public async Task A_due_fire_submits_one_task_keyed_by_the_fire_time_with_the_schedule_data_and_moves_on()
    {
        var q = Open();
        q.RegisterSchedule(Every("tick"));
        var due = Second(q).AddSeconds(-2);
        await SetNextFireAsync(q, "tick", due);

        var next = q.FireDueSchedules();
        var fires = FiresOf(q, "tick");
        Assert.True(fires.Count >= 2, $"the fires of {due:O} and the second after it, got {fires.Count}");
        Assert.Equal(ScheduleNames.FireKey("tick", due), fires[0].Key);
        Assert.Equal(ScheduleNames.FireKey("tick", due.AddSeconds(1)), fires[1].Key);
        Assert.Equal("backup", fires[0].Type);
        Assert.Equal("team-a", fires[0].User);
        Assert.Equal("sales", (string?)fires[0].Data["db"]);
        Assert.Equal(3, (int?)fires[0].Data["n"]);
        var s = q.GetSchedule("tick")!;
        Assert.True(s.NextFireAt > s.LastFireAt);
        Assert.Equal(next, s.NextFireAt);
        Assert.Equal(fires[^1].Key, s.LastFireKey);
        Assert.Equal(TaskState.Waiting, s.LastFireStatus);

        // Firing again before the next time submits nothing.
        q.FireDueSchedules();
        Assert.True(FiresOf(q, "tick").Count <= fires.Count + 1);
    }

    [BackendFact]
    public async Task Two_clients_firing_the_same_due_times_at_once_submit_each_fire_exactly_once()
    {
        var q = Open();
        var other = OpenAnother(q);
        q.RegisterSchedule(Every("race"));
        for (var round = 0; round < 5; round++)
        {
            await SetNextFireAsync(q, "race", Second(q).AddSeconds(-5));
            await Task.WhenAll(Task.Run(() => q.FireDueSchedulesAsync()), Task.Run(() => other.FireDueSchedulesAsync()));
        }
        var keys = FiresOf(q, "race").Select(t => t.Key).ToList();
        Assert.Equal(keys.Count, keys.Distinct().Count());
        Assert.True(keys.Count >= 6, $"got {keys.Count} fires");
    }

    [BackendFact]
    public async Task Missed_runs_skip_fires_nothing_for_the_missed_times_records_them_and_submits_a_notice()
    {
        var q = Open();
        q.RegisterSchedule(Every("daily-skip", "0 3 * * *", missed: ScheduleMissedRuns.Skip));
        var cron = ScheduleCron.Parse("0 3 * * *");
        var first = cron.Next(q.Now().AddDays(-3))!.Value;
        await SetNextFireAsync(q, "daily-skip", first);

        q.FireDueSchedules();
        var s = q.GetSchedule("daily-skip")!;
        Assert.Empty(FiresOf(q, "daily-skip"));
        Assert.True(s.NextFireAt > s.ReadAt, "the next fire is in the future");
        Assert.Equal(3, s.MissedCount);
        Assert.Equal(first, s.LastMissedAt);
        var notice = Assert.Single(q.List(new TaskFilter { Types = [Notices.DefaultType] }));
        Assert.Equal($"pq.notice:missed:{ScheduleNames.FireKey("daily-skip", first)}", notice.Key);
        Assert.Equal("FireMissed", (string?)notice.Data["event"]);
        Assert.Equal("daily-skip", (string?)notice.Data["schedule"]);
        Assert.Equal(3, (int?)notice.Data["count"]);
        Assert.Contains("not run", (string?)notice.Data["message"]);
    }

    [BackendFact]
    public async Task Missed_runs_run_once_fires_the_latest_missed_time_once()
    {
        var q = Open();
        q.RegisterSchedule(Every("daily-once", "0 3 * * *", missed: ScheduleMissedRuns.RunOnce));
        var cron = ScheduleCron.Parse("0 3 * * *");
        var first = cron.Next(q.Now().AddDays(-3))!.Value;
        await SetNextFireAsync(q, "daily-once", first);

        q.FireDueSchedules();
        q.FireDueSchedules();
        var fire = Assert.Single(FiresOf(q, "daily-once"));
        Assert.Equal(ScheduleNames.FireKey("daily-once", first.AddDays(2)), fire.Key);
        var s = q.GetSchedule("daily-once")!;
        Assert.Equal(2, s.MissedCount);
        Assert.Equal(fire.Key, s.LastFireKey);
        Assert.True(s.NextFireAt > s.ReadAt);
        var notice = Assert.Single(q.List(new TaskFilter { Types = [Notices.DefaultType] }));
        Assert.Equal(fire.Key, (string?)notice.Data["key"]);
    }

    [BackendFact]
    public async Task Overlap_skip_fires_nothing_while_the_previous_fire_is_unfinished_records_the_skip_and_a_notice()
    {
        var q = Open();
        q.RegisterSchedule(Every("single", overlap: ScheduleOverlap.Skip));
        var due = Second(q).AddSeconds(-3);
        await SetNextFireAsync(q, "single", due);

        q.FireDueSchedules();
        var first = Assert.Single(FiresOf(q, "single"));
        Assert.Equal(ScheduleNames.FireKey("single", due), first.Key);
        var s = q.GetSchedule("single")!;
        Assert.True(s.SkipCount >= 2, $"the fires after {due:O} are skipped, got {s.SkipCount}");
        Assert.NotNull(s.LastSkipAt);
        var notices = q.List(new TaskFilter { Types = [Notices.DefaultType] });
        var skipped = Assert.Single(notices, n => n.Key == $"pq.notice:skipped:{ScheduleNames.FireKey("single", due.AddSeconds(1))}");
        Assert.Equal("FireSkipped", (string?)skipped.Data["event"]);
        Assert.Equal(first.Key, (string?)skipped.Data["key"]);
        Assert.Equal("single", (string?)skipped.Data["schedule"]);
        Assert.Equal(s.SkipCount, notices.Count);

        // Once the previous fire's task has finished, the schedule fires again.
        q[first.Key].ForceFinish();
        await SetNextFireAsync(q, "single", Second(q).AddSeconds(-1));
        q.FireDueSchedules();
        Assert.Equal(2, FiresOf(q, "single").Count);
    }

    [BackendFact]
    public async Task Notices_are_off_when_notice_type_is_empty()
    {
        var q = Open(c => c.NoticeType = "");
        q.RegisterSchedule(Every("quiet", "0 3 * * *", missed: ScheduleMissedRuns.Skip));
        await SetNextFireAsync(q, "quiet", ScheduleCron.Parse("0 3 * * *").Next(q.Now().AddDays(-3))!.Value);
        q.FireDueSchedules();
        Assert.Equal(3, q.GetSchedule("quiet")!.MissedCount);
        Assert.Empty(q.List());
    }

    [BackendFact]
    public async Task A_suspended_schedule_fires_nothing_and_resumes_from_now()
    {
        var q = Open();
        q.RegisterSchedule(Every("pausable"));
        Assert.True(q.SuspendSchedule("pausable").Paused);
        await SetNextFireAsync(q, "pausable", Second(q).AddSeconds(-3));
        q.FireDueSchedules();
        Assert.Empty(FiresOf(q, "pausable"));
        Assert.True(q.SuspendSchedule("pausable").Paused); // again: no change

        var resumed = q.ResumeSchedule("pausable");
        Assert.False(resumed.Paused);
        Assert.True(resumed.NextFireAt > resumed.UpdatedAt.AddMilliseconds(-1), "the next fire comes after the resume");
        Assert.Equal(0, resumed.MissedCount);
        Assert.Throws<ScheduleNotFoundException>(() => q.ResumeSchedule("nope"));

        await SetNextFireAsync(q, "pausable", Second(q).AddSeconds(-1));
        q.FireDueSchedules();
        Assert.NotEmpty(FiresOf(q, "pausable"));
    }

    [BackendFact]
    public void A_queue_whose_schedules_table_is_missing_has_no_schedules_and_Initialize_makes_it_again()
    {
        var q = Open();
        q.RegisterSchedule(Every("kept"));
        new StoreHook(q).Sql($"DROP TABLE \"{q.Config.Table}_schedules\"");
        Assert.Empty(q.ListSchedules());
        Assert.Null(q.FireDueSchedules());   // a worker's firer finds nothing to fire, and no error
        q.Initialize();
        Assert.Empty(q.ListSchedules());
        q.RegisterSchedule(Every("again"));
        Assert.Single(q.ListSchedules());
    }
}
