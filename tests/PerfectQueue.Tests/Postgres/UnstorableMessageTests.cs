using Npgsql;
using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests.Postgres;

/// <summary>
/// A database whose encoding (LATIN1) lacks characters a message has: PostgreSQL refuses the value itself
/// (SQLSTATE 22P05), which no waiting cures. The finish, retry or force finish must then be written without the
/// message, never left for the lease to expire and the task to run again (issue 9, H2).
/// </summary>
[Backend("postgresql")]
public sealed class UnstorableMessageTests : IDisposable
{
    private readonly string _database = "pq_latin1_" + Guid.NewGuid().ToString("N")[..10];
    private readonly Queue? _queue;

    public UnstorableMessageTests()
    {
        if (Backends.Postgres is null) return;
        using (var c = PostgresTarget.Connect())
        using (var cmd = new NpgsqlCommand($"CREATE DATABASE \"{_database}\" ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0", c))
            cmd.ExecuteNonQuery();
        var url = PostgresTarget.Url;
        var builder = url.Contains("://", StringComparison.Ordinal) ? Storage.Postgres.PostgresBackend.ConnectionFromUrl(url) : new NpgsqlConnectionStringBuilder(url);
        builder.Database = _database;
        _queue = Queue.Open(new QueueConfig { ConnectionString = builder.ConnectionString, Provider = "postgresql", Table = "t" });
        _queue.Initialize();
    }

    private Queue Q => _queue!;

    [BackendFact]
    public void A_finish_with_a_message_the_database_cannot_encode_finishes_without_it()
    {
        Q.Submit("f", "t");
        Q.Poll()!.Finish("done \U0001F600");
        var info = Q["f"].GetInfo();
        Assert.Equal(TaskOutcome.Succeeded, info.Outcome);
        Assert.StartsWith("(message could not be stored: PostgresException: 22P05", info.Message);
        Assert.Equal(1, info.Attempts);
        Assert.Null(Q.Poll());
    }

    [BackendFact]
    public void A_retry_and_a_force_finish_with_such_a_message_are_written_without_it()
    {
        Q.Submit("r", "t");
        Assert.True(Q.Poll()!.Retry("failed \U0001F600", TimeSpan.Zero));
        Assert.StartsWith("(message could not be stored", Q["r"].GetInfo().Message);
        var again = Q.Poll()!;
        Assert.Equal(2, again.Attempt);
        again.Finish("ok"); // an encodable message is stored as it is
        Assert.Equal("ok", Q["r"].GetInfo().Message);

        Q.Submit("ff", "t");
        Q["ff"].ForceFinish("stopped \U0001F600");
        Assert.StartsWith("(message could not be stored", Q["ff"].GetInfo().Message);
        Assert.Equal(TaskOutcome.ForceFinished, Q["ff"].GetInfo().Outcome);
    }

    public void Dispose()
    {
        if (_queue is null) return;
        _queue.Dispose();
        NpgsqlConnection.ClearAllPools();
        using var c = PostgresTarget.Connect();
        using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{_database}\" WITH (FORCE)", c);
        cmd.ExecuteNonQuery();
    }
}
