using System.Text.Json;
using Dapper;
using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

/// <summary>
/// The MySQL (8.0+) and MariaDB (10.6+) backend, on InnoDB. Acquire is select-then-update in one READ COMMITTED
/// transaction: per-user lock rows in <c>&lt;table&gt;_users</c> (FOR UPDATE SKIP LOCKED) for max_running, the
/// ranking of <see cref="AcquireSql"/>, the chosen rows locked FOR UPDATE SKIP LOCKED by primary key, then updated
/// and read back. Batches travel as JSON arrays read with JSON_TABLE. Times come from the server's clock. Transient
/// errors are retried with bounded backoff where running the operation again is safe. Why each choice:
/// docs/backends-mysql.md.
/// </summary>
internal sealed partial class MySqlQueueStore : IQueueStore, StoreStatements.IInventory, Relational.ISchemaOwner
{
    // The server clock in Unix milliseconds at the start of the statement. UNIX_TIMESTAMP reads NOW(3) in the
    // session's time zone, which SessionSetup pins to UTC: in a zone with daylight saving time, the repeated
    // hour in autumn would otherwise map two instants to one.
    private const string Now = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

    // Sent at the head of every command (a pooled connection is reset when it is taken, which drops session
    // settings; in the same packet it costs no round trip). Strict mode makes a value that does not fit an error
    // instead of a silent truncation or a warning. Never NO_BACKSLASH_ESCAPES: MySqlConnector escapes parameter
    // values with backslashes. READ COMMITTED: each statement reads the latest committed rows, so acquire's
    // running count, read after the user locks are held, sees every lease another acquirer committed
    // (REPEATABLE READ would read a snapshot taken at the transaction's first read), and locking reads take no
    // gap locks.
    internal const string SessionSetup =
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00';\n" +
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;\n";

    // Keys, types and users compare exactly (case and accents) as on the other backends. JSON_TABLE's text
    // columns come out as utf8mb4_general_ci, which ignores case: every comparison with them names the collation.
    internal const string Exact = "utf8mb4_bin";

    private static readonly string NotExpired = PortableSql.NotExpired(Now);

    private static readonly JsonSerializerOptions Json = new();

    private readonly string _connectionString;
    private readonly StoreRunner<MySqlConnection> _runner;
    private readonly string _table;
    private readonly string _t;
    private readonly string _workersTable;
    private readonly string _w;
    private readonly string _usersTable;
    private readonly string _u;
    private readonly string _pausesTable;
    private readonly string _p;
    private readonly string _columns;
    private readonly string _workerColumns;

    public MySqlQueueStore(string connectionString, string table, string description)
    {
        var names = new StoreNames(table, Quote);
        _table = names.Table;
        _t = names.QuotedTable;
        _workersTable = names.Workers;
        _w = names.QuotedWorkers;
        _usersTable = _table + "_users";
        _u = Quote(_usersTable);
        _pausesTable = names.Pauses;
        _p = names.QuotedPauses;
        _connectionString = connectionString;
        Description = description;
        _runner = new StoreRunner<MySqlConnection>(OpenAsync, ShouldRetry,
            e => e is MySqlException me && MySqlErrors.IsMissingTable(me.Number),
            e => Task.FromResult<Exception?>(NotInitialized(e)),
            RollbackAsync);
        _columns = RowProjection.TaskColumns(Now, Quote);
        _workerColumns = RowProjection.WorkerColumns(Now, Quote);
    }

    public string Description { get; }

    internal string Table => _table;

    private static string Quote(string identifier) => "`" + identifier + "`"; // names are checked first (StoreNames): never a backtick

    // ---- acquire ----

