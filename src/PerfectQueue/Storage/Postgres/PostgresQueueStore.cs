using System.Text;
using Dapper;
using Npgsql;

namespace PerfectQueue.Storage.Postgres;

/// <summary>
/// The PostgreSQL backend. Acquire leases rows with FOR UPDATE SKIP LOCKED and UPDATE ... RETURNING in one
/// statement; batches travel as arrays through unnest. Times come from the server's clock. Transient
/// errors are retried with bounded backoff where running the operation again is safe.
/// </summary>
internal sealed partial class PostgresQueueStore : IQueueStore, StoreStatements.IInventory, Relational.ISchemaOwner
{
    // The server clock in Unix milliseconds: the start of the current statement.
    private const string Now = "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000)::bigint";

    private const string EmptyArray = "{}";

    private readonly NpgsqlDataSource _dataSource;
    private readonly StoreRunner<NpgsqlConnection> _runner;
    private readonly string _table;
    private readonly string _t;
    private readonly string _workersTable;
    private readonly string _w;
    private readonly string _pausesTable;
    private readonly string _p;
    private readonly string _channel;
    private readonly int _lockNamespace;
    private readonly string _columns;
    private readonly string _lockUsersSql, _acquireSql, _submitSql;
    // The statements every task runs, rewritten once to positional parameters (PositionalStatement).
    private readonly PositionalStatement _lockUsers, _acquire, _submit, _heartbeat;
    private readonly (PositionalStatement Plain, PositionalStatement WithAttempts) _finish, _retry, _release;
    private readonly SemaphoreSlim _listenGate = new(1, 1);
    private NpgsqlConnection? _listener;
    private readonly string _listenConnectionString;
    private volatile bool _notified;

    public PostgresQueueStore(string connectionString, string table, string description)
    {
        var names = new StoreNames(table, Quote);
        _table = names.Table;
        _t = names.QuotedTable;
        _workersTable = names.Workers;
        _w = names.QuotedWorkers;
        _pausesTable = names.Pauses;
        _p = names.QuotedPauses;
        _channel = "pq_" + _table;
        _lockNamespace = StableHash("perfectqueue:" + _table);
        Description = description;
        _dataSource = NpgsqlDataSource.Create(connectionString);
        // The listening connection is its own, never pooled: it holds a LISTEN for as long as it lives, and pooled
        // connections are not reset when they go back (PostgresBackend.ApplyDefaults).
        _listenConnectionString = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;
        _runner = new StoreRunner<NpgsqlConnection>(
            ct => _dataSource.OpenConnectionAsync(ct).AsTask(), ShouldRetry,
            e => e is PostgresException { SqlState: PostgresErrorCodes.UndefinedTable },
            e => Task.FromResult<Exception?>(NotInitialized(e)));
        _columns = RowProjection.TaskColumns(Now, Quote);

        (_lockUsersSql, _acquireSql) = AcquireStatements();
        _submitSql = SubmitStatement();
        _lockUsers = new(_lockUsersSql);
        _acquire = new(_acquireSql);
        _submit = new(_submitSql);
        _heartbeat = new(HeartbeatSql);
        _finish = (new(FinishSql), new(WithAttempts(FinishSql)));
        _retry = (new(RetrySql), new(WithAttempts(RetrySql)));
        _release = (new(ReleaseSql), new(WithAttempts(ReleaseSql)));
    }

    public string Description { get; }

    private static string Quote(string identifier) => StoreNames.DoubleQuote(identifier);

