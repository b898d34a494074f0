using PerfectQueue.Storage;
using PerfectQueue.Storage.Postgres;
using PerfectQueue.Storage.Relational;
using PerfectQueue.Storage.Sqlite;
using PerfectQueue.Storage.SqlServer;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>
/// The one schema runner (SchemaMigrator) against a fake dialect that logs every session, statement and recorded
/// version: the order steps run in, what is recorded when, a failure between steps and what the next run does,
/// a newer recorded version, and the step lists of the real backends. The same runner on real databases:
/// Conformance/SchemaMigrationConformance.cs.
/// </summary>
public sealed class SchemaMigratorTests
{
    /// <summary>
    /// A database of one queue table. Transactional (the default): a locked session's changes apply when it
    /// returns and are dropped when it throws, as on PostgreSQL, SQL Server and SQLite; otherwise each statement
    /// applies at once, as DDL does on MySQL.
    /// </summary>
    private sealed class FakeDialect : ISchemaDialect
    {
        public bool TableExists;
        public int? Recorded;
        public bool Transactional = true;
        public readonly List<string> Log = [];
        public Func<SchemaStatement, Exception?> Fail = _ => null;
        /// <summary>Runs inside the next locked session before the work, as another process that got the lock first.</summary>
        public Action? BeforeNextLockedWork;

        public async Task<T> InSessionAsync<T>(bool locked, Func<ISchemaSession, Task<T>> work, CancellationToken ct)
        {
            Log.Add(locked ? "lock" : "look");
            if (locked && BeforeNextLockedWork is { } other)
            {
                BeforeNextLockedWork = null;
                other();
            }
            var session = new Session(this);
            var result = await work(session);
            session.Commit();
            return result;
        }

        public bool IsPermissionError(Exception error) => error is UnauthorizedAccessException;

        private sealed class Session(FakeDialect db) : ISchemaSession
        {
            private bool? _tableExists;
            private int? _recorded;

            public Task<SchemaState> ReadStateAsync(CancellationToken ct) =>
                Task.FromResult(new SchemaState(_tableExists ?? db.TableExists, _recorded ?? db.Recorded));

            public Task RunAsync(SchemaStatement statement, CancellationToken ct)
            {
                if (db.Fail(statement) is { } error) throw error;
                db.Log.Add("run " + statement.Name);
                if (statement.Name == "create_table")
                {
                    if (db.Transactional) _tableExists = true;
                    else db.TableExists = true;
                }
                return Task.CompletedTask;
            }

            public Task RecordVersionAsync(int version, CancellationToken ct)
            {
                db.Log.Add("record " + version);
                if (db.Transactional) _recorded = version;
                else db.Recorded = version;
                return Task.CompletedTask;
            }

            public void Commit()
            {
                if (_tableExists is { } t) db.TableExists = t;
                if (_recorded is { } r) db.Recorded = r;
            }
        }
    }

    private static readonly IReadOnlyList<SchemaStep> Steps =
    [
        new(1, "the task table", [new("create_table", "1a"), new("index", "1b")]),
        new(2, "the sessions table", [new("create_workers", "2a")]),
        new(3, "two columns", [new("add_timeout", "3a"), new("add_type", "3b")]),
    ];

    private static Task<bool> Upgrade(FakeDialect db, IReadOnlyList<SchemaStep>? steps = null) =>
        SchemaMigrator.UpgradeAsync(db, steps ?? Steps, "tasks", "the test database", default);

    private static Task Initialize(FakeDialect db, IReadOnlyList<SchemaStatement>? dropFirst = null) =>
        SchemaMigrator.InitializeAsync(db, Steps, "tasks", "the test database", dropFirst, default);

    [Fact]
    public async Task An_older_table_gets_only_the_missing_steps_in_order_each_recorded_in_its_own_locked_session()
    {
        var db = new FakeDialect { TableExists = true, Recorded = 1 };
        Assert.True(await Upgrade(db));
        Assert.Equal(["look", "lock", "lock", "run create_workers", "record 2", "lock", "run add_timeout", "run add_type", "record 3"], db.Log);
        Assert.Equal(3, db.Recorded);
    }

    [Fact]
    public async Task A_current_table_is_only_looked_at_and_a_missing_one_is_left_to_the_command()
    {
        var current = new FakeDialect { TableExists = true, Recorded = 3 };
        Assert.True(await Upgrade(current));
        Assert.Equal(["look"], current.Log);

        var missing = new FakeDialect();
        Assert.False(await Upgrade(missing));         // the command reports the missing table; nothing is created
        Assert.Equal(["look"], missing.Log);
        Assert.False(missing.TableExists);
    }

