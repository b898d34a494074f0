using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Schema version 3 on every backend (issue 10): a task's execution limit stored with it (Submit-PQTask -Timeout)
/// and read back by every read, a worker session's processor type, and tables of older versions brought up to
/// version 3 by the first command that uses them, keeping everything stored.
/// </summary>
public abstract class SchemaVersion3Conformance(IBackendTarget target) : BackendSuite(target)
{
    private static SubmitOptions Limit(double seconds) => new() { Timeout = TimeSpan.FromSeconds(seconds) };

    private static WorkerBeat Session(string id, string? processorType = null, long? startedAt = null)
    {
        var beat = new WorkerBeat(id, "host-a", 4242, 2, 0, 60_000, startedAt);
        return processorType is null ? beat : beat with { ProcessorType = processorType };
    }

    [BackendFact]
    public void A_task_submitted_without_a_timeout_has_none_in_every_read()
    {
        var q = Open();
        q.Submit("plain", "t");
        Assert.Null(q["plain"].GetInfo().ExecutionTimeout);
        Assert.Null(Assert.Single(q.List()).ExecutionTimeout);
        var task = q.Poll()!;
        Assert.Null(task.Timeout);
        Assert.Null(q["plain"].GetInfo().ExecutionTimeout); // leasing does not touch it
    }

    [BackendFact]
    public async Task The_timeout_of_each_task_of_a_batch_is_stored_and_returned_by_acquire_get_list_and_get_by_ids()
    {
        var q = Open();
        var expected = new Dictionary<string, TimeSpan?>
        {
            ["half-minute"] = TimeSpan.FromSeconds(30),
            ["none"] = null,
            ["fraction"] = TimeSpan.FromMilliseconds(1500),
            ["a-year"] = SubmitOptions.MaxTimeout,
            ["tiny"] = TimeSpan.FromTicks(1), // kept as one whole millisecond, never rounded down to none
        };
        var stored = q.SubmitMany(expected.Select(e => new TaskSubmission(e.Key, "t", null, e.Value is { } t ? new SubmitOptions { Timeout = t } : null)));
        Assert.All(stored, Assert.True);
        expected["tiny"] = TimeSpan.FromMilliseconds(1);

        Assert.Equal(expected, q.List().ToDictionary(t => t.Key, t => t.ExecutionTimeout));
        foreach (var (key, timeout) in expected) Assert.Equal(timeout, q[key].GetInfo().ExecutionTimeout);

        var acquired = q.PollMulti(10);
        Assert.Equal(expected.Count, acquired.Count);
        Assert.Equal(expected, acquired.ToDictionary(t => t.Key, t => t.Timeout));

        var byId = await q.Store.GetByIdsAsync(acquired.Select(t => t.Lease.Id).ToList(), default);
        Assert.Equal(expected.Values.Select(v => v is { } t ? (long?)t.TotalMilliseconds : null).Order(), byId.Select(r => r.TimeoutMs).Order());
    }

    [BackendFact]
    public void A_resubmit_that_reuses_a_key_after_retention_sets_the_new_timeout_or_none()
    {
        var q = Open(c => c.RetentionTime = TimeSpan.Zero);
        q.Submit("again", "t", null, Limit(30));
        q.Poll()!.Finish();

        q.Submit("again", "t", null, Limit(90));                       // the finished row's key is free at once
        Assert.Equal(TimeSpan.FromSeconds(90), q["again"].GetInfo().ExecutionTimeout);
        var second = q.Poll()!;
        Assert.Equal(TimeSpan.FromSeconds(90), second.Timeout);
        second.Finish();

        q.Submit("again", "t");                                          // and back to no limit
        Assert.Null(q["again"].GetInfo().ExecutionTimeout);
        Assert.Null(q.Poll()!.Timeout);
    }

    [BackendFact]
    public void A_timeout_of_zero_below_zero_or_above_a_year_is_refused_and_nothing_of_its_batch_is_stored()
    {
        var q = Open();
        foreach (var bad in new[] { TimeSpan.Zero, TimeSpan.FromSeconds(-5), SubmitOptions.MaxTimeout + TimeSpan.FromMilliseconds(1) })
        {
            var e = Assert.Throws<ArgumentException>(() => q.SubmitMany(
            [
                new TaskSubmission("fine", "t", null, Limit(30)),
                new TaskSubmission("bad", "t", null, new SubmitOptions { Timeout = bad }),
            ]));
            Assert.Contains("Task 'bad': Timeout (the execution limit) must be more than zero and at most 365 days", e.Message);
            Assert.Contains("leave it out for no limit", e.Message);
            Assert.Empty(q.List());
        }
    }

