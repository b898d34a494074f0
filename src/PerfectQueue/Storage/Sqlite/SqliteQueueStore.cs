using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;

namespace PerfectQueue.Storage.Sqlite;

/// <summary>
/// The embedded backend. WAL lets readers run beside the one writer; every write takes the write lock up
/// front with BEGIN IMMEDIATE (so the busy timeout applies instead of failing on a stale snapshot), which
/// makes several processes on one host safe. Batches travel as JSON arrays read with json_each, so a batch
/// of any size is one statement.
/// </summary>
internal sealed partial class SqliteQueueStore : IQueueStore, StoreStatements.IInventory, Relational.ISchemaOwner
{
    private const int BusyTimeoutMs = 30_000;
    private const int MaxIdleConnections = 16;

    private readonly string _connectionString;
    private readonly string _table;
    private readonly string _t; // the quoted table name
    private readonly string _workersTable;
    private readonly string _w; // the quoted sessions table name
    private readonly string _pausesTable;
    private readonly string _p; // the quoted pauses table name
    private readonly ConcurrentBag<SqliteConnection> _idle = new();
    private readonly string _columns;
    private readonly string _acquireSql, _anyUserSql, _acquireWithoutUsersSql, _heartbeatSql, _finishSql, _retrySql, _releaseSql, _submitSql, _insertAttemptSql;
    private readonly SemaphoreSlim _fileWriteLock;
    private volatile bool _walChecked;
    private bool _disposed;

    public SqliteQueueStore(string path, string table)
    {
        var names = new StoreNames(table, Quote);
        _table = names.Table;
        _t = names.QuotedTable;
        _workersTable = names.Workers;
        _w = names.QuotedWorkers;
        _pausesTable = names.Pauses;
        _p = names.QuotedPauses;
        FilePath = Path.GetFullPath(path);
        _fileWriteLock = s_fileWriteLocks.GetOrAdd(FilePath, _ => new SemaphoreSlim(1, 1));
        Description = $"{QueueConfig.SqliteUrl(FilePath)} (table {_table})";
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = FilePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false, // this class keeps its own small pool of configured connections
            DefaultTimeout = BusyTimeoutMs / 1000,
        }.ToString();

        _columns = RowProjection.TaskColumns("@now", Quote);

        // Acquire: count running tasks per user; gather candidates (the oldest due tasks of users below their
        // limit, plus the oldest few of every limited user, found per user through <table>_user_due, so a flood
        // from one user cannot hide the others: AcquireSql; that seek keeps the limited ones of a user's @quota
        // oldest, so it never walks the tasks of users without a limit: docs/performance.md); rank them the same way on every backend and lease
        // the first @max. SQLite has one writer at a time (BEGIN IMMEDIATE), so nothing else can take a row
        // or a slot meanwhile. Each row's token is @token + its rank, so tokens are unique per row and give
        // back the order. The running count reads only leased rows (<table>_leased): once ANALYZE has run,
        // SQLite preferred <table>_user_due, which also holds every task due later, so each acquire read all
        // delayed tasks (docs/performance.md).
        _acquireSql = $"""
            WITH RECURSIVE running AS (
                SELECT user_name AS ru, COUNT(*) AS rc FROM {_t} INDEXED BY {Quote(_table + "_leased")}
                WHERE finished_at IS NULL AND lease_token IS NOT NULL AND due_at > @now AND user_name IS NOT NULL
                GROUP BY user_name),
            users(u) AS (
                SELECT (SELECT user_name FROM {_t} WHERE finished_at IS NULL AND user_name IS NOT NULL ORDER BY user_name LIMIT 1)
                UNION ALL
                SELECT (SELECT user_name FROM {_t} WHERE finished_at IS NULL AND user_name > users.u ORDER BY user_name LIMIT 1)
                FROM users WHERE users.u IS NOT NULL),
            pool AS (
                SELECT * FROM (
                    SELECT c.id, c.user_name, c.max_running, c.due_at FROM {_t} AS c LEFT JOIN running AS r ON r.ru = c.user_name
                    WHERE c.finished_at IS NULL AND c.due_at <= @now
                      AND (c.max_running IS NULL OR c.user_name IS NULL OR c.max_running > COALESCE(r.rc, 0))
                      AND {PauseSql.NotPaused(_p, "c")}
                    ORDER BY c.due_at, c.id
                    LIMIT @scan)
                UNION
                SELECT p.id, p.user_name, p.max_running, p.due_at FROM users JOIN {_t} AS p ON p.id IN (
                    SELECT id FROM {_t}
                    WHERE user_name = users.u AND finished_at IS NULL AND due_at <= @now
                      AND {PauseSql.NotPaused(_p, _t)}
                    ORDER BY due_at, id
                    LIMIT @quota)
                WHERE users.u IS NOT NULL AND p.max_running IS NOT NULL AND NOT {PauseSql.UserPaused(_p, "users.u")}),
            candidates AS (
                SELECT p.id AS cid, p.user_name AS cu, p.max_running AS cmax, p.due_at AS cdue, COALESCE(r.rc, 0) AS crun
                FROM pool AS p LEFT JOIN running AS r ON r.ru = p.user_name),
            {AcquireSql.RankCtes}
            UPDATE {_t} SET lease_token = @token + chosen.ord, due_at = @now + @alive, attempts = attempts + 1, {PortableSql.LeaseStart("@now")}
            FROM chosen
            WHERE {_t}.id = chosen.cid AND chosen.ord <= @max
            RETURNING {_columns}
            """;

