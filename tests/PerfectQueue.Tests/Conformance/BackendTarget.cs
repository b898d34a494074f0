namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// A database the conformance suite runs against. Each backend supplies one; the suite itself is written
/// once (<see cref="QueueConformance"/>) and must pass unchanged on every backend.
/// </summary>
public interface IBackendTarget
{
    string Name { get; }
    /// <summary>A config for a fresh, empty queue of its own (unique table or file).</summary>
    QueueConfig NewConfig();
}

/// <summary>SQLite: each queue gets its own file in a temp folder that is removed at the end.</summary>
public sealed class SqliteTarget : IBackendTarget, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pq-tests-").FullName;

    public string Name => "sqlite";

    public QueueConfig NewConfig() => new()
    {
        Url = QueueConfig.SqliteUrl(Path.Combine(_dir, $"q{Guid.NewGuid():N}.db")),
        Table = "tasks_" + Guid.NewGuid().ToString("N")[..8],
    };

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