    [BackendFact]
    public async Task The_processor_type_round_trips_through_register_beat_list_and_stop_and_a_null_reads_as_thread()
    {
        var q = Open();
        var child = Queue.NewWorkerId();
        var plain = Queue.NewWorkerId();
        var started = await q.RegisterWorkerAsync(Session(child, "process"));
        await q.RegisterWorkerAsync(Session(plain));                    // WorkerBeat's default
        Assert.Equal("process", q.ListWorkers().Single(w => w.Id == child).ProcessorType);
        Assert.Equal("thread", q.ListWorkers().Single(w => w.Id == plain).ProcessorType);

        await q.BeatWorkerAsync(Session(child, "thread", started));     // a beat writes it too
        Assert.Equal("thread", q.ListWorkers().Single(w => w.Id == child).ProcessorType);
        await q.BeatWorkerAsync(Session(child, "process", started));
        Assert.Equal("process", q.RequestWorkerStop(child)!.ProcessorType);

        // A row an older worker wrote has no processor type: it ran threads.
        new StoreHook(q).Sql($"UPDATE \"{q.Config.Table}_workers\" SET processor_type = NULL WHERE id = '{plain}'");
        Assert.Equal("thread", q.ListWorkers().Single(w => w.Id == plain).ProcessorType);

        // A beat that finds its row gone writes it again with its processor type.
        await q.RemoveWorkerAsync(child);
        await q.BeatWorkerAsync(Session(child, "process", started));
        Assert.Equal("process", q.ListWorkers().Single(w => w.Id == child).ProcessorType);
    }

    // ---- tables of older versions ----

    private static int Version(StoreHook hook, string table) => hook.Sql($"SELECT version FROM perfectqueue_schema WHERE table_name = '{table}'");

    private static bool HasColumn(Queue q, string table, string column) => new StoreHook(q).Sql(q.Store switch
    {
        Storage.Sqlite.SqliteQueueStore => $"SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = '{column}'",
        Storage.Postgres.PostgresQueueStore => $"SELECT COUNT(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'",
        Storage.MySql.MySqlQueueStore => $"SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}' AND column_name = '{column}'",
        _ => $"SELECT CASE WHEN COL_LENGTH(N'[{table}]', N'{column}') IS NULL THEN 0 ELSE 1 END",
    }) == 1;

    /// <summary>Turns <paramref name="q"/>'s tables into what version 2 created: no timeout_ms, no processor_type.</summary>
    private static void MakeVersion2(Queue q)
    {
        var hook = new StoreHook(q);
        var table = q.Config.Table;
        hook.Sql($"ALTER TABLE \"{table}\" DROP COLUMN {SchemaUpgrade.TimeoutColumn}");
        hook.Sql($"ALTER TABLE \"{table}_workers\" DROP COLUMN {SchemaUpgrade.ProcessorTypeColumn}");
        hook.Sql($"UPDATE perfectqueue_schema SET version = 2 WHERE table_name = '{table}'");
        Assert.False(HasColumn(q, table, SchemaUpgrade.TimeoutColumn));
        Assert.False(HasColumn(q, table + "_workers", SchemaUpgrade.ProcessorTypeColumn));
    }

