using Npgsql;

namespace PerfectQueue.Storage.Postgres;

/// <summary>How PostgreSQL errors are classified; unit-tested.</summary>
internal static class PostgresErrors
{
    /// <summary>
    /// The server ended the session (an administrator's or a crash shutdown, pg_terminate_backend): a pooled
    /// connection that a restart killed reports this on its next use. Like a lost connection, the work may or may
    /// not have been done, so only operations that are safe to run again are retried.
    /// </summary>
    public static bool IsSessionEnded(Exception e) =>
        e is PostgresException { SqlState: PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown };

    /// <summary>The connection is gone (the session ended, or the transport broke): other pooled ones may be too.</summary>
    public static bool IsBrokenConnection(Exception e) => IsSessionEnded(e) || e is NpgsqlException and not PostgresException && e.InnerException is IOException or System.Net.Sockets.SocketException or EndOfStreamException;

    public static bool ShouldRetry(Exception e, bool connectionOpened, RetrySafety safety) => e switch
    {
        _ when IsSessionEnded(e) => !connectionOpened || safety == RetrySafety.Always,
        // The server rolled the transaction back: nothing happened, any operation may run again.
        PostgresException pe => pe.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
                                   or PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.TooManyConnections
                                   or PostgresErrorCodes.CannotConnectNow,
        NpgsqlException ne when !connectionOpened => ne.IsTransient,
        NpgsqlException ne => safety == RetrySafety.Always && ne.IsTransient,
        TimeoutException when !connectionOpened => true,
        _ => false,
    };
}
