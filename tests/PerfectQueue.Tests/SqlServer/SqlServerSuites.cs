using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

// Every shared suite, run on SQL Server: a backend joins the suites by one line each here, and its target
// (SqlServerTarget.cs) says where its database is and how to reach it for raw SQL.

[Backend("sqlserver")]
public sealed class SqlServerConformance(SqlServerTarget target) : QueueConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerInputConformance(SqlServerTarget target) : InputConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerWorkerSessionConformance(SqlServerTarget target) : WorkerSessionConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerRunningTaskConformance(SqlServerTarget target) : RunningTaskConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerAcquireConformance(SqlServerTarget target) : AcquireConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerSchemaVersion3Conformance(SqlServerTarget target) : SchemaVersion3Conformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerLeaseAndCountConformance(SqlServerTarget target) : LeaseAndCountConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerFencing(SqlServerTarget target) : FencingConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerSchemaMigrationConformance(SqlServerTarget target) : SchemaMigrationConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerScheduleConformance(SqlServerTarget target) : ScheduleConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerPauseConformance(SqlServerTarget target) : PauseConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerFinishedTaskConformance(SqlServerTarget target) : FinishedTaskConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerWorkerSessionTests(SqlServerTarget target) : Workers.WorkerSessionSuite(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerPrefetchTests(SqlServerTarget target) : Workers.PrefetchSuite(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerQueueTablesConformance(SqlServerTarget target) : QueueTablesConformance(target), IClassFixture<SqlServerTarget>;

[Backend("sqlserver")]
public sealed class SqlServerHistoryConformance(SqlServerTarget target) : HistoryConformance(target), IClassFixture<SqlServerTarget>;
