using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// The worker-session rows of every backend (the <c>&lt;table&gt;_workers</c> table): registration, beats,
/// stop requests, removal, death and cleanup, and queues created before the table existed. Written once,
/// run per backend like <see cref="QueueConformance"/>.
/// </summary>
public abstract class WorkerSessionConformance(IBackendTarget target) : BackendSuite(target)
{

    private static WorkerBeat Session(string id, int running = 0, long aliveMs = 60_000, long? startedAt = null) =>
        new(id, "host-a", 4242, 3, running, aliveMs, startedAt);

    private static WorkerSessionInfo Listed(Queue q, string id) => Assert.Single(q.ListWorkers(), w => w.Id == id);

    [BackendFact]
    public async Task A_registered_session_is_listed_alive_with_its_host_pid_and_processors_and_its_id_cannot_be_taken_again()
    {
        var q = Open();
        var id = Queue.NewWorkerId();
        Assert.Matches("^[0-9a-f]{12}$", id);
        var started = await q.RegisterWorkerAsync(Session(id));
        Assert.NotNull(started);
        Assert.Null(await q.RegisterWorkerAsync(Session(id) with { Host = "host-b" }));

        var w = Assert.Single(q.ListWorkers());
        Assert.Equal(id, w.Id);
        Assert.Equal("host-a", w.Host);
        Assert.Equal(4242, w.Pid);
        Assert.Equal(3, w.Processors);
        Assert.Equal(0, w.Running);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(started!.Value), w.StartedAt);
        Assert.Equal(w.StartedAt, w.LastBeatAt);
        Assert.Equal(w.LastBeatAt.AddMinutes(1), w.AliveUntil);
        Assert.False(w.StopRequested);
        Assert.Equal(WorkerState.Alive, w.State);
        Assert.True(w.IsAlive);
        Assert.True(w.ReadAt >= w.StartedAt);
        Assert.InRange(w.StartedAt, q.Now().AddMinutes(-1), q.Now());
    }

    [BackendFact]
    public async Task A_beat_records_the_running_count_and_time_and_reports_a_stop_request_once_asked()
    {
        var q = Open();
        var id = Queue.NewWorkerId();
        var started = await q.RegisterWorkerAsync(Session(id));
        Eventually.True(() => q.Now() > DateTimeOffset.FromUnixTimeMilliseconds(started!.Value), "the database clock to move on");

        Assert.False(await q.BeatWorkerAsync(Session(id, running: 2, startedAt: started)));
        var beaten = Listed(q, id);
        Assert.Equal(2, beaten.Running);
        Assert.True(beaten.LastBeatAt > beaten.StartedAt);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(started!.Value), beaten.StartedAt);
        Assert.Equal(beaten.LastBeatAt.AddMinutes(1), beaten.AliveUntil);

        // Ids are matched however the user typed them (case, surrounding blanks).
        var asked = q.RequestWorkerStop(" " + id.ToUpperInvariant() + " ");
        Assert.NotNull(asked);
        Assert.Equal(id, asked.Id);
        Assert.True(asked.StopRequested);
        Assert.Equal(WorkerState.Stopping, asked.State);
        Assert.True(asked.IsAlive);

        Assert.True(await q.BeatWorkerAsync(Session(id, running: 1, startedAt: started)));
        Assert.True(await q.BeatWorkerAsync(Session(id, running: 0, startedAt: started)));  // it stays asked
        Assert.Equal(WorkerState.Stopping, Listed(q, id).State);
        Assert.NotNull(q.RequestWorkerStop(id));                                             // asking twice is harmless
    }

    [BackendFact]
    public void A_stop_request_for_an_unknown_session_finds_nothing_and_a_blank_id_is_refused()
    {
        var q = Open();
        Assert.Null(q.RequestWorkerStop("000000000000"));
        Assert.Throws<ArgumentException>(() => q.RequestWorkerStop(" "));
        Assert.Empty(q.ListWorkers());
    }

    [BackendFact]
    public async Task Remove_deletes_the_row_and_a_later_beat_records_it_again_with_its_first_start()
    {
        var q = Open();
        var id = Queue.NewWorkerId();
        var other = Queue.NewWorkerId();
        var started = await q.RegisterWorkerAsync(Session(id));
        await q.RegisterWorkerAsync(Session(other));
        await q.RemoveWorkerAsync(id);
        Assert.Equal([other], q.ListWorkers().Select(w => w.Id));
        await q.RemoveWorkerAsync(id);   // gone already: nothing happens

        // A worker whose row was cleaned up while it could not beat (a long database outage) comes back.
        Assert.False(await q.BeatWorkerAsync(Session(id, running: 1, startedAt: started)));
        var back = Listed(q, id);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(started!.Value), back.StartedAt);
        Assert.Equal(1, back.Running);
        Assert.False(back.StopRequested);
    }

    [BackendFact]
    public async Task A_session_without_a_beat_for_its_alive_time_is_dead_and_cleanup_deletes_it_after_retention()
    {
        var q = Open(c => c.RetentionTime = TimeSpan.Zero);
        var keepsDeadOnes = OpenAnother(q, c => c.RetentionTime = TimeSpan.FromHours(1));
        var dead = Queue.NewWorkerId();
        var alive = Queue.NewWorkerId();
        await q.RegisterWorkerAsync(Session(dead, aliveMs: 200));
        await q.RegisterWorkerAsync(Session(alive, aliveMs: 600_000));

        Eventually.True(() => Listed(q, dead).State == WorkerState.Dead, "the session's alive time to run out");
        var d = Listed(q, dead);
        Assert.False(d.IsAlive);
        Assert.True(d.AliveUntil <= d.ReadAt);
        Assert.Equal(WorkerState.Alive, Listed(q, alive).State);
        Assert.NotNull(q.RequestWorkerStop(dead));   // found (and flagged), though nothing will read it
        Assert.Equal(WorkerState.Dead, Listed(q, dead).State);

        Assert.Equal(0, keepsDeadOnes.Cleanup());    // the count is of tasks; the dead session is within retention
        Assert.Equal(2, q.ListWorkers().Count);
        Assert.Equal(0, q.Cleanup());
        Assert.Equal([alive], q.ListWorkers().Select(w => w.Id));
    }

    [BackendFact]
    public async Task Initialize_keeps_the_sessions_and_force_drops_them()
    {
        var q = Open();
        var id = Queue.NewWorkerId();
        await q.RegisterWorkerAsync(Session(id));
        q.Initialize();
        Assert.Single(q.ListWorkers());
        q.Initialize(force: true);
        Assert.Empty(q.ListWorkers());
        Assert.NotNull(await q.RegisterWorkerAsync(Session(id)));
    }

    [BackendFact]
    public async Task A_queue_created_before_sessions_existed_gets_its_sessions_table_when_a_worker_registers_or_on_initialize()
    {
        var q = Open();
        var hook = new StoreHook(q);
        var table = q.Config.Table;
        void MakeVersion1()
        {
            hook.Sql($"DROP TABLE \"{table}_workers\"");
            hook.Sql($"UPDATE perfectqueue_schema SET version = 1 WHERE table_name = '{table}'");
        }
        int Version() => hook.Sql($"SELECT version FROM perfectqueue_schema WHERE table_name = '{table}'");

        MakeVersion1();
        Assert.Equal(1, Version());
        // Without the table there are no sessions, and nothing fails.
        Assert.Empty(q.ListWorkers());
        Assert.Null(q.RequestWorkerStop("000000000000"));
        await q.RemoveWorkerAsync("000000000000");
        Assert.Equal(0, q.Cleanup());

        var id = Queue.NewWorkerId();
        Assert.NotNull(await q.RegisterWorkerAsync(Session(id)));
        Assert.Equal(id, Assert.Single(q.ListWorkers()).Id);
        Assert.Equal(SchemaUpgrade.Version, Version());

        MakeVersion1();
        q.Initialize();
        Assert.Equal(SchemaUpgrade.Version, Version());
        Assert.Equal(0, hook.Sql($"SELECT COUNT(*) FROM \"{table}_workers\""));
    }

    [BackendFact]
    public async Task Sessions_of_a_queue_whose_table_does_not_exist_are_QueueNotInitialized()
    {
        var config = Target.NewConfig();
        config.AutoInitialize = false;
        using var q = Queue.Open(config);
        Assert.Contains("Initialize-PQQueue", Assert.Throws<QueueNotInitializedException>(() => q.ListWorkers()).Message);
        Assert.Throws<QueueNotInitializedException>(() => q.RequestWorkerStop("000000000000"));
        await Assert.ThrowsAsync<QueueNotInitializedException>(() => q.RegisterWorkerAsync(Session(Queue.NewWorkerId())));
        Assert.False(q.IsInitialized());   // registering created nothing
    }
}
