using System.Diagnostics;
using Npgsql;
using PerfectQueue.Storage;
using PerfectQueue.Storage.Postgres;
using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests.Postgres;

/// <summary>What only the PostgreSQL backend has: LISTEN/NOTIFY wake-up. Runs where the conformance suite does.</summary>
[Backend("postgresql")]
public sealed class PostgresWakeupTests(PostgresTarget target) : IClassFixture<PostgresTarget>
{
    [BackendFact]
    public async Task A_submit_wakes_a_waiting_worker_long_before_its_poll_timeout()
    {
        var config = target.NewConfig();
        using var worker = Queue.Open(config);
        worker.Initialize();
        using var client = Queue.Open(config);
        Assert.False(await worker.WaitForTasksAsync(TimeSpan.FromMilliseconds(200))); // nothing submitted: times out

        var clock = Stopwatch.StartNew();
        var waiting = worker.WaitForTasksAsync(TimeSpan.FromSeconds(30));
        // Submit only once the wait holds the store's one listening connection, so the notification wakes a
        // wait in progress (a submit before it would be buffered: the other test's case).
        Eventually.True(() => ListenerBusy(worker), "the wait to take the listening connection");
        Assert.False(waiting.IsCompleted);
        client.Submit("wake", "t");
        Assert.True(await waiting);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"woke after {clock.Elapsed}");
        Assert.Equal("wake", worker.Poll()!.Key);
    }

    /// <summary>True while a WaitForTasks call holds the store's listening connection (its gate is taken).</summary>
    private static bool ListenerBusy(Queue queue)
    {
        var gate = typeof(PostgresQueueStore).GetField("_listenGate", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)
            ?? throw new MissingFieldException(nameof(PostgresQueueStore), "_listenGate");
        return ((SemaphoreSlim)gate.GetValue(queue.Store)!).CurrentCount == 0;
    }

    [BackendFact]
    public async Task A_submit_between_waits_is_not_missed()
    {
        var config = target.NewConfig();
        using var worker = Queue.Open(config);
        worker.Initialize();
        using var client = Queue.Open(config);
        Assert.False(await worker.WaitForTasksAsync(TimeSpan.FromMilliseconds(50)));  // now listening
        client.Submit("between", "t");                                               // arrives while nobody waits
        var clock = Stopwatch.StartNew();
        Assert.True(await worker.WaitForTasksAsync(TimeSpan.FromSeconds(30)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10));
    }
}

/// <summary>
/// Tests that drop perfectqueue_schema, which every queue table shares: run alone, so no other test's schema step
/// finds it gone between two of its statements.
/// </summary>
[CollectionDefinition(nameof(SharedSchemaTableCollection), DisableParallelization = true)]
public sealed class SharedSchemaTableCollection;

[Backend("postgresql")]
[Collection(nameof(SharedSchemaTableCollection))]
public sealed class PostgresSchemaTests(PostgresTarget target) : IClassFixture<PostgresTarget>
{
    [BackendFact]
    public async Task Initializing_many_queue_tables_at_once_never_races_on_the_shared_schema_table()
    {
        // Regression: the lock was per table, and perfectqueue_schema is shared, so two first-time
        // initializers raced in CREATE TABLE IF NOT EXISTS (duplicate key in pg_type).
        using (var c = PostgresTarget.Connect())
        using (var drop = new NpgsqlCommand("DROP TABLE IF EXISTS perfectqueue_schema", c)) drop.ExecuteNonQuery();
        var queues = Enumerable.Range(0, 8).Select(_ => Queue.Open(target.NewConfig())).ToList();
        try
        {
            await Task.WhenAll(queues.Select(q => Task.Run(() => q.InitializeAsync())));
            Assert.All(queues, q => Assert.True(q.IsInitialized()));
        }
        finally
        {
            foreach (var q in queues) q.Dispose();
        }
    }
}

public sealed class PostgresConfigurationTests
{
    [Fact]
    public void A_postgresql_url_becomes_npgsql_settings()
    {
        var b = Storage.Postgres.PostgresBackend.ConnectionFromUrl("postgresql://app%20user:p%40ss:w0rd@db.example:6543/jobs?sslmode=require&Timeout=7");
        Assert.Equal("db.example", b.Host);
        Assert.Equal(6543, b.Port);
        Assert.Equal("jobs", b.Database);
        Assert.Equal("app user", b.Username);
        Assert.Equal("p@ss:w0rd", b.Password);
        Assert.Equal(SslMode.Require, b.SslMode);
        Assert.Equal(7, b.Timeout);
        Assert.Equal(5432, Storage.Postgres.PostgresBackend.ConnectionFromUrl("postgres://h/db").Port);
    }

    [Fact]
    public void Statements_are_prepared_and_connections_not_reset_unless_the_url_says_otherwise()
    {
        var b = Storage.Postgres.PostgresBackend.ConnectionFromUrl("postgresql://app@db.example/jobs");
        Storage.Postgres.PostgresBackend.ApplyDefaults(b);
        Assert.Equal(20, b.MaxAutoPrepare);
        Assert.True(b.NoResetOnClose);
        Assert.Equal("PerfectQueue", b.ApplicationName);

        var off = Storage.Postgres.PostgresBackend.ConnectionFromUrl("postgresql://app@db.example/jobs?Max%20Auto%20Prepare=0&Application%20Name=etl&No%20Reset%20On%20Close=false");
        Storage.Postgres.PostgresBackend.ApplyDefaults(off);
        Assert.Equal(0, off.MaxAutoPrepare);
        Assert.False(off.NoResetOnClose);
        Assert.Equal("etl", off.ApplicationName);
    }