    [Fact]
    public async Task Initialize_creates_a_new_queue_step_by_step_and_runs_every_step_again_on_a_current_one_without_lowering_its_version()
    {
        var db = new FakeDialect();
        await Initialize(db);
        Assert.Equal(["look", "lock", "run create_table", "run index", "record 1", "lock", "run create_workers", "record 2",
            "lock", "run add_timeout", "run add_type", "record 3"], db.Log);

        db.Log.Clear();
        await Initialize(db);                          // idempotent steps: what went missing is made again
        Assert.Equal(["look", "lock", "run create_table", "run index", "lock", "run create_workers", "lock", "run add_timeout", "run add_type"], db.Log);
        Assert.Equal(3, db.Recorded);
    }

    [Fact]
    public async Task A_table_whose_row_is_missing_counts_as_version_0_and_one_whose_table_is_missing_too()
    {
        var unrecorded = new FakeDialect { TableExists = true };
        Assert.True(await Upgrade(unrecorded));
        Assert.Contains("run create_table", unrecorded.Log); // every step, each a no-op where its objects exist
        Assert.Equal(3, unrecorded.Recorded);

        var stale = new FakeDialect { Recorded = 3 };  // a row left behind by a table dropped by hand
        await Initialize(stale);
        Assert.Contains("record 1", stale.Log);
        Assert.Equal(3, stale.Recorded);
    }

    [Fact]
    public async Task A_failure_in_a_step_leaves_the_previous_version_recorded_and_the_next_run_resumes_at_the_failed_step()
    {
        var db = new FakeDialect { TableExists = true, Recorded = 1 };
        db.Fail = s => s.Name == "add_type" ? new InvalidOperationException("connection lost") : null;
        await Assert.ThrowsAsync<InvalidOperationException>(() => Upgrade(db));
        Assert.Equal(2, db.Recorded);                  // step 3 rolled back with its session

        db.Fail = _ => null;
        db.Log.Clear();
        Assert.True(await Upgrade(db));
        Assert.Equal(["look", "lock", "lock", "lock", "run add_timeout", "run add_type", "record 3"], db.Log); // steps 1 and 2 are not run again
        Assert.Equal(3, db.Recorded);
    }

    [Fact]
    public async Task Without_transactional_DDL_a_failure_mid_step_leaves_its_first_statements_done_and_unrecorded_so_the_step_runs_again()
    {
        var db = new FakeDialect { TableExists = true, Recorded = 2, Transactional = false };
        db.Fail = s => s.Name == "add_type" ? new InvalidOperationException("server went away") : null;
        await Assert.ThrowsAsync<InvalidOperationException>(() => Upgrade(db));
        Assert.Equal(["look", "lock", "lock", "lock", "run add_timeout"], db.Log);
        Assert.Equal(2, db.Recorded);

        db.Fail = _ => null;
        db.Log.Clear();
        Assert.True(await Upgrade(db));
        Assert.Equal(["look", "lock", "lock", "lock", "run add_timeout", "run add_type", "record 3"], db.Log); // hence: every statement guarded
    }

