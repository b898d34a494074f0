using System.Data.Common;
using PerfectQueue.Storage;
using PerfectQueue.Storage.Relational;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// The schema runner on real databases (issue 11): tables of each older version, made by the backend's own first
/// steps, reach the shape of a fresh queue through the later ones; a step that fails leaves the previous version
/// recorded; a step added to the list (a test-only version 4) runs once and is recorded, and this build then refuses
/// the table; Initialize makes again what a step creates if it went missing. The runner's logic alone, step by step:
/// Unit/SchemaMigratorTests.cs.
/// </summary>
public abstract class SchemaMigrationConformance(IBackendTarget target) : BackendSuite(target)
{
    private static (ISchemaDialect Dialect, IReadOnlyList<SchemaStep> Steps, string Where) Schema(Queue q)
    {
        var owner = Assert.IsAssignableFrom<ISchemaOwner>(q.Store);
        return (owner.SchemaDialectForTests(), owner.SchemaSteps(), owner.SchemaWhere);
    }

    /// <summary>A queue whose tables are what an older build made: the backend's own steps up to <paramref name="version"/>.</summary>
    private Queue OpenAt(int version)
    {
        var config = Target.NewConfig();
        config.AutoInitialize = false;
        var q = Track(Queue.Open(config));
        var (dialect, steps, where) = Schema(q);
        SchemaMigrator.InitializeAsync(dialect, steps.Take(version).ToList(), config.Table, where, null, default).GetAwaiter().GetResult();
        return q;
    }

    private static Task<bool> UpgradeWith(Queue q, IReadOnlyList<SchemaStep> steps)
    {
        var (dialect, _, where) = Schema(q);
        return SchemaMigrator.UpgradeAsync(dialect, steps, q.Config.Table, where, default);
    }

    private static int Version(Queue q) => new StoreHook(q).Sql($"SELECT version FROM perfectqueue_schema WHERE table_name = '{q.Config.Table}'");

    private static string Text(Queue q, string sql)
    {
        using var c = TestTargets.Connect(q);
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToString(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) ?? "";
    }

    /// <summary>The columns (name, type, nullability, in order) and index names of a table, with the queue's own name taken out.</summary>
    private string Shape(Queue q, string suffix)
    {
        var table = q.Config.Table + suffix;
        var (columns, indexes) = Target.TableShapeSql(table);
        var shape = Text(q, columns) + " | " + Text(q, indexes);
        return shape.Replace(q.Config.Table, "<table>", StringComparison.Ordinal);
    }

    [BackendFact]
    public async Task A_table_of_each_older_version_reaches_the_shape_of_a_fresh_queue_at_its_first_command_and_keeps_its_rows()
    {
        var fresh = Open();
        var expected = (Shape(fresh, ""), Shape(fresh, "_workers"), Shape(fresh, "_schedules"));
        Assert.Contains(SchemaUpgrade.TimeoutColumn, expected.Item1);
        Assert.Contains(SchemaUpgrade.ProcessorTypeColumn, expected.Item2);

        for (var version = 1; version < SchemaUpgrade.Version; version++)
        {
            var old = OpenAt(version);
            var table = old.Config.Table;
            Assert.Equal(version, Version(old));
            if (version < 3) Assert.DoesNotContain(SchemaUpgrade.TimeoutColumn, Shape(old, ""));
            // A task as the older build wrote it (its own columns only).
            new StoreHook(old).Sql($"INSERT INTO \"{table}\" (task_key, task_type, data, created_at, due_at, attempts, cancel_requested) VALUES ('kept', 't', NULL, 1, 1, 0, 0)");

            var q = OpenAnother(old);                  // this build's first command
            var kept = Assert.Single(q.List());
            Assert.Equal("kept", kept.Key);
            Assert.Null(kept.ExecutionTimeout);
            Assert.Equal(SchemaUpgrade.Version, Version(q));
            Assert.Equal(expected, (Shape(q, ""), Shape(q, "_workers"), Shape(q, "_schedules")));
            Assert.Equal(Shape(fresh, "_pauses"), Shape(q, "_pauses"));
            Assert.Empty(q.ListPauses());
            Assert.Empty(q.ListWorkers());
            Assert.NotNull(await q.RegisterWorkerAsync(new WorkerBeat(Queue.NewWorkerId(), "h", 1, 1, 0, 60_000, null) { ProcessorType = "process" }));
        }
    }

