using System.Data.Common;
using MySqlConnector;
using PerfectQueue.Tests.Conformance;

namespace PerfectQueue.Tests.MySql;

/// <summary>
/// MySQL/MariaDB from <see cref="Backends.MySqlVariable"/> (build.ps1 test points it at a throwaway MariaDB).
/// Every queue gets its own table; they are dropped at the end.
/// </summary>
public sealed class MySqlTarget : IBackendTarget, IDisposable
{
    private readonly List<string> _tables = [];

    public MySqlTarget() => TestTargets.Register(this);

    public string Name => "mysql";

    public QueueConfig NewConfig()
    {
        var table = "t_" + Guid.NewGuid().ToString("N")[..12];
        lock (_tables) _tables.Add(table);
        return MySqlServer.IsUrl
            ? new QueueConfig { Url = MySqlServer.Source, Table = table }
            : new QueueConfig { ConnectionString = MySqlServer.Source, Provider = "mysql", Table = table };
    }

    public DbConnection Connect(QueueConfig config) => Connect();

    /// <summary>
    /// A connection for tests' raw SQL, which quotes names with double quotes as every backend accepts: here with
    /// ANSI_QUOTES added to the session's sql_mode.
    /// </summary>
    public static MySqlConnection Connect()
    {
        var c = MySqlServer.Connect();
        using var cmd = new MySqlCommand("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES')", c);
        cmd.ExecuteNonQuery();
        return c;
    }

    public string ColumnExistsSql(string table, string column) =>
        $"SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}' AND column_name = '{column}'";

    public (string Columns, string Indexes) TableShapeSql(string table) => (
        $"SELECT GROUP_CONCAT(CONCAT_WS(' ', column_name, column_type, is_nullable, COALESCE(column_default, '')) ORDER BY ordinal_position SEPARATOR ', ') FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}'",
        $"SELECT GROUP_CONCAT(CONCAT_WS(' ', index_name, non_unique, seq_in_index, column_name) ORDER BY index_name, seq_in_index SEPARATOR '; ') FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = '{table}'");

    public string DropIndexSql(string table, string index) => $"DROP INDEX \"{index}\" ON \"{table}\"";

    public bool SchemaChangesAreTransactional => false;

    public void Dispose()
    {
        if (Backends.MySql is null || _tables.Count == 0) return;
        using var c = MySqlServer.Connect();
        foreach (var t in _tables)
        {
            using var cmd = new MySqlCommand($"DROP TABLE IF EXISTS `{t}`, `{t}_workers`, `{t}_users`, `{t}_pauses`", c);
            cmd.ExecuteNonQuery();
            using var forget = new MySqlCommand("DELETE FROM perfectqueue_schema WHERE table_name = @t", c);
            forget.Parameters.AddWithValue("@t", t);
            try { forget.ExecuteNonQuery(); } catch (MySqlException) { /* perfectqueue_schema may not exist */ }
        }
    }
}
