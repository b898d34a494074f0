using System.Collections.Concurrent;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Tests.Unit;
using PerfectQueue.Tests.Workers;
using Xunit;

namespace PerfectQueue.Tests.MySql;

// Every shared suite, run on MySQL/MariaDB (PQ_TEST_MYSQL; build.ps1 test starts a throwaway MariaDB): a backend
// joins the suites by one line each here, and its target (MySqlTarget.cs) says where its database is and how to
// reach it for raw SQL. Skipped without a server, except under CI, where they fail.

[Backend("mysql")]
public sealed class MySqlConformance(MySqlTarget target) : QueueConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlInputConformance(MySqlTarget target) : InputConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlWorkerSessionConformance(MySqlTarget target) : WorkerSessionConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlAcquireConformance(MySqlTarget target) : AcquireConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlSchemaVersion3Conformance(MySqlTarget target) : SchemaVersion3Conformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlLeaseAndCountConformance(MySqlTarget target) : LeaseAndCountConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlFencing(MySqlTarget target) : FencingConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlWorkerTests(MySqlTarget target) : WorkerSuite(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlWorkerSessionTests(MySqlTarget target) : WorkerSessionSuite(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlLeaseWriteBatcherAmbiguityTests(MySqlTarget target) : LeaseWriteBatcherAmbiguitySuite(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlSchemaMigrationConformance(MySqlTarget target) : SchemaMigrationConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlWorkerRobustnessTests(MySqlTarget target) : WorkerRobustnessSuite(target), IClassFixture<MySqlTarget>;

/// <summary>Many processes and connections on one MySQL/MariaDB server: nothing lost, nothing twice, every max_running held.</summary>
[Backend("mysql")]
public sealed class MySqlMultiProcessTests(MySqlTarget target) : IClassFixture<MySqlTarget>
{
    [BackendFact]
    public async Task Four_processes_with_four_connections_each_drain_20000_tasks_within_every_max_running()
    {
        var config = target.NewConfig();
        var limits = new Dictionary<string, int> { ["u1"] = 2, ["u2"] = 3, ["u3"] = 5, ["u4"] = 8 };
        // 40% no user, 20% a user without a limit, 40% spread over the limited users.
        var total = MultiProcess.Submit(config, 20_000, i => (i % 10) switch
        {
            < 4 => null,
            < 6 => new SubmitOptions { User = "free" },
            var n => new SubmitOptions { User = $"u{n - 5}", MaxRunning = limits[$"u{n - 5}"] },
        });

        var violations = new ConcurrentQueue<string>();
        var samples = 0;
        void Sample(Queue reader)
        {
            foreach (var g in reader.List(new TaskFilter { Statuses = [TaskState.Running] }).Where(t => t.User is not null).GroupBy(t => t.User!))
                if (limits.TryGetValue(g.Key, out var max) && g.Count() > max) violations.Enqueue($"{g.Count()} running for {g.Key} (max {max})");
            samples++;
        }
        var perProcess = await MultiProcess.RunDrainers(config, processes: 4, threads: 4, workMs: 1, sampler: Sample);

        Assert.Empty(violations);
        Assert.True(samples >= 20, $"the sampler should read the running tasks throughout the run (took {samples} samples)");
        MultiProcess.AssertEachFinishedOnce(config, total, perProcess);
    }
}
