using Microsoft.Data.SqlClient;

namespace PerfectQueue.Storage.SqlServer;

/// <summary>
/// How SQL Server errors are classified, by error number only (never message text); unit-tested without a
/// server. <see cref="ShouldRetry(Exception, bool, RetrySafety)"/> is the thin adapter for SqlException.
/// </summary>
internal static class SqlServerErrors
{
    /// <summary>Violation of a PRIMARY KEY or UNIQUE constraint.</summary>
    public const int UniqueConstraintViolation = 2627;
    /// <summary>Duplicate key row in a unique index.</summary>
    public const int UniqueIndexViolation = 2601;
    /// <summary>Invalid object name (for us: the queue table is missing).</summary>
    public const int InvalidObjectName = 208;
    /// <summary>Chosen as deadlock victim: the server rolled the transaction back.</summary>
    public const int DeadlockVictim = 1205;
    /// <summary>SqlClient's number for a command timeout.</summary>
    public const int CommandTimeout = -2;

    // Failures of the connection or of the service, after which the work may or may not have been done:
    // timeouts, broken transports, Azure SQL failover, throttling and database-unavailable errors.
    private static readonly HashSet<int> TransientNumbers =
    [
        CommandTimeout, 20, 64, 233, 997, 1204, 4060, 4221, 10053, 10054, 10060, 10928, 10929,
        40143, 40197, 40501, 40540, 40613, 49918, 49919, 49920,
    ];

    // String or binary data would be truncated (8152, 2628), conversion failed (245, 8114), arithmetic overflow
    // (220, 232, 8115), JSON text is not properly formatted (13609).
    private static readonly HashSet<int> ValueNumbers = [8152, 2628, 245, 8114, 220, 232, 8115, 13609];

    /// <summary>The statement failed on a value it carried: sending it again cannot succeed.</summary>
    public static bool IsValueError(IEnumerable<int> numbers) => numbers.Any(ValueNumbers.Contains);

    public static bool IsDuplicateKey(IEnumerable<int> numbers) => numbers.Any(n => n is UniqueConstraintViolation or UniqueIndexViolation);

    public static bool IsMissingTable(IEnumerable<int> numbers) => numbers.Contains(InvalidObjectName);

    /// <summary>The server rolled the whole transaction back: nothing happened, any operation may run again.</summary>
    public static bool IsRolledBackByServer(IEnumerable<int> numbers) => numbers.Contains(DeadlockVictim);

    /// <summary>A connection or service failure. Number 0 counts only when the connection broke with it.</summary>
    public static bool IsTransient(int number, bool connectionBroken) => TransientNumbers.Contains(number) || (number == 0 && connectionBroken);

    /// <param name="numbers">The error numbers of one failure (a SqlException carries one per server message).</param>
    /// <param name="connectionOpened">False when the failure came while opening the connection: nothing was sent.</param>
    /// <param name="connectionBroken">True when the failure also broke the connection.</param>
    /// <param name="safety">Whether the operation may run twice.</param>
    public static bool ShouldRetry(IReadOnlyCollection<int> numbers, bool connectionOpened, bool connectionBroken, RetrySafety safety)
    {
        if (IsRolledBackByServer(numbers)) return true;
        if (!numbers.Any(n => IsTransient(n, connectionBroken))) return false;
        return !connectionOpened || safety == RetrySafety.Always;
    }

    /// <summary>Every error number a SqlException carries.</summary>
    public static IReadOnlyList<int> Numbers(SqlException e) =>
        e.Errors.Count == 0 ? [e.Number] : e.Errors.Cast<SqlError>().Select(x => x.Number).ToList();

    /// <summary>The adapter: classifies an exception thrown while running an operation.</summary>
    public static bool ShouldRetry(Exception e, bool connectionOpened, RetrySafety safety) => e switch
    {
        // Severity 20 and above ends the connection.
        SqlException se => ShouldRetry(Numbers(se), connectionOpened, se.Errors.Cast<SqlError>().Any(x => x.Class >= 20), safety),
        TimeoutException when !connectionOpened => true,
        _ => false,
    };
}
