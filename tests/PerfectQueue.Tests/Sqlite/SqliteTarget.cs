using System.Data.Common;

namespace PerfectQueue.Tests.Conformance;

/// <summary>SQLite: each queue gets its own file in a temp folder that is removed at the end.</summary>
public sealed class SqliteTarget : IBackendTarget, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pq-tests-").FullName;

    public SqliteTarget() => TestTargets.Register(this);

    public string Name => "sqlite";

    public QueueConfig NewConfig() => new()
    {
        Url = QueueConfig.SqliteUrl(Path.Combine(_dir, $"q{Guid.NewGuid():N}.db")),
        Table = "tasks_" + Guid.NewGuid().ToString("N")[..8],
    };

    public DbConnection Connect(QueueConfig config)
    {
        var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!)}");
        c.Open();
        return c;
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