    // Acquire, as select-then-update in one READ COMMITTED transaction (docs/backends-mysql.md, "Acquire"):
    // 1. Rank the candidates as they look now (a plain read, no locks): the users with a limit among the best
    //    @scan are the ones to lock. With none of them, this ranking is the answer (step 4).
    // 2. max_running without a global lock: a row per limited user in <table>_users, locked FOR UPDATE SKIP
    //    LOCKED. Users another acquirer holds are skipped, as their rows would be. Only the holder of a user's row
    //    leases that user's tasks, and it commits before the row lock goes.
    // 3. Rank again, in a statement that starts after the user rows are locked, so its running count sees every
    //    lease of those users another acquirer committed: tasks without a user, tasks of locked users, and
    //    unlimited tasks of users no one else is limiting.
    // 4. Only what is leased is locked: the ranked rows, by primary key in rank order, FOR UPDATE SKIP LOCKED and
    //    re-checked under the lock, a few at a time until @max are held (one lookup of all of them would lock
    //    every ranked row, and concurrent acquirers would skip rows this one never leases).
    // 5. Lease them (token, deadline, attempts), read them back, commit.
    private string RunningCte(string userFilter) => $"""
        running AS (
            SELECT user_name AS ru, COUNT(*) AS rc FROM {_t}
            WHERE lease_token IS NOT NULL AND finished_at IS NULL AND due_at > {Now} AND user_name IS NOT NULL {userFilter}
            GROUP BY user_name)
        """;

    // Candidates (AcquireSql): the @scan oldest due tasks (index <table>_due, read in order and stopped at @scan:
    // the window joins nothing, so the scan can stop), plus the @quota oldest due tasks of every limited user. MySQL
    // and MariaDB have no LATERAL (MariaDB), so that part walks each user's due tasks in <table>_user_due one seek
    // at a time: the users with live tasks (a loose index scan: GROUP BY on the index's prefix reads one entry per
    // user, where DISTINCT reads them all), then per user its first due task, and @quota - 1
    // times the next one after it, keeping the limited ones (a seek for the next limited task walked every due
    // task of a user without a limit). Its cost grows with users times @quota, not with the backlog.
    private string RankingSql(string windowFilter, string userFilter)
    {
        var due = Quote(_table + "_due");
        var userDue = Quote(_table + "_user_due");
        string NextDue(string user, string after) => $"""
            SELECT y.id FROM {_t} AS y FORCE INDEX ({userDue})
                    WHERE y.finished_at IS NULL AND y.user_name = {user} AND y.due_at <= {Now} AND {PauseSql.NotPaused(_p, "y")}{after}
                    ORDER BY y.due_at, y.id LIMIT 1
            """;
        return $"""
            WITH RECURSIVE {RunningCte(userFilter)},
            users AS (
                SELECT user_name AS u FROM {_t} FORCE INDEX ({userDue})
                WHERE finished_at IS NULL AND user_name IS NOT NULL {userFilter}
                GROUP BY finished_at, user_name),
            walk (wu, wid, wdue, wn) AS (
                SELECT f.user_name, f.id, f.due_at, 1 FROM users JOIN {_t} AS f ON f.id = ({NextDue("users.u", "")})
                WHERE NOT {PauseSql.UserPaused(_p, "users.u")}
                UNION ALL
                SELECT nx.user_name, nx.id, nx.due_at, w.wn + 1 FROM walk AS w JOIN {_t} AS nx ON nx.id = (
                    {NextDue("w.wu", " AND (y.due_at > w.wdue OR (y.due_at = w.wdue AND y.id > w.wid))")})
                WHERE w.wn < @quota),
            pool AS (
                (SELECT c.id, c.user_name, c.max_running, c.due_at FROM {_t} AS c FORCE INDEX ({due})
                 WHERE c.finished_at IS NULL AND c.due_at <= {Now} AND {windowFilter} AND {PauseSql.NotPaused(_p, "c")}
                 ORDER BY c.due_at, c.id
                 LIMIT @scan)
                UNION
                SELECT p.id, p.user_name, p.max_running, p.due_at FROM walk JOIN {_t} AS p ON p.id = walk.wid WHERE p.max_running IS NOT NULL),
            candidates AS (
                SELECT p.id AS cid, p.user_name AS cu, p.max_running AS cmax, p.due_at AS cdue, COALESCE(r.rc, 0) AS crun
                FROM pool AS p LEFT JOIN running AS r ON r.ru = p.user_name),
            {AcquireSql.RankCtes}
            SELECT cid AS `Id`, cu AS `User`, cmax AS `MaxRunning` FROM chosen ORDER BY ord
            """;
    }

    private sealed record Ranked(long Id, string? User, int? MaxRunning);

    private static string InList(string prefix, int count) =>
        "(" + string.Join(", ", Enumerable.Range(0, count).Select(i => $"@{prefix}{i}")) + ")";