    [BackendFact]
    public async Task A_version_2_queue_gains_the_columns_at_the_first_command_of_any_kind_and_keeps_everything_stored()
    {
        var firstCommands = new (string Name, Func<Queue, Task> Run)[]
        {
            ("list", q => Task.FromResult(q.List())),
            ("get", q => Task.FromResult(q["waiting"].GetInfo())),
            ("submit", q => Task.FromResult(q.Submit("after", "t", null, Limit(45)))),
            ("poll", q => Task.FromResult(q.Poll())),
            ("list workers", q => Task.FromResult(q.ListWorkers())),
            ("register", q => q.RegisterWorkerAsync(Session(Queue.NewWorkerId(), "process"))),
            ("initialize", q => { q.Initialize(); return Task.CompletedTask; }),
        };
        foreach (var (name, run) in firstCommands)
        {
            var old = Open();
            var table = old.Config.Table;
            old.Submit("waiting", "t", new { n = 1 });
            old.Submit("scheduled", "t", new { n = 2 }, new SubmitOptions { User = "team-a", MaxRunning = 2, Delay = TimeSpan.FromHours(1) });
            old.Submit("finished", "t", new { n = 3 });
            var worker = Queue.NewWorkerId();
            await old.RegisterWorkerAsync(Session(worker, "process"));
            MakeVersion2(old);
            // Rows the older version wrote: one finished with its message (written without the new column).
            var hook = new StoreHook(old);
            hook.Sql($"UPDATE \"{table}\" SET finished_at = created_at, outcome = 'Succeeded', message = 'done', purge_at = created_at + 86400000, due_at = NULL WHERE task_key = 'finished'");

            var q = OpenAnother(old); // a newer module's first command on the older table
            await run(q);

            Assert.True(HasColumn(q, table, SchemaUpgrade.TimeoutColumn), name);
            Assert.True(HasColumn(q, table + "_workers", SchemaUpgrade.ProcessorTypeColumn), name);
            Assert.Equal(SchemaUpgrade.Version, Version(hook, table));

            var tasks = q.List().ToDictionary(t => t.Key);
            Assert.Equal(1, (int)tasks["waiting"].Data["n"]!);
            Assert.Equal(TaskState.Scheduled, tasks["scheduled"].Status);
            Assert.Equal("team-a", tasks["scheduled"].User);
            Assert.Equal(2, tasks["scheduled"].MaxRunning);
            Assert.Equal(TaskOutcome.Succeeded, tasks["finished"].Outcome);
            Assert.Equal("done", tasks["finished"].Message);
            Assert.All(tasks.Values.Where(t => t.Key != "after"), t => Assert.Null(t.ExecutionTimeout));
            if (name == "submit") Assert.Equal(TimeSpan.FromSeconds(45), tasks["after"].ExecutionTimeout);
            Assert.Equal("thread", q.ListWorkers().Single(w => w.Id == worker).ProcessorType); // written before the column existed

            // And everything works on it afterwards, from the upgraded client and from the old one's own store.
            q.Submit("new-" + name.Replace(' ', '-'), "t", null, Limit(20));
            Assert.Equal(TimeSpan.FromSeconds(20), q["new-" + name.Replace(' ', '-')].GetInfo().ExecutionTimeout);
            Assert.NotNull(old.Poll());
        }
    }

    [BackendFact]
    public void A_queue_made_by_a_newer_version_is_refused_with_a_clear_error_and_left_as_it_is()
    {
        var newer = Open();
        var table = newer.Config.Table;
        newer.Submit("kept", "t", new { n = 1 });
        var hook = new StoreHook(newer);
        hook.Sql($"UPDATE perfectqueue_schema SET version = {SchemaUpgrade.Version + 1} WHERE table_name = '{table}'");

        var q = OpenAnother(newer); // this build's first command on the newer table
        foreach (var run in new Action[] { () => q.List(), () => q.Submit("new", "t"), () => q.Poll(), () => q.Initialize() })
        {
            var e = Assert.Throws<QueueNotInitializedException>(run);
            Assert.Contains($"has schema version {SchemaUpgrade.Version + 1}, made by a newer PerfectQueue; this one knows versions up to {SchemaUpgrade.Version}", e.Message);
            Assert.Contains("Update the PerfectQueue module", e.Message);
        }
        Assert.Equal(SchemaUpgrade.Version + 1, Version(hook, table)); // untouched
        hook.Sql($"UPDATE perfectqueue_schema SET version = {SchemaUpgrade.Version} WHERE table_name = '{table}'");
        Assert.Equal("kept", Assert.Single(OpenAnother(newer).List()).Key); // nothing stored was lost
    }

    [BackendFact]
    public async Task A_version_1_queue_gains_the_timeout_column_and_stays_version_1_until_a_worker_creates_its_sessions_table()
    {
        var old = Open();
        var table = old.Config.Table;
        var hook = new StoreHook(old);
        old.Submit("v1-task", "t", new { kept = true });
        hook.Sql($"DROP TABLE \"{table}_workers\"");
        hook.Sql($"ALTER TABLE \"{table}\" DROP COLUMN {SchemaUpgrade.TimeoutColumn}");
        hook.Sql($"UPDATE perfectqueue_schema SET version = 1 WHERE table_name = '{table}'");

        var q = OpenAnother(old);
        Assert.Null(Assert.Single(q.List()).ExecutionTimeout);
        Assert.True(HasColumn(q, table, SchemaUpgrade.TimeoutColumn));
        Assert.Equal(1, Version(hook, table));                       // no sessions table yet: still version 1's objects only
        Assert.Empty(q.ListWorkers());

        var id = Queue.NewWorkerId();
        Assert.NotNull(await q.RegisterWorkerAsync(Session(id, "process")));
        Assert.Equal("process", Assert.Single(q.ListWorkers()).ProcessorType);
        Assert.Equal(SchemaUpgrade.Version, Version(hook, table));
        Assert.True((bool)q["v1-task"].GetInfo().Data["kept"]!);
    }
}