    [Fact]
    public void An_unknown_url_option_is_named_and_the_password_is_never_shown()
    {
        var e = Assert.Throws<ConfigException>(() => Storage.Postgres.PostgresBackend.ConnectionFromUrl("postgresql://u:s3cretpw@h/db?sslmod=require"));
        Assert.Equal("url", e.ConfigKey);
        Assert.Contains("sslmod", e.Message);
        Assert.DoesNotContain("s3cretpw", e.ToString());
    }

    [Fact]
    public void The_description_of_a_server_queue_never_shows_the_password()
    {
        using var fromUrl = Queue.Open(new QueueConfig { Url = "postgresql://app:s3cretpw@127.0.0.1:1/jobs", Table = "q" });
        Assert.Equal("postgresql://app@127.0.0.1:1/jobs (table q)", fromUrl.Description);
        using var fromString = Queue.Open(new QueueConfig { ConnectionString = "Host=127.0.0.1;Port=1;Username=app;Password=s3cretpw;Database=jobs", Provider = "postgresql" });
        Assert.DoesNotContain("s3cretpw", fromString.Description);
        Assert.DoesNotContain("s3cretpw", fromString.ToString());
    }

    [Fact]
    public void A_connection_failure_names_the_server_but_not_the_password()
    {
        using var q = Queue.Open(new QueueConfig { Url = "postgresql://app:s3cretpw@127.0.0.1:1/jobs?Timeout=2", Table = "q" });
        var e = Assert.ThrowsAny<Exception>(() => q.Initialize());
        Assert.DoesNotContain("s3cretpw", e.ToString());
    }

    [Fact]
    public void A_connection_string_needs_a_known_provider()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open(new QueueConfig { ConnectionString = "Host=h", Provider = "oracle" }));
        Assert.Equal("provider", e.ConfigKey);
        Assert.Throws<ConfigException>(() => Queue.Open(new QueueConfig { ConnectionString = "Host=h" }));
        Assert.Equal("url", Assert.Throws<ConfigException>(() => Queue.Open(new QueueConfig { ConnectionString = "Host=h", Provider = "postgresql", Url = "sqlite:///x.db" })).ConfigKey);
    }
}

public sealed class PostgresErrorTests
{
    private static PostgresException Server(string sqlState) => new("test", "ERROR", "ERROR", sqlState);

    [Theory]
    [InlineData(PostgresErrorCodes.SerializationFailure)]
    [InlineData(PostgresErrorCodes.DeadlockDetected)]
    [InlineData(PostgresErrorCodes.TooManyConnections)]
    [InlineData(PostgresErrorCodes.CannotConnectNow)]
    public void A_rolled_back_transaction_is_retried_whatever_the_operation(string sqlState)
    {
        Assert.True(PostgresErrors.ShouldRetry(Server(sqlState), connectionOpened: true, RetrySafety.BeforeSent));
        Assert.True(PostgresErrors.ShouldRetry(Server(sqlState), connectionOpened: true, RetrySafety.Always));
    }

    [Theory]
    [InlineData(PostgresErrorCodes.UniqueViolation)]
    [InlineData(PostgresErrorCodes.UndefinedTable)]
    [InlineData(PostgresErrorCodes.SyntaxError)]
    [InlineData(PostgresErrorCodes.InsufficientPrivilege)]
    public void A_real_error_is_never_retried(string sqlState) =>
        Assert.False(PostgresErrors.ShouldRetry(Server(sqlState), connectionOpened: true, RetrySafety.Always));

    [Fact]
    public void A_lost_connection_is_retried_only_when_running_again_is_safe()
    {
        var lost = new NpgsqlException("connection lost", new IOException("reset"));
        Assert.True(lost.IsTransient);
        Assert.True(PostgresErrors.ShouldRetry(lost, connectionOpened: false, RetrySafety.BeforeSent)); // never reached the server
        Assert.False(PostgresErrors.ShouldRetry(lost, connectionOpened: true, RetrySafety.BeforeSent)); // may have committed
        Assert.True(PostgresErrors.ShouldRetry(lost, connectionOpened: true, RetrySafety.Always));
        Assert.False(PostgresErrors.ShouldRetry(new InvalidOperationException(), connectionOpened: false, RetrySafety.Always));
    }

    [Fact]
    public void Backoff_grows_and_stays_bounded()
    {
        Assert.InRange(TransientBackoff.Delay(1).TotalMilliseconds, 25, 75);
        Assert.All(Enumerable.Range(1, 50), a => Assert.InRange(TransientBackoff.Delay(a).TotalMilliseconds, 0, 3000));
        Assert.True(Enumerable.Range(0, 20).Average(_ => TransientBackoff.Delay(5).TotalMilliseconds) > Enumerable.Range(0, 20).Average(_ => TransientBackoff.Delay(1).TotalMilliseconds));
    }
}
