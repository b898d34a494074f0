using PerfectQueue.Tests.Conformance;
using PerfectQueue.Tests.Unit;
using PerfectQueue.Tests.Workers;
using Xunit;

namespace PerfectQueue.Tests.Postgres;

// Every shared suite, run on PostgreSQL: a backend joins the suites by one line each here, and its target
// (PostgresTarget.cs) says where its database is and how to reach it for raw SQL.

[Backend("postgresql")]
public sealed class PostgresLeaseWriteBatcherAmbiguityTests(PostgresTarget target) : LeaseWriteBatcherAmbiguitySuite(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresConformance(PostgresTarget target) : QueueConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresInputConformance(PostgresTarget target) : InputConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresWorkerSessionConformance(PostgresTarget target) : WorkerSessionConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresRunningTaskConformance(PostgresTarget target) : RunningTaskConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresAcquireConformance(PostgresTarget target) : AcquireConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresSchemaVersion3Conformance(PostgresTarget target) : SchemaVersion3Conformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresLeaseAndCountConformance(PostgresTarget target) : LeaseAndCountConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresFencing(PostgresTarget target) : FencingConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresWorkerTests(PostgresTarget target) : WorkerSuite(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresWorkerSessionTests(PostgresTarget target) : WorkerSessionSuite(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresPrefetchTests(PostgresTarget target) : PrefetchSuite(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresWorkerRobustnessTests(PostgresTarget target) : WorkerRobustnessSuite(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresSchemaMigrationConformance(PostgresTarget target) : SchemaMigrationConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresMultiProcessTests(PostgresTarget target) : MultiProcessSuite(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresScheduleConformance(PostgresTarget target) : ScheduleConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresPauseConformance(PostgresTarget target) : PauseConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresFinishedTaskConformance(PostgresTarget target) : FinishedTaskConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresQueueTablesConformance(PostgresTarget target) : QueueTablesConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresHistoryConformance(PostgresTarget target) : HistoryConformance(target), IClassFixture<PostgresTarget>;

[Backend("postgresql")]
public sealed class PostgresDashboardConformance(PostgresTarget target) : DashboardConformance(target), IClassFixture<PostgresTarget>;