    [BackendFact]
    public async Task A_step_that_fails_leaves_the_version_before_it_recorded_and_the_next_command_completes_the_upgrade()
    {
        var old = OpenAt(1);
        var (_, steps, _) = Schema(old);
        // Version 3 breaks (the one that adds timeout_ms); the steps after it never run.
        var three = steps.Single(s => s.Version == 3);
        var broken = steps.Take(2)
            .Append(three with { Statements = [.. three.Statements, new SchemaStatement("fails", "SELECT no_such_column FROM perfectqueue_schema")] })
            .ToList();
        await Assert.ThrowsAnyAsync<DbException>(() => UpgradeWith(old, broken));
        Assert.Equal(2, Version(old));                                          // the steps before it were recorded, one by one
        if (Target.SchemaChangesAreTransactional)
            Assert.DoesNotContain(SchemaUpgrade.TimeoutColumn, Shape(old, "")); // and the failed step was rolled back whole
        else
            Assert.Contains(SchemaUpgrade.TimeoutColumn, Shape(old, ""));       // DDL committed by itself: the step is half done, and recorded as not done

        Assert.Empty(OpenAnother(old).List());
        Assert.Equal(SchemaUpgrade.Version, Version(old));
        Assert.Contains(SchemaUpgrade.TimeoutColumn, Shape(old, ""));
    }

    [BackendFact]
    public void A_step_half_done_by_a_crash_is_completed_because_each_statement_is_guarded()
    {
        // What a crash between the two ALTERs of version 3 leaves where DDL commits by itself (MySQL): one column.
        var old = OpenAt(2);
        var (dialect, steps, _) = Schema(old);
        var version3 = steps.Single(s => s.Version == 3);
        dialect.InSessionAsync(true, async s =>
        {
            await s.RunAsync(version3.Statements[0], default);
            return true;
        }, default).GetAwaiter().GetResult();
        Assert.Contains(SchemaUpgrade.TimeoutColumn, Shape(old, ""));
        Assert.Equal(2, Version(old));

        Assert.Empty(OpenAnother(old).List());
        Assert.Equal(SchemaUpgrade.Version, Version(old));
        Assert.Contains(SchemaUpgrade.ProcessorTypeColumn, Shape(old, "_workers"));
    }

    [BackendFact]
    public async Task A_fourth_step_appended_to_the_list_runs_once_and_is_recorded_and_a_build_that_knows_three_then_refuses_the_table()
    {
        var q = Open();
        var table = q.Config.Table;
        q.Submit("kept", "t");
        var (_, steps, _) = Schema(q);
        // Not idempotent on purpose: a second run of it would fail, so passing twice shows it ran once.
        var next = SchemaUpgrade.Version + 1;
        var withFour = steps.Append(new SchemaStep(next, $"the test table '{table}_extra'",
            [new SchemaStatement("create_extra", $"CREATE TABLE {table}_extra (id integer NOT NULL)")])).ToList();

        Assert.True(await UpgradeWith(q, withFour));
        Assert.Equal(next, Version(q));
        Assert.Equal(0, new StoreHook(q).Sql($"SELECT COUNT(*) FROM \"{table}_extra\""));
        Assert.True(await UpgradeWith(q, withFour));   // recorded: nothing runs again
        Assert.True(await UpgradeWith(OpenAnother(q), withFour));

        var older = OpenAnother(q);                    // this build knows versions up to SchemaUpgrade.Version
        foreach (var run in new Action[] { () => older.List(), () => older.Submit("new", "t"), () => older.Initialize() })
        {
            var e = Assert.Throws<QueueNotInitializedException>(run);
            Assert.Contains($"has schema version {next}, made by a newer PerfectQueue; this one knows versions up to {SchemaUpgrade.Version}", e.Message);
        }
        Assert.Equal(next, Version(q));
        new StoreHook(q).Sql($"DROP TABLE \"{table}_extra\"");
    }

    [BackendFact]
    public void Initialize_makes_again_an_index_that_went_missing_and_keeps_the_version()
    {
        var q = Open();
        var table = q.Config.Table;
        var before = Shape(q, "");
        new StoreHook(q).Sql(Target.DropIndexSql(table, table + "_user_due"));
        Assert.NotEqual(before, Shape(q, ""));

        OpenAnother(q).List();                         // a current table: the first command changes nothing
        Assert.NotEqual(before, Shape(q, ""));
        OpenAnother(q).Initialize();
        Assert.Equal(before, Shape(q, ""));
        Assert.Equal(SchemaUpgrade.Version, Version(q));
    }
}
