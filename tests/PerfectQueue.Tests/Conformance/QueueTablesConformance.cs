using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>The database's queue tables (for tab completion of -Table), the same on every backend.</summary>
public abstract class QueueTablesConformance(IBackendTarget target) : BackendSuite(target)
{
    [BackendFact]
    public async Task Lists_the_initialized_queue_tables_of_the_database_and_not_one_dropped_or_never_created()
    {
        var first = Open();
        var table = first.Settings.Table;
        var second = OpenAnother(first, c => c.Table = table + "b");
        second.Initialize();
        var never = OpenAnother(first, c => c.Table = table + "n"); // configured, never initialized

        var listed = await never.ListQueueTablesAsync();
        Assert.Contains(table, listed);
        Assert.Contains(table + "b", listed);
        Assert.DoesNotContain(table + "n", listed);
        Assert.Equal(listed.Order(StringComparer.Ordinal), listed);

        using (var c = Target.Connect(first.Settings))
        using (var drop = c.CreateCommand())
        {
            drop.CommandText = $"DROP TABLE \"{table}b\"";  // behind the queue's back: perfectqueue_schema still names it
            drop.ExecuteNonQuery();
        }
        listed = await first.ListQueueTablesAsync();
        Assert.Contains(table, listed);
        Assert.DoesNotContain(table + "b", listed);
    }
}

public sealed class SqliteQueueTablesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pq-tables-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_missing_database_file_has_no_queue_tables_and_the_listing_creates_no_file()
    {
        var path = Path.Combine(_dir, "none.db");
        using var q = Queue.Open(QueueConfig.SqliteUrl(path));
        Assert.Empty(await q.ListQueueTablesAsync());
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task A_database_without_queues_has_no_queue_tables()
    {
        var path = Path.Combine(_dir, "other.db");
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path}"))
        {
            c.Open();
            using var create = c.CreateCommand();
            create.CommandText = "CREATE TABLE unrelated (x INTEGER)";
            create.ExecuteNonQuery();
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using var q = Queue.Open(QueueConfig.SqliteUrl(path));
        Assert.Empty(await q.ListQueueTablesAsync());
    }
}