    private static void AddList(DynamicParameters p, string prefix, IReadOnlyList<object> values)
    {
        for (var i = 0; i < values.Count; i++) p.Add(prefix + i, values[i]);
    }

    public async Task<IReadOnlyList<TaskRow>> AcquireAsync(int max, long aliveMs, string? session, CancellationToken ct)
    {
        if (max > 0) await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await AcquireSql.FillAsync(max, want => AcquireOnceAsync(want, aliveMs, session, ct)).ConfigureAwait(false);
    }

    private Task<(List<TaskRow> Leased, long Ranked)> AcquireOnceAsync(int max, long aliveMs, string? session, CancellationToken ct)
    {
        var token = AcquireSql.NewToken();
        var scan = AcquireSql.Scan(max);
        var quota = AcquireSql.Quota(max);
        // Safe to run again after any failure: the transaction is rolled back, and leases of a lost commit expire.
        return Run(async c =>
        {
            var first = (await c.QueryAsync<Ranked>(Command(FirstRankingSql, new { scan, quota }, ct)).ConfigureAwait(false)).AsList();
            var limited = first.Take(scan).Where(r => r.User is not null && r.MaxRunning is not null).Select(r => r.User!).Distinct(StringComparer.Ordinal).ToList();
            List<Ranked> ranking;
            var begun = false; // the transaction starts with the first locking read
            if (limited.Count == 0)
            {
                if (first.Count == 0) return ([], 0L); // nothing due: no transaction at all
                ranking = first;
            }
            else
            {
                // The lock rows are made on first need (autocommit, before the transaction: a row this statement
                // inserts is visible to the locking read after it). Existing rows are only read, never locked here.
                var users = new DynamicParameters();
                AddList(users, "l", limited);
                var locked = (await c.QueryAsync<string>(Command(LockUsersSql(limited.Count), users, ct)).ConfigureAwait(false)).ToHashSet(StringComparer.Ordinal);
                begun = true;
                var lockedList = limited.Where(locked.Contains).ToList();
                var skippedList = limited.Where(u => !locked.Contains(u)).ToList();
                var p = new DynamicParameters(new { scan, quota });
                AddList(p, "l", lockedList);
                AddList(p, "s", skippedList);
                string InLocked(string alias) => lockedList.Count > 0 ? $"{alias}user_name IN {InList("l", lockedList.Count)}" : "FALSE";
                var unlimitedFree = skippedList.Count > 0 ? $"(c.max_running IS NULL AND c.user_name NOT IN {InList("s", skippedList.Count)})" : "c.max_running IS NULL";
                ranking = (await c.QueryAsync<Ranked>(Command(
                    RankingSql($"(c.user_name IS NULL OR {InLocked("c.")} OR {unlimitedFree})", "AND " + InLocked("")), p, ct)).ConfigureAwait(false)).AsList();
            }

            var held = new List<long>();
            for (var next = 0; next < ranking.Count && held.Count < max;)
            {
                var ids = ranking.Skip(next).Take(max - held.Count).Select(r => (object)r.Id).ToList();
                next += ids.Count;
                var p = new DynamicParameters();
                AddList(p, "i", ids);
                var got = (await c.QueryAsync<long>(Command(LockRowsSql(ids.Count, begun), p, ct)).ConfigureAwait(false)).ToHashSet();
                begun = true;
                held.AddRange(ids.Cast<long>().Where(got.Contains)); // in rank order
            }

            var rows = new List<TaskRow>();
            if (held.Count > 0)
            {
                var p = new DynamicParameters(new { token, alive = aliveMs, session });
                AddList(p, "i", held.Cast<object>().ToList());
                rows = (await c.QueryAsync<TaskRow>(Command(LeaseSql(held.Count), p, ct)).ConfigureAwait(false)).AsList();
            }
            else if (begun)
            {
                await c.ExecuteAsync(Command("COMMIT", null, ct)).ConfigureAwait(false);
            }
            rows.Sort((x, y) => Nullable.Compare(x.LeaseToken, y.LeaseToken));
            return (rows, (long)ranking.Count);
        }, RetrySafety.Always, ct);
    }

    // ---- batches: heartbeat and fenced writes ----

    private const string LeaseColumns = "wid BIGINT PATH '$[0]', wtok BIGINT PATH '$[1]'";

