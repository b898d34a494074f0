using Microsoft.Data.Sqlite;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>On Unix, the SQLite folder and files a queue creates are private to their owner (issue 11, L1).</summary>
public sealed class SqliteFileModeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pq-modes-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void The_folder_is_0700_and_the_database_wal_and_shm_files_0600()
    {
        if (OperatingSystem.IsWindows()) return; // Windows has no Unix modes; the user's profile folder is private there
        var folder = Path.Combine(_dir, "PerfectQueue");
        var path = Path.Combine(folder, "perfectqueue.db");
        using var q = Queue.Open(new QueueConfig { Url = QueueConfig.SqliteUrl(path) });
        q.Submit("k", "t", new { secret = "s3cret" });
        q.List();                                                          // a connection is open: -wal and -shm exist
        const UnixFileMode owner = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        Assert.Equal(owner | UnixFileMode.UserExecute, File.GetUnixFileMode(folder));
        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
        {
            Assert.True(File.Exists(file), $"{file} should exist while the queue is open");
            Assert.Equal(owner, File.GetUnixFileMode(file));
        }
    }
}
