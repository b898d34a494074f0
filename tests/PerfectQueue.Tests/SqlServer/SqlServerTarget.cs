using System.Data.Common;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// SQL Server from <see cref="Backends.SqlServerVariable"/>: a sqlserver:// URL or a raw SqlClient connection
/// string. Every queue gets its own table; they are dropped at the end.
/// </summary>
public sealed class SqlServerTarget : IBackendTarget, IDisposable
{
    private readonly List<string> _tables = [];

    public SqlServerTarget() => TestTargets.Register(this);

    public string Name => "sqlserver";

    public static string Source => Backends.SqlServer ?? throw new InvalidOperationException(
        $"SQL Server tests need {Backends.SqlServerVariable}: a connection string or sqlserver:// URL.");

    private static bool IsUrl => Source.Contains("://", StringComparison.Ordinal);

    public QueueConfig NewConfig()
    {
        var table = "t_" + Guid.NewGuid().ToString("N")[..12];
        lock (_tables) _tables.Add(table);
        return IsUrl
            ? new QueueConfig { Url = Source, Table = table }
            : new QueueConfig { ConnectionString = Source, Provider = "sqlserver", Table = table };
    }

    public DbConnection Connect(QueueConfig config) => Connect();

    public string BinaryLiteral(byte[] data) => "0x" + Convert.ToHexString(data);

    public string ColumnExistsSql(string table, string column) => $"SELECT CASE WHEN COL_LENGTH(N'[{table}]', N'{column}') IS NULL THEN 0 ELSE 1 END";

    public (string Columns, string Indexes) TableShapeSql(string table) => (
        $"SELECT STRING_AGG(CONCAT(column_name, ' ', data_type, ' ', is_nullable, ' ', column_default), ', ') WITHIN GROUP (ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = N'{table}'",
        $"SELECT STRING_AGG(CONCAT(name, ' ', filter_definition), '; ') WITHIN GROUP (ORDER BY name) FROM sys.indexes WHERE object_id = OBJECT_ID(N'[{table}]') AND name IS NOT NULL");

    public string DropIndexSql(string table, string index) => $"DROP INDEX [{index}] ON [{table}]";

    public static Microsoft.Data.SqlClient.SqlConnection Connect()
    {
        var b = IsUrl ? Storage.SqlServer.SqlServerBackend.ConnectionFromUrl(Source) : new Microsoft.Data.SqlClient.SqlConnectionStringBuilder(Source);
        var c = new Microsoft.Data.SqlClient.SqlConnection(b.ConnectionString);
        c.Open();
        return c;
    }

    public void Dispose()
    {
        if (Backends.SqlServer is null || _tables.Count == 0) return;
        using var c = Connect();
        foreach (var t in _tables)
        {
            using var cmd = new Microsoft.Data.SqlClient.SqlCommand(
                $"IF OBJECT_ID(N'[{t}]', N'U') IS NOT NULL DROP TABLE [{t}]; " +
                $"IF OBJECT_ID(N'[{t}_workers]', N'U') IS NOT NULL DROP TABLE [{t}_workers]; " +
                $"IF OBJECT_ID(N'[{t}_pauses]', N'U') IS NOT NULL DROP TABLE [{t}_pauses]; " +
                $"IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NOT NULL DELETE FROM perfectqueue_schema WHERE table_name = N'{t}';", c);
            cmd.ExecuteNonQuery();
        }
    }
}
