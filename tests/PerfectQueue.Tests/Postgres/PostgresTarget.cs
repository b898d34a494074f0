using System.Data.Common;
using Npgsql;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// PostgreSQL from <see cref="Backends.PostgresVariable"/> (build.ps1 test points it at a throwaway cluster).
/// Every queue gets its own table; they are dropped at the end.
/// </summary>
public sealed class PostgresTarget : IBackendTarget, IDisposable
{
    private readonly List<string> _tables = [];

    public PostgresTarget() => TestTargets.Register(this);

    public string Name => "postgresql";

    public static string Url => Backends.Postgres ?? throw new InvalidOperationException(
        $"PostgreSQL tests must run in CI, but {Backends.PostgresVariable} is not set: build.ps1 test could not start a PostgreSQL cluster (is the postgresql package installed?).");

    public QueueConfig NewConfig()
    {
        var table = "t_" + Guid.NewGuid().ToString("N")[..12];
        lock (_tables) _tables.Add(table);
        return Url.Contains("://", StringComparison.Ordinal)
            ? new QueueConfig { Url = Url, Table = table }
            : new QueueConfig { ConnectionString = Url, Provider = "postgresql", Table = table };
    }

    public DbConnection Connect(QueueConfig config) => Connect();

    public string BinaryLiteral(byte[] data) => $"'\\x{Convert.ToHexString(data)}'::bytea";

    public (string Columns, string Indexes) TableShapeSql(string table) => (
        $"SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, ''), ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '{table}'",
        $"SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes WHERE tablename = '{table}'");

    public static NpgsqlConnection Connect()
    {
        var b = Url.Contains("://", StringComparison.Ordinal) ? Storage.Postgres.PostgresBackend.ConnectionFromUrl(Url) : new NpgsqlConnectionStringBuilder(Url);
        var c = new NpgsqlConnection(b.ConnectionString);
        c.Open();
        return c;
    }

    public void Dispose()
    {
        if (Backends.Postgres is null || _tables.Count == 0) return;
        using var c = Connect();
        foreach (var t in _tables)
        {
            using var cmd = new NpgsqlCommand($"DROP TABLE IF EXISTS \"{t}\", \"{t}_workers\", \"{t}_pauses\"; DELETE FROM perfectqueue_schema WHERE table_name = '{t}'", c);
            try { cmd.ExecuteNonQuery(); } catch (PostgresException) { /* perfectqueue_schema may not exist */ }
        }
    }
}
