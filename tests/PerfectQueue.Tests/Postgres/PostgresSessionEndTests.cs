using Npgsql;
using PerfectQueue.Storage;
using PerfectQueue.Storage.Postgres;
using Xunit;

namespace PerfectQueue.Tests.Postgres;

/// <summary>How a session the server ended (a restart's 57P01 on a pooled connection) is classified (issue 12).</summary>
public sealed class PostgresSessionEndTests
{
    private static PostgresException Server(string sqlState) => new("terminating connection", "FATAL", "FATAL", sqlState);

    [Theory]
    [InlineData(PostgresErrorCodes.AdminShutdown)]
    [InlineData(PostgresErrorCodes.CrashShutdown)]
    public void A_session_the_server_ended_is_retried_when_running_again_is_safe(string sqlState)
    {
        Assert.True(PostgresErrors.IsBrokenConnection(Server(sqlState)));
        Assert.True(PostgresErrors.ShouldRetry(Server(sqlState), connectionOpened: true, RetrySafety.Always));      // reads, acquire, heartbeat
        Assert.False(PostgresErrors.ShouldRetry(Server(sqlState), connectionOpened: true, RetrySafety.BeforeSent)); // a write may have committed
        Assert.True(PostgresErrors.ShouldRetry(Server(sqlState), connectionOpened: false, RetrySafety.BeforeSent));
    }

    [Fact]
    public void A_broken_transport_is_a_broken_connection_and_a_real_error_is_not()
    {
        Assert.True(PostgresErrors.IsBrokenConnection(new NpgsqlException("Exception while reading from stream", new EndOfStreamException())));
        Assert.True(PostgresErrors.IsBrokenConnection(new NpgsqlException("Exception while writing to stream", new IOException("broken pipe"))));
        Assert.False(PostgresErrors.IsBrokenConnection(Server(PostgresErrorCodes.UniqueViolation)));
        Assert.False(PostgresErrors.IsBrokenConnection(new NpgsqlException("timeout", new TimeoutException())));
    }
}
