using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Re-run and delete of finished tasks (Queue.Restart / Queue.Remove: Restart-PQTask, Remove-PQTask) and the
/// everyday listing filters (outcomes, key wildcards, newest), on every backend through its Suites file.
/// </summary>
public abstract class FinishedTaskConformance(IBackendTarget target) : BackendSuite(target)
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(1500);

    private static void FinishAs(Queue q, string key, TaskOutcome outcome, string message)
    {
        var task = q.Poll()!;
        Assert.Equal(key, task.Key);
        task.Finish(outcome, message);
    }

    // ---- restart ----

    [BackendFact]
    public void Restart_makes_a_failed_task_due_again_as_a_new_first_attempt_with_its_data()
    {
        var q = Open();
        q.Submit("r1", "report", new { day = "2026-12-01" }, new SubmitOptions { User = "team-a", MaxRunning = 3 });
        var first = q.Poll()!;
        Assert.True(first.Retry("boom", TimeSpan.Zero));
        FinishAs(q, "r1", TaskOutcome.Failed, "gave up: boom");
        Assert.Equal(2, q["r1"].GetInfo().Attempts);

        q.Restart("r1");

        var info = q["r1"].GetInfo();
        Assert.Equal(TaskState.Waiting, info.Status);
        Assert.Equal(0, info.Attempts);
        Assert.Null(info.Outcome);
        Assert.Null(info.Message);
        Assert.Null(info.FinishedAt);
        Assert.False(info.CancelRequested);
        Assert.Equal("report", info.Type);
        Assert.Equal("team-a", info.User);
        Assert.Equal(3, info.MaxRunning);
        Assert.Equal("2026-12-01", (string)info.Data["day"]!);
        var again = q.Poll()!;
        Assert.Equal("r1", again.Key);
        Assert.Equal(1, again.Attempt);
        again.Finish();
        Assert.Equal(TaskOutcome.Succeeded, q["r1"].GetInfo().Outcome);
    }

    [BackendFact]
    public void Restart_of_a_cancelled_task_clears_its_cancel_flag_so_it_runs()
    {
        var q = Open();
        q.Submit("c1", "t");
        Assert.Equal(TaskState.Finished, q["c1"].CancelRequest()); // nobody held it: finished as Cancelled at once
        Assert.Equal(TaskOutcome.Cancelled, q["c1"].GetInfo().Outcome);

        q.Restart("c1");

        Assert.False(q["c1"].GetInfo().CancelRequested);
        var task = q.Poll()!; // a cancel flag left behind would make the acquire finish it as Cancelled instead
        Assert.Equal("c1", task.Key);
        Assert.False(task.IsCancellationRequested);
    }

    [BackendFact]
    public void Restart_at_a_run_at_or_after_a_delay_schedules_the_task()
    {
        var q = Open();
        q.Submit("s1", "t");
        q.Submit("s2", "t");
        FinishAs(q, "s1", TaskOutcome.Succeeded, "ok");
        FinishAs(q, "s2", TaskOutcome.Succeeded, "ok");
        var at = q.Now().AddMinutes(10);
        q.Restart("s1", runAt: at);
        q.Restart("s2", delay: TimeSpan.FromMinutes(5));
        var s1 = q["s1"].GetInfo();
        Assert.Equal(TaskState.Scheduled, s1.Status);
        Assert.True((s1.Timeout!.Value - at).Duration() < TimeSpan.FromSeconds(1));
        Assert.Equal(TaskState.Scheduled, q["s2"].GetInfo().Status);
        Assert.Null(q.Poll());
        Assert.Throws<ArgumentException>(() => q.Restart("s1", runAt: at, delay: TimeSpan.FromSeconds(1)));
        Assert.Throws<ArgumentException>(() => q.Restart("s1", delay: TimeSpan.FromSeconds(-1)));
    }

    [BackendFact]
    public void Restart_and_remove_refuse_live_tasks_and_leave_them_as_they_were()
    {
        var q = Open();
        q.Submit("waiting", "t");
        q.Submit("running", "t");
        q.Submit("scheduled", "t", options: new SubmitOptions { Delay = TimeSpan.FromMinutes(5) });
        var held = q.Poll()!;
        Assert.Equal("waiting", held.Key); // due order: submitted first
        q.Submit("idle", "t");
        var other = q.Poll()!;
        Assert.Equal("running", other.Key);
        Assert.Equal(TaskState.CancelRequested, q["running"].CancelRequest());

        foreach (var key in new[] { "waiting", "running", "scheduled", "idle" })
        {
            var before = q[key].GetInfo();
            var e = Assert.Throws<NotFinishedException>(() => q.Restart(key));
            Assert.Equal(key, e.Key);
            Assert.Contains("Request-PQCancel", e.Message);
            Assert.Throws<NotFinishedException>(() => q.Remove(key));
            var after = q[key].GetInfo();
            Assert.Equal(before.Status, after.Status);
            Assert.Equal(before.Attempts, after.Attempts);
            Assert.Equal(before.CancelRequested, after.CancelRequested);
        }
        held.Finish(); // the holders' leases were not touched
        other.Finish(TaskOutcome.Cancelled, "stopped");
    }

    [BackendFact]
    public void Restart_and_remove_of_a_missing_key_are_not_found()
    {
        var q = Open();
        var e = Assert.Throws<NotFoundException>(() => q.Restart("nope"));
        Assert.Equal("nope", e.Key);
        Assert.Throws<NotFoundException>(() => q.Remove("nope"));
    }

    [BackendFact]
    public void A_finished_task_past_its_retention_is_gone_for_restart_and_remove_as_for_listing()
    {
        var q = Open(c => c.RetentionTime = Short);
        q.Submit("old", "t");
        FinishAs(q, "old", TaskOutcome.Failed, "x");
        Eventually.True(() => !q["old"].Exists(), "the finished task's retention to end");
        Assert.Throws<NotFoundException>(() => q.Restart("old"));
        Assert.Throws<NotFoundException>(() => q.Remove("old"));
        Assert.Empty(q.List());
    }

    [BackendFact]
    public void A_holder_of_a_force_finished_then_restarted_task_is_preempted()
    {
        var q = Open();
        q.Submit("f1", "t");
        var stale = q.Poll()!;
        q["f1"].ForceFinish("stuck");
        q.Restart("f1");
        Assert.Throws<PreemptedException>(() => stale.Finish());
        var fresh = q.Poll()!;
        Assert.Equal(1, fresh.Attempt);
        fresh.Finish();
    }

    // ---- remove ----

    [BackendFact]
    public void Remove_deletes_a_finished_task_and_frees_its_key_before_retention()
    {
        var q = Open(); // the default retention: a day
        q.Submit("d1", "t", new { v = 1 });
        q.Submit("keep", "t");
        FinishAs(q, "d1", TaskOutcome.Failed, "x");
        Assert.Throws<IdempotentAlreadyExistsException>(() => q.Submit("d1", "t"));

        q.Remove("d1");

        Assert.False(q["d1"].Exists());
        Assert.Equal(["keep"], q.List().Select(t => t.Key).ToArray());
        q.Submit("d1", "t2", new { v = 2 });
        var info = q["d1"].GetInfo();
        Assert.Equal(TaskState.Waiting, info.Status);
        Assert.Equal(2, (int)info.Data["v"]!);
        Assert.Throws<NotFoundException>(() => { q.Remove("keep-not"); });
    }

    // ---- listing filters ----

    [BackendFact]
    public void Outcome_filters_finished_tasks_and_combines_with_the_other_filters()
    {
        var q = Open();
        foreach (var (key, outcome) in new[] { ("ok", TaskOutcome.Succeeded), ("bad", TaskOutcome.Failed), ("bad2", TaskOutcome.Failed), ("stop", TaskOutcome.Cancelled) })
        {
            q.Submit(key, key == "bad2" ? "other" : "t");
            FinishAs(q, key, outcome, "m");
        }
        q.Submit("live", "t");
        string[] Keys(TaskFilter f) => q.List(f).Select(t => t.Key).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["bad", "bad2"], Keys(new TaskFilter { Outcomes = [TaskOutcome.Failed] }));
        Assert.Equal(["bad", "bad2", "stop"], Keys(new TaskFilter { Outcomes = [TaskOutcome.Failed, TaskOutcome.Cancelled] }));
        Assert.Equal(["bad"], Keys(new TaskFilter { Outcomes = [TaskOutcome.Failed], Types = ["t"] }));
        Assert.Empty(Keys(new TaskFilter { Outcomes = [TaskOutcome.Failed], Statuses = [TaskState.Waiting] }));
        Assert.Empty(Keys(new TaskFilter { Outcomes = [TaskOutcome.ForceFinished] }));
    }

    // Keys made of what each backend's matching syntax treats specially: LIKE's % _ [ and escape characters,
    // GLOB's * ? [, and regular expression metacharacters. Each pattern must match exactly what KeyPattern says.
    internal static readonly string[] SpecialKeys =
    [
        "a%b", "a_b", "axb", "axxb", "ab", "A_B", "a!b", "a\\b", "a[1]b", "a1b", "a*b", "a?b", "a.b", "a+b", "a(b)", "a$b", "a^b", "a|b",
        "a{1}b", "a]b", "a-b", "a'b", "backup-1", "backup-22", "Backup-3", "report-7", "rxport-8", "é-1", "日本-2",
    ];

    public static TheoryData<string> Patterns() =>
    [
        "a?b", "a*b", "a`*b", "a`?b", "a`[1`]b", "a[%_]b", "a[!x]b", "a[0-9]b", "a[^]b", "a[-]b", "backup-*", "backup-?", "B*", "*-[0-9]",
        "r[a-z]port-*", "*", "a%b", "a_b", "a\\b", "a.b", "a+b", "a(b)", "a$b", "a|b", "a{1}b", "*]b", "a'b", "?-[0-9]", "a[b-b]",
    ];

    [BackendFact]
    public void Key_wildcards_match_exactly_what_PowerShell_wildcards_do_with_literal_special_characters()
    {
        var q = Open();
        q.SubmitMany(SpecialKeys.Select(k => new TaskSubmission(k, "t")));
        var failures = new List<string>();
        foreach (var pattern in Patterns())
        {
            var expected = SpecialKeys.Where(KeyPattern.Parse(pattern).IsMatch).Order(StringComparer.Ordinal).ToArray();
            var got = q.List(new TaskFilter { KeyPatterns = [pattern] }).Select(t => t.Key).Order(StringComparer.Ordinal).ToArray();
            if (!expected.SequenceEqual(got)) failures.Add($"{pattern}: expected [{string.Join(" ", expected)}], got [{string.Join(" ", got)}]");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [BackendFact]
    public void Exact_keys_and_wildcards_together_match_either_and_a_bad_pattern_says_how_to_write_it()
    {
        var q = Open();
        q.SubmitMany([new("exact", "t"), new("backup-1", "t"), new("backup-2", "t"), new("other", "t")]);
        var keys = q.List(new TaskFilter { Keys = ["exact"], KeyPatterns = ["backup-*"] }).Select(t => t.Key).ToArray();
        Assert.Equal(["exact", "backup-1", "backup-2"], keys);
        Assert.Equal(["backup-1"], q.List(new TaskFilter { KeyPatterns = ["backup-*"], First = 1 }).Select(t => t.Key).ToArray());
        var e = Assert.Throws<ArgumentException>(() => q.List(new TaskFilter { KeyPatterns = ["backup-[1"] }));
        Assert.Contains("`[", e.Message);
    }

    [BackendFact]
    public void Newest_lists_the_most_recently_created_tasks_newest_first()
    {
        var q = Open();
        for (var i = 1; i <= 5; i++) q.Submit($"n{i}", i % 2 == 0 ? "even" : "odd");
        Assert.Equal(["n5", "n4"], q.List(new TaskFilter { Newest = 2 }).Select(t => t.Key).ToArray());
        Assert.Equal(["n5", "n3"], q.List(new TaskFilter { Newest = 2, Types = ["odd"] }).Select(t => t.Key).ToArray());
        Assert.Equal(["n5", "n4", "n3", "n2", "n1"], q.List(new TaskFilter { Newest = 10 }).Select(t => t.Key).ToArray());
        Assert.Empty(q.List(new TaskFilter { Newest = 0 }));
        Assert.Equal(["n1", "n2"], q.List(new TaskFilter { First = 2 }).Select(t => t.Key).ToArray());
        Assert.Throws<ArgumentException>(() => q.List(new TaskFilter { Newest = 2, First = 2 }));
    }
}
