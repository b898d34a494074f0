using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace PerfectQueue.Storage.Sqlite;

/// <summary>
/// The statements every task runs, compiled once per pooled connection and bound again for each call. Microsoft.Data.Sqlite
/// keeps a compiled statement per command object only (dotnet/efcore#14044), and Dapper makes a new command per call, so
/// every acquire, finish and submit compiled its statement again: SQLite's parser, resolver and planner and their
/// allocations were about a quarter of a drain's CPU (docs/performance.md). A pooled connection is used by one caller at a
/// time, so its commands need no lock; they go when the connection is closed.
/// </summary>
internal static class PreparedCommands
{
    private static readonly ConditionalWeakTable<SqliteConnection, Dictionary<string, SqliteCommand>> s_commands = [];

    /// <summary>The connection's command for <paramref name="sql"/>, with these parameters (by name, without the @) and no others.</summary>
    public static SqliteCommand Prepared(this SqliteConnection connection, string sql, params ReadOnlySpan<(string Name, object? Value)> values)
    {
        var commands = s_commands.GetOrCreateValue(connection);
        if (!commands.TryGetValue(sql, out var command))
        {
            command = connection.CreateCommand();
            command.CommandText = sql;
            commands[sql] = command;
        }
        command.Parameters.Clear();
        foreach (var (name, value) in values) command.Parameters.AddWithValue("@" + name, value ?? DBNull.Value);
        return command;
    }

    /// <summary>Every row of the command's result, read by <paramref name="read"/>.</summary>
    public static List<T> ReadAll<T>(this SqliteCommand command, Func<SqliteDataReader, T> read)
    {
        var rows = new List<T>();
        using var reader = command.ExecuteReader();
        while (reader.Read()) rows.Add(read(reader));
        return rows;
    }
}