    private static string LeasesJson(IEnumerable<Lease> leases) =>
        JsonSerializer.Serialize(leases.Select(l => new[] { l.Id, l.Token }), Json);

    public Task<IReadOnlyList<ExtendedLease>> HeartbeatAsync(IReadOnlyList<Lease> leases, long aliveMs, CancellationToken ct)
    {
        if (leases.Count == 0) return Task.FromResult<IReadOnlyList<ExtendedLease>>([]);
        // An expired lease is not revived (see the SQLite store): the holder learns it lost the task. The UPDATE
        // sets every extended deadline to its own now + @alive; the SELECT after it, in the same transaction (the
        // extended rows stay locked), finds exactly those: a lease it did not extend had a deadline at or before
        // that now.
        return Run(async c => (IReadOnlyList<ExtendedLease>)(await c.QueryAsync<(long Id, short CancelRequested)>(Command(HeartbeatSql, new { batch = LeasesJson(leases), alive = aliveMs }, ct)).ConfigureAwait(false))
            .Select(r => new ExtendedLease(r.Id, r.CancelRequested != 0)).ToList(), RetrySafety.Always, ct);
    }

    // Not retried on an ambiguous connection loss: a second try of a committed write would look like a lost lease.
    public Task<IReadOnlySet<long>> ApplyAsync(IReadOnlyList<LeaseWrite> writes, CancellationToken ct)
    {
        if (writes.Count == 0) return Task.FromResult<IReadOnlySet<long>>(new HashSet<long>());
        var finishes = writes.Where(w => w.Kind == LeaseWriteKind.Finish).ToList();
        var retries = writes.Where(w => w.Kind == LeaseWriteKind.Retry).ToList();
        var releases = writes.Where(w => w.Kind == LeaseWriteKind.Release).ToList();
        var attempts = writes.Any(w => w.Attempt is not null);
        var notices = writes.Any(w => w.Notice is not null);
        var sql = ApplySql(finishes.Count > 0, retries.Count > 0, releases.Count > 0, attempts, notices);
        var args = HistoryArgs(writes, new
        {
            all = LeasesJson(writes.Select(w => w.Lease)),
            finishes = JsonSerializer.Serialize(finishes.Select(w => new object?[] { w.Lease.Id, w.Lease.Token, w.Outcome, w.Message, w.RetentionMs, w.Uncounted ? 1 : 0 }), Json),
            retries = JsonSerializer.Serialize(retries.Select(w => new object?[] { w.Lease.Id, w.Lease.Token, w.DelayMs, w.Message }), Json),
            releases = LeasesJson(releases.Select(w => w.Lease)),
        });
        return Run(async c => (IReadOnlySet<long>)(await c.QueryAsync<long>(Command(sql, args, ct)).ConfigureAwait(false)).ToHashSet(),
            RetrySafety.BeforeSent, ct);
    }

    public Task<bool> UpdateDataAsync(Lease lease, byte[] data, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(Command(UpdateDataSql,
            new { data, id = lease.Id, token = lease.Token }, ct)).ConfigureAwait(false) == 1, RetrySafety.Always, ct);

    // ---- submit ----

    /// <summary>
    /// The most characters of JSON one submit statement carries: data travels as base64 inside it, and the whole
    /// statement must fit the server's max_allowed_packet (16 MB by default on MariaDB, 64 MB on MySQL).
    /// </summary>
    internal const long MaxBatchChars = 4L * 1024 * 1024;

    public async Task<bool[]> SubmitAsync(IReadOnlyList<NewTaskRow> tasks, CancellationToken ct)
    {
        if (tasks.Count == 0) return [];
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        // A repeated key in the batch is a duplicate of its first occurrence.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var unique = new List<(int Index, NewTaskRow Row)>(tasks.Count);
        for (var i = 0; i < tasks.Count; i++)
            if (seen.Add(tasks[i].Key)) unique.Add((i, tasks[i]));
        var result = new bool[tasks.Count];
        foreach (var part in SqlServer.SqlServerQueueStore.SplitBySize(unique.Select(u => u.Row).ToList(), MaxBatchChars).Select(p => p.Select(i => unique[i]).ToList()))
        {
            try
            {
                var stored = await InsertAsync(part.Select(u => u.Row).ToList(), ct).ConfigureAwait(false);
                foreach (var (index, row) in part) result[index] = stored.Contains(row.Key);
            }
            catch (MySqlException e) when (MySqlErrors.IsDuplicateKey(e.Number))
            {
                // A key was taken between the check and the insert (a concurrent submit), so the whole insert was
                // undone. Row by row, each duplicate is told by its error number and the others are stored.
                foreach (var (index, row) in part)
                {
                    try { result[index] = (await InsertAsync([row], ct).ConfigureAwait(false)).Contains(row.Key); }
                    catch (MySqlException one) when (MySqlErrors.IsDuplicateKey(one.Number)) { result[index] = false; }
                }
            }
        }
        return result;
    }

