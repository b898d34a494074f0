using Npgsql;
using PerfectQueue.Storage;
using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests.Postgres;

/// <summary>
/// A version-2 table and a database user who may use the queue but not alter its table (a worker or monitoring
/// login): the first command fails with a clear error naming Initialize-PQQueue and changes nothing; once the
/// owner ran it, the same client works. A real role on the real server (docs/schema.md, "Upgrades").
/// </summary>
[Backend("postgresql")]
public sealed class PostgresSchemaUpgradeTests(PostgresTarget target) : IClassFixture<PostgresTarget>
{
    private static void Exec(string sql)
    {
        using var c = PostgresTarget.Connect();
        using var cmd = new NpgsqlCommand(sql, c);
        cmd.ExecuteNonQuery();
    }

    private static long Scalar(string sql)
    {
        using var c = PostgresTarget.Connect();
        using var cmd = new NpgsqlCommand(sql, c);
        return Convert.ToInt64(cmd.ExecuteScalar());
    }

    [BackendFact]
    public void A_user_who_may_not_alter_an_older_table_is_told_to_run_Initialize_and_nothing_is_changed_until_the_owner_does()
    {
        var config = target.NewConfig();
        var table = config.Table;
        using var owner = Queue.Open(config);
        owner.Initialize();
        owner.Submit("kept", "t", new { n = 7 });
        Exec($"ALTER TABLE \"{table}\" DROP COLUMN {SchemaUpgrade.TimeoutColumn}; ALTER TABLE \"{table}_workers\" DROP COLUMN {SchemaUpgrade.ProcessorTypeColumn}; " +
             $"UPDATE perfectqueue_schema SET version = 2 WHERE table_name = '{table}'");

        var role = "st_user_" + Guid.NewGuid().ToString("N")[..10];
        Exec($"CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA public TO {role}; " +
             $"GRANT SELECT, INSERT, UPDATE, DELETE ON \"{table}\", \"{table}_workers\", perfectqueue_schema TO {role}");
        try
        {
            var b = PostgresTarget.Url.Contains("://", StringComparison.Ordinal)
                ? Storage.Postgres.PostgresBackend.ConnectionFromUrl(PostgresTarget.Url)
                : new NpgsqlConnectionStringBuilder(PostgresTarget.Url);
            b.Username = role;
            b.Password = null;
            using var user = Queue.Open(new QueueConfig { ConnectionString = b.ConnectionString, Provider = "postgresql", Table = table });

            var e = Assert.Throws<QueueNotInitializedException>(() => user.List());
            Assert.Contains($"The queue table '{table}'", e.Message);
            Assert.Contains("created by an older PerfectQueue", e.Message);
            Assert.Contains("Run Initialize-PQQueue", e.Message);
            Assert.Contains("keeps every task", e.Message);
            Assert.IsType<PostgresException>(e.InnerException);
            Assert.Throws<QueueNotInitializedException>(() => user.Submit("new", "t"));
            Assert.Equal(0, Scalar($"SELECT COUNT(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{SchemaUpgrade.TimeoutColumn}'"));
            Assert.Equal(2, Scalar($"SELECT version FROM perfectqueue_schema WHERE table_name = '{table}'"));
            Assert.Equal(1, Scalar($"SELECT COUNT(*) FROM \"{table}\""));

            using (var upgraded = Queue.Open(config)) upgraded.Initialize(); // the owner runs Initialize-PQQueue
            var kept = Assert.Single(user.List());                           // the same client now works
            Assert.Equal(7, (int)kept.Data["n"]!);
            Assert.Null(kept.ExecutionTimeout);
            user.Submit("new", "t", null, new SubmitOptions { Timeout = TimeSpan.FromSeconds(5) });
            Assert.Equal(TimeSpan.FromSeconds(5), user["new"].GetInfo().ExecutionTimeout);
            Assert.Equal(SchemaUpgrade.Version, Scalar($"SELECT version FROM perfectqueue_schema WHERE table_name = '{table}'"));
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            Exec($"DROP OWNED BY {role}; DROP ROLE {role}");
        }
    }
}
