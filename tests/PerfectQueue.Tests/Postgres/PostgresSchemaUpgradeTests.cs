using Npgsql;
using PerfectQueue.Storage;
using PerfectQueue.Storage.Postgres;
using PerfectQueue.Storage.Relational;
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

    [BackendFact]
    public async Task Concurrent_first_commands_on_an_older_table_and_concurrent_initializers_of_a_new_one_take_turns_on_the_schema_lock()
    {
        // A version-1 table, made by this backend's own first step, with a task in it.
        var config = target.NewConfig();
        config.AutoInitialize = false;
        var table = config.Table;
        using (var maker = Queue.Open(config))
        {
            var store = (PostgresQueueStore)maker.Store;
            await SchemaMigrator.InitializeAsync(store.SchemaDialectForTests(), store.SchemaSteps().Take(1).ToList(), table, store.Description, null, default);
        }
        Exec($"INSERT INTO \"{table}\" (task_key, task_type, created_at, due_at) VALUES ('kept', 't', 1, 1)");

        // Eight processes' first commands at once: each step runs once, under the lock, and every command succeeds.
        var clients = Enumerable.Range(0, 8).Select(_ => Queue.Open(config)).ToList();
        try
        {
            var lists = await Task.WhenAll(clients.Select(q => Task.Run(() => q.List())));
            Assert.All(lists, l => Assert.Equal("kept", Assert.Single(l).Key));
            Assert.Equal(SchemaUpgrade.Version, Scalar($"SELECT version FROM perfectqueue_schema WHERE table_name = '{table}'"));
            Assert.Equal(1, Scalar($"SELECT COUNT(*) FROM information_schema.columns WHERE table_name = '{table}_workers' AND column_name = '{SchemaUpgrade.ProcessorTypeColumn}'"));
        }
        finally
        {
            foreach (var q in clients) q.Dispose();
        }

        // Eight Initialize-PQQueue of one new table at once.
        var fresh = target.NewConfig();
        var initializers = Enumerable.Range(0, 8).Select(_ => Queue.Open(fresh)).ToList();
        try
        {
            await Task.WhenAll(initializers.Select(q => Task.Run(() => q.InitializeAsync())));
            Assert.Equal(SchemaUpgrade.Version, Scalar($"SELECT version FROM perfectqueue_schema WHERE table_name = '{fresh.Table}'"));
            Assert.Equal(1, Scalar($"SELECT COUNT(*) FROM perfectqueue_schema WHERE table_name = '{fresh.Table}'"));
            initializers[0].Submit("k", "t");
            Assert.Single(initializers[7].List());
        }
        finally
        {
            foreach (var q in initializers) q.Dispose();
        }
    }
}
