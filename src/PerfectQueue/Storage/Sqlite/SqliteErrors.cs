using Microsoft.Data.Sqlite;

namespace PerfectQueue.Storage.Sqlite;

/// <summary>How SQLite errors are classified, by result code (https://sqlite.org/rescode.html).</summary>
internal static class SqliteErrors
{
    /// <summary>SQLITE_BUSY: the write lock stayed taken for the whole busy timeout.</summary>
    public const int Busy = 5;

    /// <summary>A statement named a table the file does not have (SQLITE_ERROR with SQLite's own wording: the code alone is generic).</summary>
    public static bool IsMissingTable(SqliteException e) =>
        e.SqliteErrorCode == 1 && e.Message.Contains("no such table", StringComparison.OrdinalIgnoreCase);

    /// <summary>SQLITE_PERM (3), SQLITE_READONLY (8), SQLITE_AUTH (23): this process may read the file but not change it.</summary>
    public static bool IsNoPermission(SqliteException e) => e.SqliteErrorCode is 3 or 8 or 23;

    /// <summary>SQLITE_TOOBIG (18) and SQLITE_MISMATCH (20): the value itself, not the moment, is the problem.</summary>
    public static bool IsValueError(Exception error) =>
        error is SqliteException { SqliteErrorCode: 18 or 20 } || StoreErrors.IsEncodingError(error);
}