    [Fact]
    public async Task A_step_another_process_ran_while_this_one_waited_for_the_lock_is_not_run_again()
    {
        var db = new FakeDialect { TableExists = true, Recorded = 1 };
        db.BeforeNextLockedWork = () => db.Recorded = 3;
        Assert.True(await Upgrade(db));
        Assert.DoesNotContain(db.Log, e => e.StartsWith("run ", StringComparison.Ordinal) || e.StartsWith("record ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_newer_recorded_version_is_refused_before_any_lock_and_by_Initialize_but_not_by_a_forced_one()
    {
        var db = new FakeDialect { TableExists = true, Recorded = 4 };
        var e = await Assert.ThrowsAsync<QueueNotInitializedException>(() => Upgrade(db));
        Assert.Contains("The queue table 'tasks' in the test database has schema version 4, made by a newer PerfectQueue; this one knows versions up to 3", e.Message);
        Assert.Contains("nothing was changed", e.Message);
        await Assert.ThrowsAsync<QueueNotInitializedException>(() => Initialize(db));
        Assert.Equal(["look", "look"], db.Log);
        Assert.Equal(4, db.Recorded);

        // Also when it turns newer while this one waits for the lock.
        var racing = new FakeDialect { TableExists = true, Recorded = 2 };
        racing.BeforeNextLockedWork = () => racing.Recorded = 4;
        await Assert.ThrowsAsync<QueueNotInitializedException>(() => Upgrade(racing));
        Assert.DoesNotContain(racing.Log, l => l.StartsWith("run ", StringComparison.Ordinal));

        // -Force drops it first (the drop statements forget its row).
        var forced = new FakeDialect { TableExists = true, Recorded = 4 };
        var forget = new SchemaStatement("forget", "drop");
        forced.Fail = s => { if (s == forget) { forced.TableExists = false; forced.Recorded = null; } return null; };
        await Initialize(forced, [forget]);
        Assert.Equal(3, forced.Recorded);
        Assert.Equal("lock", forced.Log[0]);           // no look first: -Force does not ask what is there
    }

    [Fact]
    public async Task A_user_who_may_not_change_an_older_table_is_told_what_is_missing_and_to_run_Initialize()
    {
        var db = new FakeDialect { TableExists = true, Recorded = 1 };
        db.Fail = s => s.Name == "create_workers" ? new UnauthorizedAccessException("permission denied for schema public.") : null;
        var e = await Assert.ThrowsAsync<QueueNotInitializedException>(() => Upgrade(db));
        Assert.Contains("The queue table 'tasks' in the test database was created by an older PerfectQueue (schema version 1)", e.Message);
        Assert.Contains("(2: the sessions table; 3: two columns)", e.Message);
        Assert.Contains("may not add it: permission denied for schema public. Run Initialize-PQQueue", e.Message);
        Assert.IsType<UnauthorizedAccessException>(e.InnerException);
        Assert.Equal(1, db.Recorded);

        // Creating a new queue without the rights: the database's own error says it.
        var fresh = new FakeDialect();
        fresh.Fail = _ => new UnauthorizedAccessException("permission denied for schema public");
        await Assert.ThrowsAsync<UnauthorizedAccessException>(() => Initialize(fresh));
    }

    [Fact]
    public async Task UpgradeOnce_runs_the_runner_once_per_store_object_and_again_after_a_failure()
    {
        var db = new FakeDialect { TableExists = true, Recorded = 2 };
        var once = new UpgradeOnce();
        db.Fail = _ => new InvalidOperationException("lock timeout");
        await Assert.ThrowsAsync<InvalidOperationException>(() => once.EnsureAsync(() => Upgrade(db), default));
        db.Fail = _ => null;
        await once.EnsureAsync(() => Upgrade(db), default);
        db.Log.Clear();
        await once.EnsureAsync(() => Upgrade(db), default);
        Assert.Empty(db.Log);
        Assert.Equal(3, db.Recorded);
    }

    [Fact]
    public void Steps_must_be_versions_1_to_n_in_order()
    {
        Assert.Throws<ArgumentException>(() => SchemaMigrator.Latest([]));
        Assert.Contains("step 2 is version 3", Assert.Throws<ArgumentException>(() => SchemaMigrator.Latest([Steps[0], Steps[2]])).Message);
        Assert.Throws<ArgumentException>(() => SchemaMigrator.Latest([Steps[1], Steps[0]]));
        Assert.Equal(3, SchemaMigrator.Latest(Steps));
    }

    public static TheoryData<string> Backends() => new(["sqlite", "postgresql", "sqlserver"]);

    private static IReadOnlyList<SchemaStep> StepsOf(string backend)
    {
        // Building a store connects to nothing.
        using IQueueStore store = backend switch
        {
            "sqlite" => new SqliteQueueStore(Path.Combine(Path.GetTempPath(), "never-opened.db"), "tasks"),
            "postgresql" => new PostgresQueueStore("Host=localhost;Database=pq", "tasks", "d"),
            _ => new SqlServerQueueStore("Server=localhost;Database=pq;Integrated Security=true", "tasks", "d"),
        };
        return store switch
        {
            SqliteQueueStore s => s.SchemaSteps(),
            PostgresQueueStore p => p.SchemaSteps(),
            SqlServerQueueStore x => x.SchemaSteps(),
            _ => throw new NotSupportedException(),
        };
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Every_backend_lists_versions_1_to_the_current_one_with_named_guarded_statements(string backend)
    {
        var steps = StepsOf(backend);
        Assert.Equal(SchemaUpgrade.Version, SchemaMigrator.Latest(steps)); // raising the version without a step (or the reverse) fails here
        // A reserved step (a version another branch fills in, kept so version numbers agree) is the one step without statements.
        Assert.All(steps, s => Assert.NotEmpty(s.Statements));
        Assert.All(steps, s => Assert.False(string.IsNullOrWhiteSpace(s.Description)));
        foreach (var step in steps)
        {
            Assert.Equal(step.Statements.Count, step.Statements.Select(s => s.Name).Distinct().Count());
            // Every statement may run again: guarded by IF [NOT] EXISTS or the like, or by a DoneIf query.
            Assert.All(step.Statements, s => Assert.True(
                s.DoneIf is not null || s.Sql.Contains("IF NOT EXISTS", StringComparison.Ordinal) || s.Sql.Contains(" IS NULL", StringComparison.Ordinal),
                $"{backend} v{step.Version} {s.Name} is not guarded"));
        }
        Assert.Equal(steps.Select(s => s.Statements.Select(x => x.Name)).ToList(), StepsOf("sqlite").Select(s => s.Statements.Select(x => x.Name)).ToList());
    }
}
