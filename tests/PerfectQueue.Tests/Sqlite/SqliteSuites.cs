using PerfectQueue.Tests.Conformance;
using PerfectQueue.Tests.Unit;
using PerfectQueue.Tests.Workers;
using Xunit;

namespace PerfectQueue.Tests.Sqlite;

// Every shared suite, run on SQLite: a backend joins the suites by one line each here, and its target
// (SqliteTarget.cs) says where its database is and how to reach it for raw SQL.

[Backend("sqlite")]
public sealed class SqliteLeaseWriteBatcherAmbiguityTests(SqliteTarget target) : LeaseWriteBatcherAmbiguitySuite(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteConformance(SqliteTarget target) : QueueConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteInputConformance(SqliteTarget target) : InputConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteWorkerSessionConformance(SqliteTarget target) : WorkerSessionConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteRunningTaskConformance(SqliteTarget target) : RunningTaskConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteAcquireConformance(SqliteTarget target) : AcquireConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteSchemaVersion3Conformance(SqliteTarget target) : SchemaVersion3Conformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteLeaseAndCountConformance(SqliteTarget target) : LeaseAndCountConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteFencing(SqliteTarget target) : FencingConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteWorkerTests(SqliteTarget target) : WorkerSuite(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteWorkerSessionTests(SqliteTarget target) : WorkerSessionSuite(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqlitePrefetchTests(SqliteTarget target) : PrefetchSuite(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteWorkerRobustnessTests(SqliteTarget target) : WorkerRobustnessSuite(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteSchemaMigrationConformance(SqliteTarget target) : SchemaMigrationConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteScheduleConformance(SqliteTarget target) : ScheduleConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqlitePauseConformance(SqliteTarget target) : PauseConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteFinishedTaskConformance(SqliteTarget target) : FinishedTaskConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteQueueTablesConformance(SqliteTarget target) : QueueTablesConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteHistoryConformance(SqliteTarget target) : HistoryConformance(target), IClassFixture<SqliteTarget>;

[Backend("sqlite")]
public sealed class SqliteDashboardConformance(SqliteTarget target) : DashboardConformance(target), IClassFixture<SqliteTarget>;
