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
public sealed class MySqlRunningTaskConformance(MySqlTarget target) : RunningTaskConformance(target), IClassFixture<MySqlTarget>;

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
public sealed class MySqlPrefetchTests(MySqlTarget target) : PrefetchSuite(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlLeaseWriteBatcherAmbiguityTests(MySqlTarget target) : LeaseWriteBatcherAmbiguitySuite(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlSchemaMigrationConformance(MySqlTarget target) : SchemaMigrationConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlWorkerRobustnessTests(MySqlTarget target) : WorkerRobustnessSuite(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlMultiProcessTests(MySqlTarget target) : MultiProcessSuite(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlScheduleConformance(MySqlTarget target) : ScheduleConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlPauseConformance(MySqlTarget target) : PauseConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlFinishedTaskConformance(MySqlTarget target) : FinishedTaskConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlQueueTablesConformance(MySqlTarget target) : QueueTablesConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlHistoryConformance(MySqlTarget target) : HistoryConformance(target), IClassFixture<MySqlTarget>;

[Backend("mysql")]
public sealed class MySqlDashboardConformance(MySqlTarget target) : DashboardConformance(target), IClassFixture<MySqlTarget>;
