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
                $"IF OBJECT_ID(N'perfectqueue_schema', N'U') IS NOT NULL DELETE FROM perfectqueue_schema WHERE table_name = N'{t}';", c);
            cmd.ExecuteNonQuery();
        }
    }
}