    // Two statements. First, keys of finished rows past their retention are freed (the row is gone for readers
    // already; cleanup would delete it anyway) and the keys still taken are read. Then one INSERT of exactly the
    // other rows, in batch order. If a concurrent submit took one of them in between, the unique index refuses
    // it and the INSERT, one statement, stores nothing (1062): SubmitAsync then goes row by row. So every row
    // reported stored was inserted by this call. Never INSERT IGNORE: it would turn a value error into a warning.
    // Not retried on an ambiguous connection loss: the insert may have committed, and a second try would
    // report the caller's own task as a duplicate.
    private Task<HashSet<string>> InsertAsync(IReadOnlyList<NewTaskRow> rows, CancellationToken ct) => Run(async c =>
    {
        var keys = JsonSerializer.Serialize(rows.Select(r => r.Key), Json);
        var taken = (await c.QueryAsync<string>(Command(FreeKeysSql, new { keys }, ct)).ConfigureAwait(false)).ToHashSet(StringComparer.Ordinal);
        var fresh = rows.Where(r => !taken.Contains(r.Key)).ToList();
        if (fresh.Count == 0) return new HashSet<string>(StringComparer.Ordinal);
        var batch = JsonSerializer.Serialize(fresh.Select(t => new
        {
            key = t.Key, type = t.Type, user = t.User, data = Convert.ToBase64String(t.Data),
            maxRunning = t.MaxRunning, runAt = t.RunAtMs, delay = t.DelayMs, timeout = t.TimeoutMs, trace = t.TraceParent,
        }), Json);
        // Text columns of JSON_TABLE are LONGTEXT, so a value too long for its table column fails loudly (1406)
        // instead of being cut by JSON_TABLE.
        await c.ExecuteAsync(Command(InsertSql, new { batch }, ct)).ConfigureAwait(false);
        return fresh.Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
    }, RetrySafety.BeforeSent, ct);

    // ---- reads ----

    public Task<bool> IsInitializedAsync(CancellationToken ct) => Run(async c =>
        await c.ExecuteScalarAsync<long>(Command(TableExistsSql("@name"), new { name = _table }, ct)).ConfigureAwait(false) != 0,
        RetrySafety.Always, ct, checkTable: false);

    private static string TableExistsSql(string parameter) =>
        $"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = {parameter}";

    public Task<long> NowAsync(CancellationToken ct) => Run(c => c.ExecuteScalarAsync<long>(Command(NowQuery, null, ct)), RetrySafety.Always, ct, checkTable: false);

