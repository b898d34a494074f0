using Microsoft.Data.Sqlite;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>
/// A mistyped SQLite file or table (issue 9): opening and reading never create them, and say what does not
/// exist and how to create it; a submit (and a poll, with auto_initialize) creates the queue as before.
/// </summary>
public sealed class SqliteMissingQueueTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pq-missing-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static QueueConfig Config(string path, string table = "tasks") => new() { Url = QueueConfig.SqliteUrl(path), Table = table };

    [Fact]
    public void Reading_a_file_that_does_not_exist_says_so_and_creates_nothing()
    {
        var folder = Path.Combine(_dir, "typo-folder");
        var path = Path.Combine(folder, "dev-qeueu.db");
        using var q = Queue.Open(Config(path));
        Assert.False(q.IsInitialized());
        q.Now();                                                   // the clock needs no file
        var e = Assert.Throws<QueueNotInitializedException>(() => q.List());
        Assert.Contains(path, e.Message);
        Assert.Contains("does not exist", e.Message);
        Assert.Contains("Initialize-PQQueue", e.Message);
        Assert.Contains("submit", e.Message);
        Assert.Throws<QueueNotInitializedException>(() => q.Summarize());
        Assert.Throws<QueueNotInitializedException>(() => q["k"].TryGetInfo());
        Assert.Throws<QueueNotInitializedException>(() => q["k"].CancelRequest());
        Assert.Throws<QueueNotInitializedException>(() => q.ListWorkers());
        Assert.False(File.Exists(path), "a read created the database file");
        Assert.False(Directory.Exists(folder), "a read created the folder");
    }

    [Fact]
    public void Reading_a_table_that_does_not_exist_in_an_existing_file_says_so_and_creates_nothing()
    {
        var path = Path.Combine(_dir, "queue.db");
        using (var real = Queue.Open(Config(path, "nightly"))) real.Submit("k", "t");
        using var typo = Queue.Open(Config(path, "nighlty"));
        var e = Assert.Throws<QueueNotInitializedException>(() => typo.List());
        Assert.Contains("'nighlty'", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("Initialize-PQQueue", e.Message);
        using var c = new SqliteConnection($"Data Source={path}");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'nighlty%'";
        Assert.Equal(0L, (long)cmd.ExecuteScalar()!);
    }

    [Fact]
    public void A_submit_creates_the_file_and_the_table_as_before()
    {
        var path = Path.Combine(_dir, "new", "queue.db");
        using var q = Queue.Open(Config(path));
        Assert.False(File.Exists(path), "opening created the file");
        q.Submit("k", "t");
        Assert.True(File.Exists(path));
        Assert.Equal(["k"], q.List().Select(t => t.Key).ToArray());
    }

    [Fact]
    public void A_poll_creates_the_queue_too_so_a_worker_may_start_before_the_first_submit()
    {
        var path = Path.Combine(_dir, "worker-first.db");
        using var q = Queue.Open(Config(path));
        Assert.Null(q.Poll());
        Assert.True(q.IsInitialized());
    }

    [Fact]
    public void Without_auto_initialize_even_a_submit_creates_nothing()
    {
        var path = Path.Combine(_dir, "manual.db");
        var config = Config(path);
        config.AutoInitialize = false;
        using var q = Queue.Open(config);
        Assert.Throws<QueueNotInitializedException>(() => q.Submit("k", "t"));
        Assert.False(File.Exists(path));
        q.Initialize();
        q.Submit("k", "t");
        Assert.True(q["k"].Exists());
    }

    [Fact]
    public void A_queue_made_by_an_older_version_gains_the_new_index_at_its_first_write()
    {
        // Acquire's per-user candidates (issue 9) need <table>_user_due; an embedded queue created before it
        // existed must not stay without it just because its table is there.
        var path = Path.Combine(_dir, "old.db");
        using (var made = Queue.Open(Config(path))) made.Submit("k", "t");
        SqliteConnection.ClearAllPools();
        Exec(path, "DROP INDEX tasks_user_due");
        Assert.Equal(0L, IndexCount(path, "tasks_user_due"));
        using var q = Queue.Open(Config(path));
        q.List();
        Assert.Equal(0L, IndexCount(path, "tasks_user_due"));     // a read changes nothing
        Assert.NotNull(q.Poll());
        Assert.Equal(1L, IndexCount(path, "tasks_user_due"));
    }

    private static void Exec(string path, string sql)
    {
        using var c = new SqliteConnection($"Data Source={path}");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static long IndexCount(string path, string name)
    {
        using var c = new SqliteConnection($"Data Source={path};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = $name";
        cmd.Parameters.AddWithValue("$name", name);
        return (long)cmd.ExecuteScalar()!;
    }
}
