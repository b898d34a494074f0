using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

/// <summary>
/// How MySQL and MariaDB errors are classified, by error number only (never message text); unit-tested without a
/// server. <see cref="ShouldRetry(Exception, bool, RetrySafety)"/> is the thin adapter for MySqlException.
/// </summary>
internal static class MySqlErrors
{
    /// <summary>ER_DUP_ENTRY: a unique key (the task key, a session id) is taken.</summary>
    public const int DuplicateKey = 1062;
    /// <summary>ER_NO_SUCH_TABLE: for us, the queue table (or one beside it) is missing.</summary>
    public const int NoSuchTable = 1146;
    /// <summary>ER_LOCK_DEADLOCK: the server chose this transaction as the deadlock victim and rolled it back.</summary>
    public const int Deadlock = 1213;
    /// <summary>ER_LOCK_WAIT_TIMEOUT: a row lock was not granted within innodb_lock_wait_timeout; the statement was rolled back.</summary>
    public const int LockWaitTimeout = 1205;
    /// <summary>ER_CON_COUNT_ERROR: too many connections; nothing was done.</summary>
    public const int TooManyConnections = 1040;
    /// <summary>ER_TABLEACCESS_DENIED_ERROR: the user may not run this kind of statement on the table (ALTER, CREATE...).</summary>
    public const int TableAccessDenied = 1142;

    /// <summary>ER_DBACCESS_DENIED_ERROR: the user may not use (or create in) the database.</summary>
    public const int DatabaseAccessDenied = 1044;

    // The connection or the server went away (the work may or may not have been done): 2006 server has gone away,
    // 2013 lost connection during query, 2002/2003 cannot connect, 1042 unable to connect to host (MySqlConnector's
    // number for a failed open), 1043 bad handshake, 1053 server shutdown in progress, 1077 normal shutdown,
    // 1927 connection killed (MariaDB), 4031 disconnected by the server for inactivity (MySQL 8).
    private static readonly HashSet<int> ConnectionNumbers = [2006, 2013, 2002, 2003, 1042, 1043, 1053, 1077, 1927, 4031];

    // The value is the problem: 1366 incorrect string value (a character the column's character set lacks),
    // 1406 data too long, 1300 invalid character string, 1264 out of range. Strict sql_mode makes them errors.
    private static readonly HashSet<int> ValueNumbers = [1366, 1406, 1300, 1264];

    public static bool IsDuplicateKey(int number) => number == DuplicateKey;

    public static bool IsMissingTable(int number) => number == NoSuchTable;

    /// <summary>The user may not make the change (a schema step on a table or database it has no rights on).</summary>
    public static bool IsNoPermission(int number) => number is TableAccessDenied or DatabaseAccessDenied;

    /// <summary>The server undid what the statement (or transaction) did: any operation may run again.</summary>
    public static bool IsRolledBackByServer(int number) => number is Deadlock or LockWaitTimeout;

    /// <summary>The connection failed or broke: other pooled connections may be broken too.</summary>
    public static bool IsConnectionError(int number) => ConnectionNumbers.Contains(number);

    /// <summary>The statement failed on a value it carried: sending it again cannot succeed.</summary>
    public static bool IsValueError(int number) => ValueNumbers.Contains(number);

    /// <param name="number">The server's (or MySqlConnector's) error number.</param>
    /// <param name="connectionOpened">False when the failure came while opening the connection: nothing was sent.</param>
    /// <param name="safety">Whether the operation may run twice.</param>
    public static bool ShouldRetry(int number, bool connectionOpened, RetrySafety safety)
    {
        if (IsRolledBackByServer(number) || number == TooManyConnections) return true;
        if (!IsConnectionError(number)) return false;
        return !connectionOpened || safety == RetrySafety.Always;
    }

    /// <summary>The adapter: classifies an exception thrown while running an operation.</summary>
    public static bool ShouldRetry(Exception e, bool connectionOpened, RetrySafety safety) => e switch
    {
        MySqlException me => ShouldRetry(me.Number, connectionOpened, safety)
                             || (IsBrokenTransport(me) && (!connectionOpened || safety == RetrySafety.Always)),
        // The transport broke outside any server reply (a reset socket, the server's end closed).
        IOException or System.Net.Sockets.SocketException or EndOfStreamException => !connectionOpened || safety == RetrySafety.Always,
        TimeoutException when !connectionOpened => true,
        _ => false,
    };

    /// <summary>The connection is gone: a broken transport, or a server reply that says so.</summary>
    public static bool IsBrokenConnection(Exception e) =>
        e is IOException or System.Net.Sockets.SocketException or EndOfStreamException
        || (e is MySqlException me && (IsConnectionError(me.Number) || IsBrokenTransport(me)));

    private static bool IsBrokenTransport(MySqlException e) =>
        e.InnerException is IOException or System.Net.Sockets.SocketException or EndOfStreamException;
}