    public async Task<TaskRow?> GetAsync(string key, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.QuerySingleOrDefaultAsync<TaskRow?>(Command(GetSql, new { key }, ct)),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskRow>> GetByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken ct)
    {
        if (ids.Count == 0) return [];
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<TaskRow>)(await c.QueryAsync<TaskRow>(Command(GetByIdsSql, new { ids = ids.ToArray() }, ct)).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskRow>> ListAsync(TaskQuery q, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<TaskRow>)(await c.QueryAsync<TaskRow>(Command(ListSql(q),
            new { keys = q.Keys?.ToArray(), types = q.Types?.ToArray(), users = q.Users?.ToArray(), first = q.First,
                keyPatterns = q.KeyPatterns is { Count: > 0 } p ? JsonSerializer.Serialize(p.Select(KeyPatternSql.Regex), Json) : null, newest = q.Newest,
                pageSize = q.Page?.Size, beforeId = q.Page?.BeforeId }, ct)).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    // The clock first, then the counts against it, so the Waiting/Running split and the ages use one now.
    public Task<(IReadOnlyList<SummaryRow> Rows, long Now)> SummarizeAsync(CancellationToken ct) => Run(async c =>
    {
        var now = await c.ExecuteScalarAsync<long>(Command(NowQuery, null, ct)).ConfigureAwait(false);
        var rows = (await c.QueryAsync<SummaryRow>(Command(SummarySql, new { now }, ct)).ConfigureAwait(false)).AsList();
        return ((IReadOnlyList<SummaryRow>)rows, now);
    }, RetrySafety.Always, ct);

    public Task<bool> AnyDueOrRunningAsync(CancellationToken ct) => Run(async c =>
        await c.ExecuteScalarAsync<int>(Command(DueOrRunningSql, null, ct)).ConfigureAwait(false) == 1, RetrySafety.Always, ct);

    // ---- cancel, force finish, cleanup ----

    public Task<CancelRequestResult> RequestCancelAsync(string key, string message, long retentionMs, CancellationToken ct) => Run(async c =>
    {
        // MySQL assigns left to right, and a later assignment sees the new values: in CancelSet only due_at's
        // condition reads a column set before it (lease_token), and it is NULL there exactly when the task was idle,
        // so every column ends as on the other backends. The row stays locked until COMMIT, so the state read
        // after is the one this request made (ROW_COUNT: whether it matched a live task).
        var state = await c.ExecuteScalarAsync<string>(Command(RequestCancelSql, new { key, message, retention = retentionMs }, ct)).ConfigureAwait(false);
        return Enum.Parse<CancelRequestResult>(state ?? nameof(CancelRequestResult.NotFound));
    }, RetrySafety.Always, ct); // running it again lands on the same state

    public Task<bool> ForceFinishAsync(string key, string outcome, string? message, long retentionMs, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(Command(ForceFinishSql, new { key, outcome, message, retention = retentionMs }, ct)).ConfigureAwait(false) == 1, RetrySafety.BeforeSent, ct);

    public Task<int> CleanupAsync(int limit, CancellationToken ct) => Run(c => CleanupWithAttemptsAsync(c, limit, ct),
        RetrySafety.Always, ct);

    // ---- worker sessions ----

    private QueueNotInitializedException NotInitialized(Exception? inner) => StoreMessages.NotInitialized(_table, Description, inner);

    private Task<(bool Queue, bool Workers)> TablesAsync(CancellationToken ct) => Run(async c =>
    {
        var (queue, workers) = await c.QuerySingleAsync<(long, long)>(Command(
            $"SELECT ({TableExistsSql("@queue")}), ({TableExistsSql("@workers")})", new { queue = _table, workers = _workersTable }, ct)).ConfigureAwait(false);
        return (queue != 0, workers != 0);
    }, RetrySafety.Always, ct, checkTable: false);

    // Runs a statement on the sessions table. A queue without one reads as no sessions (whenMissing), unless the
    // queue table itself is missing.
    private Task<T> OnWorkersTableAsync<T>(Func<MySqlConnection, Task<T>> work, T whenMissing, RetrySafety safety, CancellationToken ct) =>
        WorkersTableGuard.RunAsync(() => Run(work, safety, ct, checkTable: false),
            e => e is MySqlException me && MySqlErrors.IsMissingTable(me.Number),
            async () => (await TablesAsync(ct).ConfigureAwait(false)).Queue, NotInitialized, whenMissing);

    public async Task<long?> RegisterWorkerAsync(WorkerBeat session, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false); // a queue of an older version gains its sessions table here at the latest
        var (queue, workers) = await TablesAsync(ct).ConfigureAwait(false);
        if (!queue) throw NotInitialized(null);
        if (!workers) throw WorkersTableMissing();
        // Not retried on an ambiguous connection loss: a second try would find its own row and report the id taken.
        try
        {
            return await Run(c => c.ExecuteScalarAsync<long?>(Command(RegisterWorkerSql, new { id = session.Id, host = session.Host, pid = session.Pid, processors = session.Processors, running = session.Running, alive = session.AliveMs, processorType = session.ProcessorType }, ct)),
                RetrySafety.BeforeSent, ct).ConfigureAwait(false);
        }
        catch (MySqlException e) when (MySqlErrors.IsDuplicateKey(e.Number))
        {
            return null;
        }
    }

    public async Task<bool> BeatWorkerAsync(WorkerBeat beat, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => await c.ExecuteScalarAsync<short>(Command(BeatWorkerSql, new { id = beat.Id, host = beat.Host, pid = beat.Pid, processors = beat.Processors, running = beat.Running, alive = beat.AliveMs, started = beat.StartedAt, processorType = beat.ProcessorType }, ct))
            .ConfigureAwait(false) != 0,
            RetrySafety.Always, ct).ConfigureAwait(false); // the same beat twice lands on the same state
    }