        // A queue where no unfinished task has a user ranks nothing: every weight is 1, so the order is due time,
        // and the @max oldest due tasks are leased without gathering @scan candidates (docs/performance.md). The
        // probe and the lease run in one write transaction, so no user can appear between them.
        _anyUserSql = $"SELECT user_name FROM {_t} WHERE finished_at IS NULL AND user_name IS NOT NULL ORDER BY user_name LIMIT 1";
        _acquireWithoutUsersSql = $"""
            WITH chosen AS (
                SELECT id AS cid, ROW_NUMBER() OVER (ORDER BY due_at, id) AS ord FROM (
                    SELECT c.id, c.due_at FROM {_t} AS c
                    WHERE c.finished_at IS NULL AND c.due_at <= @now AND {PauseSql.NotPaused(_p, "c")}
                    ORDER BY c.due_at, c.id
                    LIMIT @max))
            UPDATE {_t} SET lease_token = @token + chosen.ord, due_at = @now + @alive, attempts = attempts + 1, {PortableSql.LeaseStart("@now")}
            FROM chosen
            WHERE {_t}.id = chosen.cid
            RETURNING {_columns}
            """;

        const string leases = "SELECT json_extract(value, '$[0]') AS wid, json_extract(value, '$[1]') AS wtok";
        // A lease whose deadline has passed is not revived: the task is due again (maybe acquired, maybe
        // counted free against its user's max_running), so the holder is told it lost the task.
        _heartbeatSql = $"""
            UPDATE {_t} SET due_at = @now + @alive
            FROM ({leases} FROM json_each(@batch)) AS w
            WHERE {_t}.id = w.wid AND {_t}.lease_token = w.wtok AND {_t}.finished_at IS NULL AND {_t}.due_at > @now
            RETURNING id AS "Id", cancel_requested AS "CancelRequested"
            """;
        _finishSql = $"""
            UPDATE {_t} SET finished_at = @now, outcome = w.o, message = w.m, purge_at = @now + w.r, lease_token = NULL, due_at = NULL,
                attempts = MAX({_t}.attempts - w.u, 0), {PortableSql.RunEnd("@now", uncounted: "w.u")}
            FROM ({leases}, json_extract(value, '$[2]') AS o, json_extract(value, '$[3]') AS m, json_extract(value, '$[4]') AS r,
                  json_extract(value, '$[5]') AS u FROM json_each(@batch)) AS w
            WHERE {_t}.id = w.wid AND {_t}.lease_token = w.wtok AND {_t}.finished_at IS NULL
            RETURNING id
            """;
        _retrySql = $"""
            UPDATE {_t} SET due_at = @now + w.d, lease_token = NULL, message = COALESCE(w.m, message), {PortableSql.RunEnd("@now")}
            FROM ({leases}, json_extract(value, '$[2]') AS d, json_extract(value, '$[3]') AS m FROM json_each(@batch)) AS w
            WHERE {_t}.id = w.wid AND {_t}.lease_token = w.wtok AND {_t}.finished_at IS NULL
            RETURNING id
            """;
        // A released attempt does not count: release is for shutdown, not failure.
        _releaseSql = $"""
            UPDATE {_t} SET due_at = @now, lease_token = NULL, attempts = MAX(attempts - 1, 0)
            FROM ({leases} FROM json_each(@batch)) AS w
            WHERE {_t}.id = w.wid AND {_t}.lease_token = w.wtok AND {_t}.finished_at IS NULL
            RETURNING id
            """;
        // A key is free again once its finished row is past retention, even before cleanup deletes it.
        _submitSql = $"""
            INSERT INTO {_t} (task_key, task_type, user_name, data, max_running, created_at, due_at, attempts, cancel_requested, timeout_ms, trace_parent)
            VALUES (@Key, @Type, @User, @Data, @MaxRunning, @now, COALESCE(@RunAtMs, @now + COALESCE(@DelayMs, 0)), 0, 0, @TimeoutMs, @TraceParent)
            ON CONFLICT (task_key) DO UPDATE SET
                task_type = excluded.task_type, user_name = excluded.user_name, data = excluded.data,
                max_running = excluded.max_running, created_at = excluded.created_at, due_at = excluded.due_at, timeout_ms = excluded.timeout_ms,
                trace_parent = excluded.trace_parent,
                lease_token = NULL, attempts = 0, cancel_requested = 0, finished_at = NULL, outcome = NULL,
                message = NULL, purge_at = NULL, leased_by = NULL, leased_at = NULL, last_run_ms = NULL
            WHERE {_t}.finished_at IS NOT NULL AND {_t}.purge_at <= @now
            RETURNING id
            """;
        _insertAttemptSql = HistorySql.Insert(QuotedAttempts, "@now");
    }

    public string FilePath { get; }
    public string Description { get; }

    private static string Quote(string identifier) => StoreNames.DoubleQuote(identifier);

    // The database clock in Unix milliseconds.
    private const string NowSql = "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)";

    // Task data is often private: on Unix, folders this store creates are 0700 and the database file is
    // created 0600 before SQLite opens it (SQLite gives its -wal and -shm files the database file's mode),
    // whatever the umask. Existing folders and files keep the modes their owner gave them.
    private void CreatePrivately()
    {
        var dir = Path.GetDirectoryName(FilePath);
        if (OperatingSystem.IsWindows())
        {
            if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
            return;
        }
        if (!string.IsNullOrEmpty(dir) && !Directory.Exists(dir))
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (File.Exists(FilePath)) return;
        try
        {
            using var created = new FileStream(FilePath, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        catch (IOException) when (File.Exists(FilePath)) { /* another process created it first */ }
    }

    public Task<bool> IsInitializedAsync(CancellationToken ct) => Run(ct, () =>
    {
        if (!File.Exists(FilePath)) return false;
        return Read(c => c.ExecuteScalar<long>("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = @name", new { name = _table }) > 0, checkTable: false);
    });

    // The clock is the host's: without the file, an in-memory database reads it, so nothing is created.
    public Task<long> NowAsync(CancellationToken ct) => Run(ct, () =>
    {
        if (File.Exists(FilePath)) return Read(Now, checkTable: false);
        using var memory = new SqliteConnection("Data Source=:memory:");
        memory.Open();
        return Now(memory);
    });

    private static long Now(SqliteConnection c) => (long)c.Prepared(NowSql).ExecuteScalar()!;

    public Task<bool[]> SubmitAsync(IReadOnlyList<NewTaskRow> tasks, CancellationToken ct) => Run(ct, () =>
    {
        if (tasks.Count == 0) return [];
        EnsureUpgraded(ct);
        return Write(ct, (c, now) =>
        {
            var stored = new bool[tasks.Count];
            for (var i = 0; i < tasks.Count; i++)
            {
                var t = tasks[i];
                stored[i] = Submit(c, t, now);
            }
            return stored;
        });
    });

    // Stores the task unless its key is taken (by a task not yet past its retention).
    private bool Submit(SqliteConnection c, NewTaskRow t, long now) =>
        c.Prepared(_submitSql, ("Key", t.Key), ("Type", t.Type), ("User", t.User), ("Data", t.Data), ("MaxRunning", t.MaxRunning), ("RunAtMs", t.RunAtMs),
            ("DelayMs", t.DelayMs), ("TimeoutMs", t.TimeoutMs), ("TraceParent", t.TraceParent), ("now", now)).ExecuteScalar() is not null;

    public Task<IReadOnlyList<TaskRow>> AcquireAsync(int max, long aliveMs, string? session, CancellationToken ct) => Run(ct, () =>
    {
        if (max <= 0) return (IReadOnlyList<TaskRow>)[];
        EnsureUpgraded(ct);
        var token = AcquireSql.NewToken();
        return Write(ct, (c, now) =>
        {
            var command = c.Prepared(_anyUserSql).ExecuteScalar() is null
                ? c.Prepared(_acquireWithoutUsersSql, ("now", now), ("alive", aliveMs), ("max", max), ("token", token), ("session", session))
                : c.Prepared(_acquireSql, ("now", now), ("alive", aliveMs), ("max", max), ("scan", AcquireSql.Scan(max)), ("quota", AcquireSql.Quota(max)),
                    ("token", token), ("session", session));
            Func<System.Data.Common.DbDataReader, TaskRow>? parse = null;
            var rows = command.ReadAll(r => (parse ??= r.GetRowParser<TaskRow>())(r));
            rows.Sort((a, b) => Nullable.Compare(a.LeaseToken, b.LeaseToken));
            return (IReadOnlyList<TaskRow>)rows;
        });
    });

    public Task<IReadOnlyList<ExtendedLease>> HeartbeatAsync(IReadOnlyList<Lease> leases, long aliveMs, CancellationToken ct) => Run(ct, () =>
    {
        if (leases.Count == 0) return (IReadOnlyList<ExtendedLease>)[];
        var batch = JsonSerializer.Serialize(leases.Select(l => new[] { l.Id, l.Token }));
        return Write(ct, (c, now) => (IReadOnlyList<ExtendedLease>)c.Prepared(_heartbeatSql, ("now", now), ("alive", aliveMs), ("batch", batch))
            .ReadAll(r => new ExtendedLease(r.GetInt64(0), r.GetInt64(1) != 0)));
    });

    public Task<IReadOnlySet<long>> ApplyAsync(IReadOnlyList<LeaseWrite> writes, CancellationToken ct) => Run(ct, () =>
    {
        var done = new HashSet<long>();
        if (writes.Count == 0) return (IReadOnlySet<long>)done;
        var finishes = writes.Where(w => w.Kind == LeaseWriteKind.Finish).Select(w => new object?[] { w.Lease.Id, w.Lease.Token, w.Outcome, w.Message, w.RetentionMs, w.Uncounted ? 1 : 0 }).ToList();
        var retries = writes.Where(w => w.Kind == LeaseWriteKind.Retry).Select(w => new object?[] { w.Lease.Id, w.Lease.Token, w.DelayMs, w.Message }).ToList();
        var releases = writes.Where(w => w.Kind == LeaseWriteKind.Release).Select(w => new object?[] { w.Lease.Id, w.Lease.Token }).ToList();
        return Write(ct, (c, now) =>
        {
            void Apply(string sql, List<object?[]> some)
            {
                if (some.Count > 0) done.UnionWith(c.Prepared(sql, ("now", now), ("batch", JsonSerializer.Serialize(some))).ReadAll(r => r.GetInt64(0)));
            }
            Apply(_finishSql, finishes);
            Apply(_retrySql, retries);
            Apply(_releaseSql, releases);
            RecordAttempts(c, now, writes, done);
            return (IReadOnlySet<long>)done;
        });
    });

    public Task<bool> UpdateDataAsync(Lease lease, byte[] data, CancellationToken ct) => Run(ct, () =>
        Write(ct, (c, now) => c.Execute(UpdateDataSql,
            new { data, id = lease.Id, token = lease.Token }) == 1));

    public Task<TaskRow?> GetAsync(string key, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Read(c => c.QuerySingleOrDefault<TaskRow>(GetSql, new { key, now = Now(c) }));
    });

    public Task<IReadOnlyList<TaskRow>> GetByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken ct) => Run(ct, () =>
    {
        if (ids.Count == 0) return (IReadOnlyList<TaskRow>)[];
        EnsureUpgraded(ct);
        return Read(c => (IReadOnlyList<TaskRow>)c.Query<TaskRow>(GetByIdsSql, new { ids, now = Now(c) }).AsList());
    });

    public Task<IReadOnlyList<TaskRow>> ListAsync(TaskQuery q, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Read(c => (IReadOnlyList<TaskRow>)c.Query<TaskRow>(ListSql(q),
            new { keys = q.Keys, types = q.Types, users = q.Users, first = q.First, now = Now(c), keyPatterns = KeyPatternsJson(q), newest = q.Newest,
                pageSize = q.Page?.Size, beforeId = q.Page?.BeforeId }).AsList());
    });

    public Task<(IReadOnlyList<SummaryRow> Rows, long Now)> SummarizeAsync(CancellationToken ct) => Run(ct, () => Read(c =>
    {
        var now = Now(c);
        return ((IReadOnlyList<SummaryRow>)c.Query<SummaryRow>(SummarySql, new { now }).AsList(), now);
    }));

    public Task<bool> AnyDueOrRunningAsync(CancellationToken ct) => Run(ct, () =>
        Read(c => c.ExecuteScalar<long>(DueOrRunningSql, new { now = Now(c) }) == 1));

    public Task<CancelRequestResult> RequestCancelAsync(string key, string message, long retentionMs, CancellationToken ct) => Run(ct, () =>
        Write(ct, (c, now) =>
        {
            var finished = c.Query<long?>(RequestCancelSql, new { key, now, message, retention = retentionMs }).ToList();
            if (finished.Count == 1) return finished[0] is null ? CancelRequestResult.Flagged : CancelRequestResult.CancelledBeforeStart;
            var exists = c.ExecuteScalar<long>(KeyVisibleSql, new { key, now }) > 0;
            return exists ? CancelRequestResult.AlreadyFinished : CancelRequestResult.NotFound;
        }));

    public Task<bool> ForceFinishAsync(string key, string outcome, string? message, long retentionMs, CancellationToken ct) => Run(ct, () =>
        Write(ct, (c, now) => c.Execute(ForceFinishSql, new { key, now, outcome, message, retention = retentionMs }) == 1));

    public Task<int> CleanupAsync(int limit, CancellationToken ct) => Run(ct, () =>
        Write(ct, (c, now) =>
        {
            c.Execute(CleanupAttemptsSql, new { now, limit }); // the same rows: one writer at a time, in one transaction
            return c.Execute(CleanupSql, new { now, limit });
        }));

    // ---- worker sessions ----

    // Whether the sessions table exists; a missing queue table is QueueNotInitialized, whatever the sessions table.
    private bool WorkersTableExists(SqliteConnection c)
    {
        var names = c.Query<string>("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (@table, @workers)",
            new { table = _table, workers = _workersTable }).ToList();
        if (!names.Contains(_table)) throw NotInitialized(null);
        return names.Contains(_workersTable);
    }

    // Says what does not exist, the file or the table, so a mistyped name is noticed; only Initialize (and a
    // submit, which initializes when auto_initialize is on) creates them.
    private QueueNotInitializedException NotInitialized(Exception? inner) => File.Exists(FilePath)
        ? new($"The queue table '{_table}' does not exist in {FilePath}. Check the table name; to create the queue, run Initialize-PQQueue (or Queue.Initialize() from .NET) or submit a task to it.", inner)
        : new($"The SQLite database {FilePath} does not exist (queue table '{_table}'). Check the path; to create the queue, run Initialize-PQQueue (or Queue.Initialize() from .NET) or submit a task to it.", inner);

    public Task<long?> RegisterWorkerAsync(WorkerBeat session, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct); // a queue of an older version gains its sessions table here at the latest
        return Write(ct, (c, now) =>
        {
            if (!WorkersTableExists(c)) throw WorkersTableMissing();
            return c.ExecuteScalar<long?>(RegisterWorkerSql, new { session.Id, session.Host, session.Pid, session.Processors, session.Running, session.AliveMs, session.ProcessorType, now });
        }, checkTable: false);
    });

    public Task<bool> BeatWorkerAsync(WorkerBeat beat, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Write(ct, (c, now) => c.ExecuteScalar<long>(BeatWorkerSql, new { beat.Id, beat.Host, beat.Pid, beat.Processors, beat.Running, beat.AliveMs, beat.StartedAt, beat.ProcessorType, now }) != 0);
    });

    public Task RemoveWorkerAsync(string id, CancellationToken ct) => Run(ct, () => Write(ct, (c, _) =>
        WorkersTableExists(c) ? c.Execute(RemoveWorkerSql, new { id }) : 0, checkTable: false));

    public Task<IReadOnlyList<WorkerSessionRow>> ListWorkersAsync(CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Read(c => WorkersTableExists(c)
            ? (IReadOnlyList<WorkerSessionRow>)c.Query<WorkerSessionRow>(ListWorkersSql, new { now = Now(c) }).AsList()
            : [], checkTable: false);
    });

    public Task<IReadOnlyList<RunningRow>> ListRunningAsync(CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Read(c => (IReadOnlyList<RunningRow>)c.Query<RunningRow>(ListRunningSql, new { now = Now(c) }).AsList());
    });

    public Task<WorkerSessionRow?> RequestWorkerStopAsync(string id, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Write(ct, (c, now) => WorkersTableExists(c)
            ? c.QuerySingleOrDefault<WorkerSessionRow>(RequestWorkerStopSql, new { id, now })
            : null, checkTable: false);
    });

    public Task<int> CleanupWorkersAsync(long deadForMs, CancellationToken ct) => Run(ct, () => Write(ct, (c, now) =>
        WorkersTableExists(c) ? c.Execute(CleanupWorkersSql, new { now, deadFor = deadForMs }) : 0, checkTable: false));

    public async Task<bool> WaitForSubmitAsync(TimeSpan timeout, CancellationToken ct)
    {
        await Task.Delay(timeout, ct).ConfigureAwait(false); // SQLite has no notifications: poll
        return false;
    }

    // ---- connections and transactions ----

    // SQLite calls are synchronous underneath, so the async surface completes synchronously.
    private static Task<T> Run<T>(CancellationToken ct, Func<T> work)
    {
        ct.ThrowIfCancellationRequested();
        try { return Task.FromResult(work()); }
        catch (Exception e) { return Task.FromException<T>(e); }
    }

    private T Read<T>(Func<SqliteConnection, T> work, bool checkTable = true) => WithConnection(work, checkTable, create: false);

    // One write lock per database file for this process. SQLite's busy handler makes a waiting writer sleep in
    // growing steps (up to 100 ms) instead of handing it the lock, so threads of one process that write the
    // same file (a worker's fetcher, finishers and heartbeat) queue here and take the lock as soon as it is
    // free; other processes still meet at SQLite's lock and its busy timeout.
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> s_fileWriteLocks = new(StringComparer.Ordinal);

    private T Write<T>(CancellationToken ct, Func<SqliteConnection, long, T> work, bool checkTable = true, bool create = false) => WithConnection(c =>
    {
        var gate = _fileWriteLock;
        if (!gate.Wait(BusyTimeoutMs, ct))
            throw new SqliteException($"database is locked: waited {BusyTimeoutMs / 1000} s for this process's other writers of {FilePath}.", SqliteErrors.Busy); // as SQLite's own busy timeout reports it
        try
        {
            c.Prepared("BEGIN IMMEDIATE").ExecuteNonQuery();
            try
            {
                ct.ThrowIfCancellationRequested();
                var result = work(c, Now(c));
                c.Prepared("COMMIT").ExecuteNonQuery();
                return result;
            }
            catch
            {
                try { c.Execute("ROLLBACK"); } catch (SqliteException) { /* already rolled back by SQLite */ }
                throw;
            }
        }
        finally
        {
            gate.Release();
        }
    }, checkTable, create);

    // Only Initialize creates the file (create); anything else on a missing file says so, and creates nothing.
    private T WithConnection<T>(Func<SqliteConnection, T> work, bool checkTable, bool create)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!create && !File.Exists(FilePath)) throw NotInitialized(null);
        var connection = Rent();
        var healthy = false;
        try
        {
            var result = work(connection);
            healthy = true;
            return result;
        }
        catch (SqliteException e) when (checkTable && SqliteErrors.IsMissingTable(e))
        {
            healthy = true;
            throw NotInitialized(e);
        }
        finally
        {
            if (healthy && !_disposed && _idle.Count < MaxIdleConnections) _idle.Add(connection);
            else connection.Dispose();
        }
    }

    private SqliteConnection Rent()
    {
        if (_idle.TryTake(out var idle)) return idle;
        var c = new SqliteConnection(_connectionString);
        c.Open();
        c.Execute($"PRAGMA busy_timeout = {BusyTimeoutMs}");
        if (!_walChecked)
        {
            // WAL is a property of the file and persists; setting it once per store is enough.
            c.ExecuteScalar<string>("PRAGMA journal_mode = WAL");
            _walChecked = true;
        }
        return c;
    }

    public bool IsValueError(Exception error) => SqliteErrors.IsValueError(error);

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out var c)) c.Dispose();
    }
}