    // FNV-1a: stable across processes and versions (string.GetHashCode is randomized per process).
    private static int StableHash(string text)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(text)) hash = (hash ^ b) * 16777619u;
        return unchecked((int)hash);
    }

    public Task<bool> IsInitializedAsync(CancellationToken ct) => Run(c =>
        c.ExecuteScalarAsync<bool>("SELECT to_regclass(@name) IS NOT NULL", new { name = _t }), RetrySafety.Always, ct, checkTable: false);

    public Task<long> NowAsync(CancellationToken ct) => Run(c => c.ExecuteScalarAsync<long>(NowQuery), RetrySafety.Always, ct, checkTable: false);

    public async Task<bool[]> SubmitAsync(IReadOnlyList<NewTaskRow> tasks, CancellationToken ct)
    {
        if (tasks.Count == 0) return [];
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        // One INSERT may not touch a key twice: a repeated key in the batch is a duplicate of its first.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var isFirst = new bool[tasks.Count];
        var unique = new List<NewTaskRow>(tasks.Count);
        for (var i = 0; i < tasks.Count; i++)
            if (isFirst[i] = seen.Add(tasks[i].Key)) unique.Add(tasks[i]);
        // Not retried on an ambiguous connection loss: the insert may have committed, and a second try
        // would report the caller's own task as a duplicate.
        return await Run(async c =>
        {
            var stored = (await ReadAllAsync(_submit.Command(c, null, SubmitArgs(unique, _channel)), r => r.GetString(0), ct).ConfigureAwait(false)).ToHashSet(StringComparer.Ordinal);
            var result = new bool[tasks.Count];
            for (var i = 0; i < tasks.Count; i++)
                result[i] = isFirst[i] && stored.Contains(tasks[i].Key);
            return result;
        }, RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskRow>> AcquireAsync(int max, long aliveMs, string? session, CancellationToken ct)
    {
        if (max > 0) await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await AcquireSql.FillAsync(max, want => AcquireOnceAsync(want, aliveMs, session, ct)).ConfigureAwait(false);
    }

    /// <summary>
    /// Acquire must walk the due index in order and stop after @scan rows, and reach every other row by an index.
    /// Before autovacuum has analyzed a new, fast-filling table, the planner guesses a handful of rows and prefers a
    /// bitmap scan that sorts the whole backlog (measured: 13.7 ms instead of 0.25 ms at 20,000 due tasks, and
    /// growing), or a hashed scan of the whole table to find the 4 rows to lease. Both are never right for acquire,
    /// so its transaction turns them off (a cost penalty, not a ban: the tiny pauses table is still scanned).
    /// </summary>
    internal const string AcquirePlannerSettings = "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)";

    private Task<(List<TaskRow> Leased, long Ranked)> AcquireOnceAsync(int max, long aliveMs, string? session, CancellationToken ct)
    {
        var token = AcquireSql.NewToken();
        var scan = AcquireSql.Scan(max);
        var quota = AcquireSql.Quota(max);
        // Safe to run again after any failure: leases of a lost attempt simply expire.
        return Run(async c =>
        {
            // BEGIN, the two statements and COMMIT in one round trip.
            await using var batch = new NpgsqlBatch(c)
            {
                BatchCommands =
                {
                    new NpgsqlBatchCommand("BEGIN"),
                    new NpgsqlBatchCommand(AcquirePlannerSettings),
                    _lockUsers.BatchCommand(("scan", scan), ("quota", quota), ("ns", _lockNamespace)),
                    _acquire.BatchCommand(("scan", scan), ("quota", quota), ("max", max), ("alive", aliveMs), ("token", token),
                        ("session", new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text, Value = (object?)session ?? DBNull.Value })),
                    new NpgsqlBatchCommand("COMMIT"),
                },
            };
            var rows = new List<TaskRow>();
            long ranked = 0;
            await using (var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false))
            {
                do
                {
                    if (reader.FieldCount > 0 && reader.GetName(0) == "Id")
                    {
                        var parse = reader.GetRowParser<TaskRow>();
                        var rankedAt = reader.GetOrdinal("Ranked");
                        while (await reader.ReadAsync(ct).ConfigureAwait(false))
                        {
                            ranked = reader.GetInt64(rankedAt);
                            if (!reader.IsDBNull(0)) rows.Add(parse(reader)); // the one row of an empty lease has no task
                        }
                    }
                } while (await reader.NextResultAsync(ct).ConfigureAwait(false));
            }
            rows.Sort((x, y) => Nullable.Compare(x.LeaseToken, y.LeaseToken));
            return (rows, ranked);
        }, RetrySafety.Always, ct);
    }

    public Task<IReadOnlyList<ExtendedLease>> HeartbeatAsync(IReadOnlyList<Lease> leases, long aliveMs, CancellationToken ct)
    {
        if (leases.Count == 0) return Task.FromResult<IReadOnlyList<ExtendedLease>>([]);
        var ids = leases.Select(l => l.Id).ToArray();
        var tokens = leases.Select(l => l.Token).ToArray();
        return Run(async c => (IReadOnlyList<ExtendedLease>)await ReadAllAsync(_heartbeat.Command(c, null, ("ids", ids), ("tokens", tokens), ("alive", aliveMs)),
            r => new ExtendedLease(r.GetInt64(0), r.GetInt16(1) != 0), ct).ConfigureAwait(false), RetrySafety.Always, ct);
    }

    public Task<IReadOnlySet<long>> ApplyAsync(IReadOnlyList<LeaseWrite> writes, CancellationToken ct)
    {
        if (writes.Count == 0) return Task.FromResult<IReadOnlySet<long>>(new HashSet<long>());
        var finishes = writes.Where(w => w.Kind == LeaseWriteKind.Finish).ToList();
        var retries = writes.Where(w => w.Kind == LeaseWriteKind.Retry).ToList();
        var releases = writes.Where(w => w.Kind == LeaseWriteKind.Release).ToList();
        // Not retried on an ambiguous connection loss: a second try of a committed write would look like a lost lease.
        return Run(async c =>
        {
            var done = new HashSet<long>();
            // One kind is one statement (autocommit); several kinds commit together.
            var kinds = (finishes.Count > 0 ? 1 : 0) + (retries.Count > 0 ? 1 : 0) + (releases.Count > 0 ? 1 : 0);
            // Attempt rows travel inside each kind's statement (WithAttempts); notices, rare, are one more statement.
            var notices = writes.Any(w => w.Notice is not null);
            await using var tx = kinds > 1 || notices ? await c.BeginTransactionAsync(ct).ConfigureAwait(false) : null;
            // Once sent, a write is not cancelled (LeaseWriteBatcher): its outcome must be known.
            async Task Apply((PositionalStatement Plain, PositionalStatement WithAttempts) statement, List<LeaseWrite> some, params (string, object?)[] args)
            {
                if (some.Count == 0) return;
                var recorded = some.Any(w => w.Attempt is not null);
                var command = (recorded ? statement.WithAttempts : statement.Plain).Command(c, tx, recorded ? [.. args, .. AttemptArgs(some)] : args);
                done.UnionWith(await ReadAllAsync(command, r => r.GetInt64(0), CancellationToken.None).ConfigureAwait(false));
            }
            await Apply(_finish, finishes,
                ("ids", finishes.Select(w => w.Lease.Id).ToArray()), ("tokens", finishes.Select(w => w.Lease.Token).ToArray()),
                ("outcomes", finishes.Select(w => w.Outcome).ToArray()), ("messages", finishes.Select(w => w.Message).ToArray()),
                ("retentions", finishes.Select(w => w.RetentionMs).ToArray()), ("uncounted", finishes.Select(w => w.Uncounted ? 1 : 0).ToArray())).ConfigureAwait(false);
            await Apply(_retry, retries,
                ("ids", retries.Select(w => w.Lease.Id).ToArray()), ("tokens", retries.Select(w => w.Lease.Token).ToArray()),
                ("delays", retries.Select(w => w.DelayMs).ToArray()), ("messages", retries.Select(w => w.Message).ToArray())).ConfigureAwait(false);
            await Apply(_release, releases,
                ("ids", releases.Select(w => w.Lease.Id).ToArray()), ("tokens", releases.Select(w => w.Lease.Token).ToArray())).ConfigureAwait(false);
            if (notices) await SubmitNoticesAsync(c, tx, writes, done).ConfigureAwait(false);
            if (tx is not null) await tx.CommitAsync(ct).ConfigureAwait(false);
            return (IReadOnlySet<long>)done;
        }, RetrySafety.BeforeSent, ct);
    }

    // Every row of a command's one result, read by position.
    private static async Task<List<T>> ReadAllAsync<T>(NpgsqlCommand command, Func<NpgsqlDataReader, T> read, CancellationToken ct)
    {
        await using (command)
        {
            var rows = new List<T>();
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false)) rows.Add(read(reader));
            return rows;
        }
    }

    private static (string, object?)[] SubmitArgs(IReadOnlyList<NewTaskRow> tasks, string channel) =>
    [
        ("keys", tasks.Select(t => t.Key).ToArray()), ("types", tasks.Select(t => t.Type).ToArray()), ("users", tasks.Select(t => t.User).ToArray()),
        ("datas", tasks.Select(t => t.Data).ToArray()), ("maxes", tasks.Select(t => t.MaxRunning).ToArray()), ("runats", tasks.Select(t => t.RunAtMs).ToArray()),
        ("delays", tasks.Select(t => t.DelayMs).ToArray()), ("timeouts", tasks.Select(t => t.TimeoutMs).ToArray()),
        ("traces", tasks.Select(t => t.TraceParent).ToArray()), ("channel", channel),
    ];

    public Task<bool> UpdateDataAsync(Lease lease, byte[] data, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(UpdateDataSql,
            new { data, id = lease.Id, token = lease.Token }).ConfigureAwait(false) == 1, RetrySafety.Always, ct);

    public async Task<TaskRow?> GetAsync(string key, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.QuerySingleOrDefaultAsync<TaskRow?>(GetSql, new { key }),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskRow>> GetByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken ct)
    {
        if (ids.Count == 0) return [];
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<TaskRow>)(await c.QueryAsync<TaskRow>(GetByIdsSql, new { ids = ids.ToArray() }).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskRow>> ListAsync(TaskQuery q, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<TaskRow>)(await c.QueryAsync<TaskRow>(ListSql(q),
            new { keys = q.Keys?.ToArray(), types = q.Types?.ToArray(), users = q.Users?.ToArray(), first = q.First,
                keyPatterns = q.KeyPatterns?.Select(KeyPatternSql.Regex).ToArray(), newest = q.Newest,
                pageSize = q.Page?.Size, beforeId = q.Page?.BeforeId }).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public Task<(IReadOnlyList<SummaryRow> Rows, long Now)> SummarizeAsync(CancellationToken ct) => Run(async c =>
    {
        await using var tx = await c.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct).ConfigureAwait(false); // one snapshot for both
        var now = await c.ExecuteScalarAsync<long>(NowQuery, transaction: tx).ConfigureAwait(false);
        var rows = (await c.QueryAsync<SummaryRow>(SummarySql, new { now }, tx).ConfigureAwait(false)).AsList();
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return ((IReadOnlyList<SummaryRow>)rows, now);
    }, RetrySafety.Always, ct);

    public Task<bool> AnyDueOrRunningAsync(CancellationToken ct) => Run(async c =>
        await c.ExecuteScalarAsync<int>(DueOrRunningSql).ConfigureAwait(false) == 1, RetrySafety.Always, ct);

    public Task<CancelRequestResult> RequestCancelAsync(string key, string message, long retentionMs, CancellationToken ct) => Run(async c =>
    {
        var finished = (await c.QueryAsync<long?>(RequestCancelSql, new { key, message, retention = retentionMs }).ConfigureAwait(false)).ToList();
        if (finished.Count == 1) return finished[0] is null ? CancelRequestResult.Flagged : CancelRequestResult.CancelledBeforeStart;
        var exists = await c.ExecuteScalarAsync<bool>(KeyVisibleSql, new { key }).ConfigureAwait(false);
        return exists ? CancelRequestResult.AlreadyFinished : CancelRequestResult.NotFound;
    }, RetrySafety.Always, ct); // running it again lands on the same state

    public Task<bool> ForceFinishAsync(string key, string outcome, string? message, long retentionMs, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(ForceFinishSql, new { key, outcome, message, retention = retentionMs }).ConfigureAwait(false) == 1, RetrySafety.BeforeSent, ct);

    public Task<int> CleanupAsync(int limit, CancellationToken ct) => Run(c => c.ExecuteScalarAsync<int>(CleanupWithAttemptsSql, new { limit }), RetrySafety.Always, ct);

    // ---- worker sessions ----

    private QueueNotInitializedException NotInitialized(Exception? inner) => StoreMessages.NotInitialized(_table, Description, inner);

    private Task<(bool Queue, bool Workers)> TablesAsync(CancellationToken ct) => Run(c =>
        c.QuerySingleAsync<(bool, bool)>("SELECT to_regclass(@queue) IS NOT NULL, to_regclass(@workers) IS NOT NULL", new { queue = _t, workers = _w }),
        RetrySafety.Always, ct, checkTable: false);

    // Runs a statement on the sessions table. A queue of schema version 1 has none yet: that reads as no
    // sessions (whenMissing), unless the queue table itself is missing.
    private Task<T> OnWorkersTableAsync<T>(Func<NpgsqlConnection, Task<T>> work, T whenMissing, RetrySafety safety, CancellationToken ct) =>
        WorkersTableGuard.RunAsync(() => Run(work, safety, ct, checkTable: false),
            e => e is PostgresException { SqlState: PostgresErrorCodes.UndefinedTable },
            async () => (await TablesAsync(ct).ConfigureAwait(false)).Queue, NotInitialized, whenMissing);

    public async Task<long?> RegisterWorkerAsync(WorkerBeat session, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false); // a queue of an older version gains its sessions table here at the latest
        var (queue, workers) = await TablesAsync(ct).ConfigureAwait(false);
        if (!queue) throw NotInitialized(null);
        if (!workers) throw WorkersTableMissing();
        // Not retried on an ambiguous connection loss: a second try would find its own row and report the id taken.
        return await Run(c => c.ExecuteScalarAsync<long?>(RegisterWorkerSql, new { id = session.Id, host = session.Host, pid = session.Pid, processors = session.Processors, running = session.Running, alive = session.AliveMs, processorType = session.ProcessorType }),
            RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<bool> BeatWorkerAsync(WorkerBeat beat, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => await c.ExecuteScalarAsync<short>(BeatWorkerSql, new { id = beat.Id, host = beat.Host, pid = beat.Pid, processors = beat.Processors, running = beat.Running, alive = beat.AliveMs, started = beat.StartedAt, processorType = beat.ProcessorType })
            .ConfigureAwait(false) != 0,
            RetrySafety.Always, ct).ConfigureAwait(false); // the same beat twice lands on the same state
    }

    public Task RemoveWorkerAsync(string id, CancellationToken ct) => OnWorkersTableAsync(c =>
        c.ExecuteAsync(RemoveWorkerSql, new { id }), 0, RetrySafety.Always, ct);

    public async Task<IReadOnlyList<WorkerSessionRow>> ListWorkersAsync(CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await OnWorkersTableAsync(async c =>
            (IReadOnlyList<WorkerSessionRow>)(await c.QueryAsync<WorkerSessionRow>(ListWorkersSql).ConfigureAwait(false)).AsList(),
            [], RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<RunningRow>> ListRunningAsync(CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<RunningRow>)(await c.QueryAsync<RunningRow>(ListRunningSql).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<WorkerSessionRow?> RequestWorkerStopAsync(string id, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await OnWorkersTableAsync(c =>
            c.QuerySingleOrDefaultAsync<WorkerSessionRow?>(RequestWorkerStopSql, new { id }),
            null, RetrySafety.Always, ct).ConfigureAwait(false); // running it again lands on the same state
    }

    public Task<int> CleanupWorkersAsync(long deadForMs, CancellationToken ct) => OnWorkersTableAsync(c =>
        c.ExecuteAsync(CleanupWorkersSql, new { deadFor = deadForMs }), 0, RetrySafety.Always, ct);

    /// <summary>Waits for a submit notification (LISTEN/NOTIFY); false when the timeout passed first.</summary>
    public async Task<bool> WaitForSubmitAsync(TimeSpan timeout, CancellationToken ct)
    {
        // One listening connection per store; other callers fall back to plain waiting (polling).
        if (!await _listenGate.WaitAsync(0, ct).ConfigureAwait(false))
        {
            await Task.Delay(timeout, ct).ConfigureAwait(false);
            return false;
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            if (_listener is null)
            {
                var listener = new NpgsqlConnection(_listenConnectionString);
                try { await listener.OpenAsync(ct).ConfigureAwait(false); }
                catch
                {
                    await listener.DisposeAsync().ConfigureAwait(false);
                    throw;
                }
                listener.Notification += (_, _) => _notified = true;
                await listener.ExecuteAsync($"LISTEN {Quote(_channel)}").ConfigureAwait(false);
                _listener = listener;
            }
            if (!_notified) await _listener.WaitAsync(timeout, ct).ConfigureAwait(false);
            var woken = _notified;
            _notified = false;
            return woken;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // The listening connection broke (or cannot connect): drop it; the next wait reconnects. The wait
            // still lasts its timeout, so an outage does not make callers poll faster.
            if (_listener is { } broken)
            {
                try { await broken.DisposeAsync().ConfigureAwait(false); }
                catch (Exception) { /* already broken */ }
            }
            _listener = null;
            var rest = timeout - clock.Elapsed;
            if (rest > TimeSpan.Zero) await Task.Delay(rest, ct).ConfigureAwait(false);
            return false;
        }
        finally
        {
            _listenGate.Release();
        }
    }

    // ---- transient errors ----

    private Task<T> Run<T>(Func<NpgsqlConnection, Task<T>> work, RetrySafety safety, CancellationToken ct, bool checkTable = true) =>
        _runner.RunAsync(work, safety, ct, checkTable);

    /// <summary>SQLSTATE class 22 (data exception: NUL in text, a character the database encoding lacks...) or text Npgsql cannot encode.</summary>
    public bool IsValueError(Exception error) =>
        error is PostgresException { SqlState: ['2', '2', ..] } || StoreErrors.IsEncodingError(error);

    private bool ShouldRetry(Exception e, bool opened, RetrySafety safety)
    {
        // A server restart kills every pooled connection at once: after one broke, drop the idle ones too, so
        // the next try (and the next command, if this one is not retried) opens fresh connections.
        if (PostgresErrors.IsBrokenConnection(e)) _dataSource.Clear();
        return PostgresErrors.ShouldRetry(e, opened, safety);
    }

    public void Dispose()
    {
        try { _listener?.Dispose(); }
        catch (Exception) { /* a listen still unwinding (NpgsqlOperationInProgressException): the data source closes it */ }
        _dataSource.Dispose();
        _listenGate.Dispose();
    }
}