    public Task RemoveWorkerAsync(string id, CancellationToken ct) => OnWorkersTableAsync(c =>
        c.ExecuteAsync(Command(RemoveWorkerSql, new { id }, ct)), 0, RetrySafety.Always, ct);

    public async Task<IReadOnlyList<WorkerSessionRow>> ListWorkersAsync(CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await OnWorkersTableAsync(async c =>
            (IReadOnlyList<WorkerSessionRow>)(await c.QueryAsync<WorkerSessionRow>(Command(ListWorkersSql, null, ct)).ConfigureAwait(false)).AsList(),
            [], RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<RunningRow>> ListRunningAsync(CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<RunningRow>)(await c.QueryAsync<RunningRow>(Command(ListRunningSql, null, ct)).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<WorkerSessionRow?> RequestWorkerStopAsync(string id, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await OnWorkersTableAsync(c => c.QuerySingleOrDefaultAsync<WorkerSessionRow?>(Command(RequestWorkerStopSql, new { id }, ct)),
            null, RetrySafety.Always, ct).ConfigureAwait(false); // running it again lands on the same state
    }

    public Task<int> CleanupWorkersAsync(long deadForMs, CancellationToken ct) => OnWorkersTableAsync(c =>
        c.ExecuteAsync(Command(CleanupWorkersSql, new { deadFor = deadForMs }, ct)), 0, RetrySafety.Always, ct);

    public async Task<bool> WaitForSubmitAsync(TimeSpan timeout, CancellationToken ct)
    {
        await Task.Delay(timeout, ct).ConfigureAwait(false); // MySQL has no notifications: poll
        return false;
    }

    // ---- connections, errors and retries ----

    private static CommandDefinition Command(string sql, object? parameters, CancellationToken ct) =>
        new(SessionSetup + sql, parameters, cancellationToken: ct);

    private async Task<MySqlConnection> OpenAsync(CancellationToken ct)
    {
        var c = new MySqlConnection(_connectionString);
        try
        {
            await c.OpenAsync(ct).ConfigureAwait(false);
            return c;
        }
        catch
        {
            await c.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private Task<T> Run<T>(Func<MySqlConnection, Task<T>> work, RetrySafety safety, CancellationToken ct, bool checkTable = true) =>
        _runner.RunAsync(work, safety, ct, checkTable);

    // A statement that failed inside START TRANSACTION ... COMMIT leaves the transaction open (MySQL ends a
    // multi-statement command at its first error). Roll back here, so a pooled connection never keeps a
    // transaction, and its row locks, while it waits in the pool.
    private static async Task RollbackAsync(MySqlConnection c)
    {
        if (c.State != System.Data.ConnectionState.Open) return;
        try
        {
            await using var cmd = new MySqlCommand("ROLLBACK", c);
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is MySqlException or InvalidOperationException or IOException) { /* the connection is broken; the server rolls back */ }
    }

    private bool ShouldRetry(Exception e, bool opened, RetrySafety safety)
    {
        // A server restart breaks every pooled connection at once: after one broke, drop the idle ones too, so the
        // next try (and the next command) opens fresh connections.
        if (MySqlErrors.IsBrokenConnection(e))
        {
            using var pooled = new MySqlConnection(_connectionString);
            MySqlConnection.ClearPool(pooled);
        }
        return MySqlErrors.ShouldRetry(e, opened, safety);
    }

    /// <summary>Strict-mode value errors (1366, 1406, 1300, 1264), or text the client cannot encode.</summary>
    public bool IsValueError(Exception error) =>
        (error is MySqlException e && MySqlErrors.IsValueError(e.Number)) || StoreErrors.IsEncodingError(error);

    public void Dispose()
    {
        // Connections are pooled by MySqlConnector per connection string and shared with other stores: nothing to release.
    }
}
