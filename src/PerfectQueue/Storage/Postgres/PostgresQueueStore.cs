using System.Text;
using Dapper;
using Npgsql;

namespace PerfectQueue.Storage.Postgres;

/// <summary>
/// The PostgreSQL backend. Acquire leases rows with FOR UPDATE SKIP LOCKED and UPDATE ... RETURNING in one
/// statement; batches travel as arrays through unnest. Times come from the server's clock. Transient
/// errors are retried with bounded backoff where running the operation again is safe.
/// </summary>
internal sealed class PostgresQueueStore : IQueueStore
{
    // 1: the task table; 2: the sessions table <table>_workers beside it (created lazily for version 1 queues);
    // 3: timeout_ms and processor_type (SchemaUpgrade), added to older tables at first use.
    public const int SchemaVersion = SchemaUpgrade.Version;

    // The server clock in Unix milliseconds: the start of the current statement.
    private const string Now = "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000)::bigint";

    private const string EmptyArray = "{}";

    private readonly NpgsqlDataSource _dataSource;
    private readonly StoreRunner<NpgsqlConnection> _runner;
    private readonly string _table;
    private readonly string _t;
    private readonly string _workersTable;
    private readonly string _w;
    private readonly string _channel;
    private readonly int _lockNamespace;
    private readonly string _columns;
    private readonly string _lockUsersSql, _acquireSql, _submitSql;
    private readonly SemaphoreSlim _listenGate = new(1, 1);
    private readonly UpgradeOnce _upgrade = new();
    private NpgsqlConnection? _listener;
    private volatile bool _notified;

    public PostgresQueueStore(string connectionString, string table, string description)
    {
        var names = new StoreNames(table, Quote);
        _table = names.Table;
        _t = names.QuotedTable;
        _workersTable = names.Workers;
        _w = names.QuotedWorkers;
        _channel = "pq_" + _table;
        _lockNamespace = StableHash("perfectqueue:" + _table);
        Description = description;
        _dataSource = NpgsqlDataSource.Create(connectionString);
        _runner = new StoreRunner<NpgsqlConnection>(
            ct => _dataSource.OpenConnectionAsync(ct).AsTask(), ShouldRetry,
            e => e is PostgresException { SqlState: PostgresErrorCodes.UndefinedTable },
            e => Task.FromResult<Exception?>(NotInitialized(e)));
        _columns = RowProjection.TaskColumns(Now, Quote);

        // max_running without a global lock: a statement's snapshot is taken when it starts, so two acquirers
        // could both count the same running tasks. So acquire is one transaction of two statements, sent in
        // one round trip. The first ranks the candidates as they look now and takes a transaction-scoped
        // try-lock per limited user among the best-ranked @scan of them (users locked by another acquirer
        // are skipped, as rows are with SKIP LOCKED), leaving the locked and the skipped users in
        // transaction-local settings. The second starts after the locks are held, so its running count sees
        // every committed lease of the users it may take from: it ranks tasks without a user, tasks of locked
        // users, and unlimited tasks of users no one else is limiting.
        // Candidates (AcquireSql): the @scan oldest due tasks, plus the @quota oldest due tasks of every
        // limited user (a loose index scan finds the users, a LATERAL seek per user over <table>_user_due
        // their tasks), so a flood from one user cannot hide the others.
        const string running = """
            SELECT user_name AS ru, count(*) AS rc FROM {0}
            WHERE finished_at IS NULL AND lease_token IS NOT NULL AND due_at > {1} AND user_name IS NOT NULL {2}
            GROUP BY user_name
            """;
        string Candidates(string windowFilter, string userFilter) => $"""
            users(u) AS (
                (SELECT user_name FROM {_t} WHERE finished_at IS NULL AND user_name IS NOT NULL ORDER BY user_name LIMIT 1)
                UNION ALL
                SELECT (SELECT user_name FROM {_t} WHERE finished_at IS NULL AND user_name > users.u ORDER BY user_name LIMIT 1)
                FROM users WHERE users.u IS NOT NULL),
            pool AS (
                (SELECT c.id, c.user_name, c.max_running, c.due_at FROM {_t} AS c LEFT JOIN running AS r ON r.ru = c.user_name
                 WHERE c.finished_at IS NULL AND c.due_at <= {Now} AND {windowFilter}
                 ORDER BY c.due_at, c.id
                 LIMIT @scan)
                UNION
                SELECT p.id, p.user_name, p.max_running, p.due_at FROM users CROSS JOIN LATERAL (
                    SELECT id, user_name, max_running, due_at FROM {_t}
                    WHERE user_name = users.u AND finished_at IS NULL AND due_at <= {Now} AND max_running IS NOT NULL
                    ORDER BY due_at, id
                    LIMIT @quota) AS p
                WHERE {userFilter}),
            candidates AS (
                SELECT p.id AS cid, p.user_name AS cu, p.max_running AS cmax, p.due_at AS cdue, COALESCE(r.rc, 0) AS crun
                FROM pool AS p LEFT JOIN running AS r ON r.ru = p.user_name),
            {AcquireSql.RankCtes}
            """;
        const string belowLimit = "(c.max_running IS NULL OR c.user_name IS NULL OR c.max_running > COALESCE(r.rc, 0))";
        _lockUsersSql = $"""
            WITH RECURSIVE running AS ({string.Format(running, _t, Now, "")}),
            {Candidates(belowLimit, "true")},
            limited AS (
                SELECT DISTINCT cu AS u FROM chosen WHERE ord <= @scan AND cu IS NOT NULL AND cmax IS NOT NULL),
            tried AS (SELECT u, pg_try_advisory_xact_lock(@ns, hashtext(u)) AS got FROM limited)
            SELECT set_config('perfectqueue.locked', COALESCE((SELECT array_agg(u) FROM tried WHERE got), '{EmptyArray}')::text, true),
                   set_config('perfectqueue.skipped', COALESCE((SELECT array_agg(u) FROM tried WHERE NOT got), '{EmptyArray}')::text, true)
            """;
        // Only the rows leased are locked: the ranking reads without locks, then the chosen rows are locked in
        // rank order, skipping rows another acquirer holds (SKIP LOCKED) and rows leased since our snapshot
        // (the re-check on the locked row), until @max are held. So concurrent acquirers never come back empty
        // because others locked candidates they would not lease. "Ranked" tells the caller how many rows were
        // chosen, so it can try again when rows it wanted were taken under it. The chosen ids go in as one
        // array, so the rows are fetched by primary key: a join on the CTE let the planner walk every due row
        // against every candidate (57 ms at 1,000 due tasks, growing with the backlog; 1.6 ms this way).
        const string locked = "current_setting('perfectqueue.locked')::text[]";
        const string skipped = "current_setting('perfectqueue.skipped')::text[]";
        _acquireSql = $"""
            WITH RECURSIVE running AS ({string.Format(running, _t, Now, $"AND user_name = ANY({locked})")}),
            {Candidates($"(c.user_name IS NULL OR c.user_name = ANY({locked}) OR (c.max_running IS NULL AND NOT c.user_name = ANY({skipped})))", $"users.u = ANY({locked})")},
            ranked_ids AS (SELECT ARRAY(SELECT cid FROM chosen ORDER BY ord) AS ids),
            held AS (
                SELECT l.id, array_position((SELECT ids FROM ranked_ids), l.id) AS ord FROM {_t} AS l
                WHERE l.id = ANY((SELECT ids FROM ranked_ids)::bigint[]) AND l.finished_at IS NULL AND l.due_at <= {Now}
                ORDER BY 2
                LIMIT @max
                FOR UPDATE OF l SKIP LOCKED),
            numbered AS (SELECT id AS nid, row_number() OVER (ORDER BY ord) AS n FROM held),
            leased AS (
                UPDATE {_t} SET lease_token = @token + numbered.n, due_at = {Now} + @alive, attempts = attempts + 1
                FROM numbered
                WHERE {_t}.id = numbered.nid
                RETURNING {_columns})
            SELECT leased.*, w.n AS "Ranked" FROM (SELECT count(*) AS n FROM chosen) AS w LEFT JOIN leased ON true
            """;
        // Submit wakes listening workers: notifications are sent at commit, and duplicates within one
        // transaction are folded into one.
        _submitSql = $"""
            WITH stored AS (
                INSERT INTO {_t} AS t (task_key, task_type, user_name, data, max_running, created_at, due_at, attempts, cancel_requested, timeout_ms)
                SELECT k, ty, u, d, mr, {Now}, COALESCE(ra, {Now} + COALESCE(dl, 0)), 0, 0, tm
                FROM unnest(@keys::text[], @types::text[], @users::text[], @datas::bytea[], @maxes::int[], @runats::bigint[], @delays::bigint[], @timeouts::bigint[])
                    AS s(k, ty, u, d, mr, ra, dl, tm)
                ON CONFLICT (task_key) DO UPDATE SET
                    task_type = excluded.task_type, user_name = excluded.user_name, data = excluded.data,
                    max_running = excluded.max_running, created_at = excluded.created_at, due_at = excluded.due_at, timeout_ms = excluded.timeout_ms,
                    lease_token = NULL, attempts = 0, cancel_requested = 0, finished_at = NULL, outcome = NULL,
                    message = NULL, purge_at = NULL
                WHERE t.finished_at IS NOT NULL AND t.purge_at <= {Now}
                RETURNING task_key)
            SELECT stored.task_key FROM stored, LATERAL (SELECT pg_notify(@channel, '')) AS n
            """;
    }

    public string Description { get; }

    private static string Quote(string identifier) => StoreNames.DoubleQuote(identifier);

    private static readonly int SchemaLockNamespace = StableHash("perfectqueue:schema");

    // FNV-1a: stable across processes and versions (string.GetHashCode is randomized per process).
    private static int StableHash(string text)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(text)) hash = (hash ^ b) * 16777619u;
        return unchecked((int)hash);
    }

    // Why the indexes: see docs/schema.md. They match the SQLite backend's, as partial indexes.
    private string SchemaSql() => $"""
        CREATE TABLE IF NOT EXISTS {_t} (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            task_key text NOT NULL,
            task_type text NOT NULL,
            user_name text NULL,
            data bytea NULL,
            max_running integer NULL,
            created_at bigint NOT NULL,
            due_at bigint NULL,
            lease_token bigint NULL,
            attempts integer NOT NULL DEFAULT 0,
            cancel_requested smallint NOT NULL DEFAULT 0,
            finished_at bigint NULL,
            outcome text NULL,
            message text NULL,
            purge_at bigint NULL,
            timeout_ms bigint NULL);
        CREATE UNIQUE INDEX IF NOT EXISTS {Quote(_table + "_key")} ON {_t} (task_key);
        CREATE INDEX IF NOT EXISTS {Quote(_table + "_due")} ON {_t} (due_at, id) WHERE finished_at IS NULL;
        CREATE INDEX IF NOT EXISTS {Quote(_table + "_leased")} ON {_t} (user_name, due_at) WHERE finished_at IS NULL AND lease_token IS NOT NULL;
        CREATE INDEX IF NOT EXISTS {Quote(_table + "_user_due")} ON {_t} (user_name, due_at, id) WHERE finished_at IS NULL;
        CREATE INDEX IF NOT EXISTS {Quote(_table + "_purge")} ON {_t} (purge_at) WHERE finished_at IS NOT NULL;
        CREATE TABLE IF NOT EXISTS perfectqueue_schema (table_name text PRIMARY KEY, version integer NOT NULL, created_at bigint NOT NULL);
        {WorkersSchemaSql()}
        """;

    // One row per running worker: small, so no index beyond the key.
    private string WorkersSchemaSql() => $"""
        CREATE TABLE IF NOT EXISTS {_w} (
            id text PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            processors integer NOT NULL,
            running integer NOT NULL DEFAULT 0,
            started_at bigint NOT NULL,
            last_beat_at bigint NOT NULL,
            alive_until bigint NOT NULL,
            stop_requested smallint NOT NULL DEFAULT 0,
            processor_type text NULL);
        """;

    // A queue created by an older version is recorded as upgraded once the newer schema's objects exist.
    private const string UpgradeVersionSql = "UPDATE perfectqueue_schema SET version = @version WHERE table_name = @table AND version < @version";

    public Task InitializeAsync(bool force, CancellationToken ct) => Run(async c =>
    {
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        // Concurrent initializers race in CREATE ... IF NOT EXISTS, also of different queue tables (they share
        // perfectqueue_schema): one lock for the whole database serializes every schema change.
        await c.ExecuteAsync("SELECT pg_advisory_xact_lock(@ns, 0)", new { ns = SchemaLockNamespace }, tx).ConfigureAwait(false);
        if (force)
        {
            await c.ExecuteAsync($"DROP TABLE IF EXISTS {_t}, {_w}", transaction: tx).ConfigureAwait(false);
            await c.ExecuteAsync("CREATE TABLE IF NOT EXISTS perfectqueue_schema (table_name text PRIMARY KEY, version integer NOT NULL, created_at bigint NOT NULL)", transaction: tx).ConfigureAwait(false);
            await c.ExecuteAsync("DELETE FROM perfectqueue_schema WHERE table_name = @table", new { table = _table }, tx).ConfigureAwait(false);
        }
        if (!force && await RecordedVersionAsync(c, tx).ConfigureAwait(false) is { } recorded && recorded > SchemaVersion)
            throw SchemaUpgrade.TooNew(_table, Description, recorded);
        await c.ExecuteAsync(SchemaSql(), transaction: tx).ConfigureAwait(false);
        await c.ExecuteAsync(AddVersion3ColumnsSql(), transaction: tx).ConfigureAwait(false);
        await c.ExecuteAsync($"INSERT INTO perfectqueue_schema (table_name, version, created_at) VALUES (@table, @version, {Now}) ON CONFLICT (table_name) DO NOTHING",
            new { table = _table, version = SchemaVersion }, tx).ConfigureAwait(false);
        await c.ExecuteAsync(UpgradeVersionSql, new { table = _table, version = SchemaVersion }, tx).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        _upgrade.MarkDone();
        return true;
    }, RetrySafety.Always, ct, checkTable: false);

    // ---- schema version 3 on tables an older version created (SchemaUpgrade, docs/schema.md) ----

    // The version perfectqueue_schema records for this queue (null: none recorded, or no such table yet).
    private async Task<int?> RecordedVersionAsync(NpgsqlConnection c, NpgsqlTransaction? tx) =>
        await c.ExecuteScalarAsync<bool>("SELECT to_regclass('perfectqueue_schema') IS NOT NULL", transaction: tx).ConfigureAwait(false)
            ? await c.ExecuteScalarAsync<int?>("SELECT version FROM perfectqueue_schema WHERE table_name = @table", new { table = _table }, tx).ConfigureAwait(false)
            : null;

    // CREATE TABLE IF NOT EXISTS leaves an existing table as it was: add what version 3 added.
    private string AddVersion3ColumnsSql() => $"""
        ALTER TABLE {_t} ADD COLUMN IF NOT EXISTS {SchemaUpgrade.TimeoutColumn} bigint NULL;
        ALTER TABLE IF EXISTS {_w} ADD COLUMN IF NOT EXISTS {SchemaUpgrade.ProcessorTypeColumn} text NULL;
        """;

    private string Version3StateSql() => $"""
        SELECT to_regclass(@queue) IS NOT NULL AS queue_exists,
               EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(@queue) AND attname = '{SchemaUpgrade.TimeoutColumn}' AND NOT attisdropped)
               AND (to_regclass(@workers) IS NULL
                    OR EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(@workers) AND attname = '{SchemaUpgrade.ProcessorTypeColumn}' AND NOT attisdropped)) AS current
        """;

    // Before the first statement that uses the version-3 columns, once per store: a table an older version
    // created gains them, whatever command comes first (a read too: adding a nullable column changes the
    // catalog only, and a listing must not fail on an older table). The ALTER needs the table's lock for a
    // moment; it waits at most LockTimeoutSeconds behind long transactions (then the try fails, is retried,
    // and the next command tries again) so it never holds up the queue's own statements for long.
    // A version-1 queue stays recorded as 1 until its sessions table exists (the first worker start).
    private Task EnsureUpgradedAsync(CancellationToken ct) => _upgrade.EnsureAsync(async () =>
    {
        if (await Run(c => RecordedVersionAsync(c, null), RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false) is { } recorded && recorded > SchemaVersion)
            throw SchemaUpgrade.TooNew(_table, Description, recorded);
        var (queueExists, current) = await Run(c => c.QuerySingleAsync<(bool, bool)>(Version3StateSql(), new { queue = _t, workers = _w }),
            RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        if (!queueExists) return false; // the operation says so
        if (current) return true;
        try
        {
            await Run(async c =>
            {
                await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
                await c.ExecuteAsync("SELECT pg_advisory_xact_lock(@ns, 0)", new { ns = SchemaLockNamespace }, tx).ConfigureAwait(false);
                await c.ExecuteAsync($"SET LOCAL lock_timeout = '{SchemaUpgrade.LockTimeoutSeconds}s'", transaction: tx).ConfigureAwait(false);
                await c.ExecuteAsync(AddVersion3ColumnsSql(), transaction: tx).ConfigureAwait(false);
                await c.ExecuteAsync($"{UpgradeVersionSql} AND to_regclass(@workers) IS NOT NULL", new { table = _table, version = SchemaVersion, workers = _w }, tx).ConfigureAwait(false);
                await tx.CommitAsync(ct).ConfigureAwait(false);
                return true;
            }, RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            throw SchemaUpgrade.CannotUpgrade(_table, Description, e);
        }
        return true;
    }, ct);

    public Task<bool> IsInitializedAsync(CancellationToken ct) => Run(c =>
        c.ExecuteScalarAsync<bool>("SELECT to_regclass(@name) IS NOT NULL", new { name = _t }), RetrySafety.Always, ct, checkTable: false);

    public Task<long> NowAsync(CancellationToken ct) => Run(c => c.ExecuteScalarAsync<long>($"SELECT {Now}"), RetrySafety.Always, ct, checkTable: false);

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
            var stored = (await c.QueryAsync<string>(_submitSql, new
            {
                keys = unique.Select(t => t.Key).ToArray(),
                types = unique.Select(t => t.Type).ToArray(),
                users = unique.Select(t => t.User).ToArray(),
                datas = unique.Select(t => t.Data).ToArray(),
                maxes = unique.Select(t => t.MaxRunning).ToArray(),
                runats = unique.Select(t => t.RunAtMs).ToArray(),
                delays = unique.Select(t => t.DelayMs).ToArray(),
                timeouts = unique.Select(t => t.TimeoutMs).ToArray(),
                channel = _channel,
            }).ConfigureAwait(false)).ToHashSet(StringComparer.Ordinal);
            var result = new bool[tasks.Count];
            for (var i = 0; i < tasks.Count; i++)
                result[i] = isFirst[i] && stored.Contains(tasks[i].Key);
            return result;
        }, RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskRow>> AcquireAsync(int max, long aliveMs, CancellationToken ct)
    {
        if (max > 0) await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await AcquireSql.FillAsync(max, want => AcquireOnceAsync(want, aliveMs, ct)).ConfigureAwait(false);
    }

    private Task<(List<TaskRow> Leased, long Ranked)> AcquireOnceAsync(int max, long aliveMs, CancellationToken ct)
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
                    // Acquire must walk the due index in order and stop after @scan rows. Before autovacuum has
                    // analyzed a new, fast-filling table, the planner guesses a handful of rows and prefers a
                    // bitmap scan that sorts the whole backlog (measured: 13.7 ms instead of 0.25 ms at 20,000
                    // due tasks, and growing). This only affects this transaction.
                    new NpgsqlBatchCommand("SET LOCAL enable_bitmapscan = off"),
                    new NpgsqlBatchCommand(_lockUsersSql) { Parameters = { new("scan", scan), new("quota", quota), new("ns", _lockNamespace) } },
                    new NpgsqlBatchCommand(_acquireSql) { Parameters = { new("scan", scan), new("quota", quota), new("max", max), new("alive", aliveMs), new("token", token) } },
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
        // An expired lease is not revived (see the SQLite store): the holder learns it lost the task.
        return Run(async c => (IReadOnlyList<ExtendedLease>)(await c.QueryAsync<(long Id, short CancelRequested)>($"""
            UPDATE {_t} SET due_at = {Now} + @alive
            FROM unnest(@ids::bigint[], @tokens::bigint[]) AS w(wid, wtok)
            WHERE {_t}.id = w.wid AND {_t}.lease_token = w.wtok AND {_t}.finished_at IS NULL AND {_t}.due_at > {Now}
            RETURNING {_t}.id, {_t}.cancel_requested
            """, new { ids, tokens, alive = aliveMs }).ConfigureAwait(false)).Select(r => new ExtendedLease(r.Id, r.CancelRequested != 0)).ToList(),
            RetrySafety.Always, ct);
    }

    public Task<IReadOnlySet<long>> ApplyAsync(IReadOnlyList<LeaseWrite> writes, CancellationToken ct)
    {
        if (writes.Count == 0) return Task.FromResult<IReadOnlySet<long>>(new HashSet<long>());
        var finishes = writes.Where(w => w.Kind == LeaseWriteKind.Finish).ToList();
        var retries = writes.Where(w => w.Kind == LeaseWriteKind.Retry).ToList();
        var releases = writes.Where(w => w.Kind == LeaseWriteKind.Release).ToList();
        const string fence = "WHERE {0}.id = w.wid AND {0}.lease_token = w.wtok AND {0}.finished_at IS NULL RETURNING {0}.id";
        // Not retried on an ambiguous connection loss: a second try of a committed write would look like a lost lease.
        return Run(async c =>
        {
            var done = new HashSet<long>();
            // One kind is one statement (autocommit); several kinds commit together.
            var kinds = (finishes.Count > 0 ? 1 : 0) + (retries.Count > 0 ? 1 : 0) + (releases.Count > 0 ? 1 : 0);
            await using var tx = kinds > 1 ? await c.BeginTransactionAsync(ct).ConfigureAwait(false) : null;
            if (finishes.Count > 0)
                done.UnionWith(await c.QueryAsync<long>($"""
                    UPDATE {_t} SET finished_at = {Now}, outcome = w.o, message = w.m, purge_at = {Now} + w.r, lease_token = NULL, due_at = NULL,
                        attempts = GREATEST({_t}.attempts - w.u, 0)
                    FROM unnest(@ids::bigint[], @tokens::bigint[], @outcomes::text[], @messages::text[], @retentions::bigint[], @uncounted::int[]) AS w(wid, wtok, o, m, r, u)
                    {string.Format(fence, _t)}
                    """, new
                {
                    ids = finishes.Select(w => w.Lease.Id).ToArray(), tokens = finishes.Select(w => w.Lease.Token).ToArray(),
                    outcomes = finishes.Select(w => w.Outcome).ToArray(), messages = finishes.Select(w => w.Message).ToArray(),
                    retentions = finishes.Select(w => w.RetentionMs).ToArray(), uncounted = finishes.Select(w => w.Uncounted ? 1 : 0).ToArray(),
                }, tx).ConfigureAwait(false));
            if (retries.Count > 0)
                done.UnionWith(await c.QueryAsync<long>($"""
                    UPDATE {_t} SET due_at = {Now} + w.d, lease_token = NULL, message = COALESCE(w.m, {_t}.message)
                    FROM unnest(@ids::bigint[], @tokens::bigint[], @delays::bigint[], @messages::text[]) AS w(wid, wtok, d, m)
                    {string.Format(fence, _t)}
                    """, new
                {
                    ids = retries.Select(w => w.Lease.Id).ToArray(), tokens = retries.Select(w => w.Lease.Token).ToArray(),
                    delays = retries.Select(w => w.DelayMs).ToArray(), messages = retries.Select(w => w.Message).ToArray(),
                }, tx).ConfigureAwait(false));
            if (releases.Count > 0)
                done.UnionWith(await c.QueryAsync<long>($"""
                    UPDATE {_t} SET due_at = {Now}, lease_token = NULL, attempts = GREATEST({_t}.attempts - 1, 0)
                    FROM unnest(@ids::bigint[], @tokens::bigint[]) AS w(wid, wtok)
                    {string.Format(fence, _t)}
                    """, new { ids = releases.Select(w => w.Lease.Id).ToArray(), tokens = releases.Select(w => w.Lease.Token).ToArray() }, tx).ConfigureAwait(false));
            if (tx is not null) await tx.CommitAsync(ct).ConfigureAwait(false);
            return (IReadOnlySet<long>)done;
        }, RetrySafety.BeforeSent, ct);
    }

    public Task<bool> UpdateDataAsync(Lease lease, byte[] data, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(PortableSql.UpdateData(_t),
            new { data, id = lease.Id, token = lease.Token }).ConfigureAwait(false) == 1, RetrySafety.Always, ct);

    private static readonly string NotExpired = PortableSql.NotExpired(Now);

    public async Task<TaskRow?> GetAsync(string key, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.QuerySingleOrDefaultAsync<TaskRow?>($"SELECT {_columns} FROM {_t} WHERE task_key = @key AND {NotExpired}", new { key }),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskRow>> GetByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken ct)
    {
        if (ids.Count == 0) return [];
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<TaskRow>)(await c.QueryAsync<TaskRow>($"SELECT {_columns} FROM {_t} WHERE id = ANY(@ids)", new { ids = ids.ToArray() }).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<TaskRow>> ListAsync(TaskQuery q, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        var sql = $"SELECT {_columns} FROM {_t} WHERE {PortableSql.ListConditions(q, Now, p => $"= ANY({p})")} ORDER BY id"
            + (q.First is null ? "" : " LIMIT @first");
        return await Run(async c => (IReadOnlyList<TaskRow>)(await c.QueryAsync<TaskRow>(sql,
            new { keys = q.Keys?.ToArray(), types = q.Types?.ToArray(), users = q.Users?.ToArray(), first = q.First }).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public Task<(IReadOnlyList<SummaryRow> Rows, long Now)> SummarizeAsync(CancellationToken ct) => Run(async c =>
    {
        await using var tx = await c.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct).ConfigureAwait(false); // one snapshot for both
        var now = await c.ExecuteScalarAsync<long>($"SELECT {Now}", transaction: tx).ConfigureAwait(false);
        var rows = (await c.QueryAsync<SummaryRow>(TaskStateSql.SummarySql(_t, "@now", "(purge_at IS NULL OR purge_at > @now)"), new { now }, tx).ConfigureAwait(false)).AsList();
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return ((IReadOnlyList<SummaryRow>)rows, now);
    }, RetrySafety.Always, ct);

    public Task<bool> AnyDueOrRunningAsync(CancellationToken ct) => Run(async c =>
        await c.ExecuteScalarAsync<int>(TaskStateSql.DueOrRunningSql(_t, Now)).ConfigureAwait(false) == 1, RetrySafety.Always, ct);

    public Task<CancelRequestResult> RequestCancelAsync(string key, string message, long retentionMs, CancellationToken ct) => Run(async c =>
    {
        var finished = (await c.QueryAsync<long?>($"""
            UPDATE {_t} SET {PortableSql.CancelSet(Now)}
            WHERE {PortableSql.LiveByKey}
            RETURNING finished_at
            """, new { key, message, retention = retentionMs }).ConfigureAwait(false)).ToList();
        if (finished.Count == 1) return finished[0] is null ? CancelRequestResult.Flagged : CancelRequestResult.CancelledBeforeStart;
        var exists = await c.ExecuteScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM {_t} WHERE task_key = @key AND {NotExpired})", new { key }).ConfigureAwait(false);
        return exists ? CancelRequestResult.AlreadyFinished : CancelRequestResult.NotFound;
    }, RetrySafety.Always, ct); // running it again lands on the same state

    public Task<bool> ForceFinishAsync(string key, string outcome, string? message, long retentionMs, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(PortableSql.ForceFinish(_t, Now), new { key, outcome, message, retention = retentionMs }).ConfigureAwait(false) == 1, RetrySafety.BeforeSent, ct);

    public Task<int> CleanupAsync(int limit, CancellationToken ct) => Run(c => c.ExecuteAsync($"""
        DELETE FROM {_t} WHERE id IN (
            SELECT id FROM {_t} WHERE finished_at IS NOT NULL AND purge_at <= {Now}
            ORDER BY purge_at LIMIT @limit FOR UPDATE SKIP LOCKED)
        """, new { limit }), RetrySafety.Always, ct);

    // ---- worker sessions ----

    private static readonly string WorkerColumns = RowProjection.WorkerColumns(Now, Quote);

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
        await EnsureUpgradedAsync(ct).ConfigureAwait(false); // first, so a sessions table created here is recorded as version 3 beside an upgraded task table
        var (queue, workers) = await TablesAsync(ct).ConfigureAwait(false);
        if (!queue) throw NotInitialized(null);
        if (!workers)
        {
            // A queue of schema version 1: add the sessions table, serialized with every other schema change.
            await Run(async c =>
            {
                await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
                await c.ExecuteAsync("SELECT pg_advisory_xact_lock(@ns, 0)", new { ns = SchemaLockNamespace }, tx).ConfigureAwait(false);
                await c.ExecuteAsync(WorkersSchemaSql(), transaction: tx).ConfigureAwait(false);
                await c.ExecuteAsync(UpgradeVersionSql, new { table = _table, version = SchemaVersion }, tx).ConfigureAwait(false);
                await tx.CommitAsync(ct).ConfigureAwait(false);
                return true;
            }, RetrySafety.Always, ct, checkTable: false).ConfigureAwait(false);
        }
        // Not retried on an ambiguous connection loss: a second try would find its own row and report the id taken.
        return await Run(c => c.ExecuteScalarAsync<long?>($"""
            INSERT INTO {_w} (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
            VALUES (@id, @host, @pid, @processors, @running, {Now}, {Now}, {Now} + @alive, 0, @processorType)
            ON CONFLICT (id) DO NOTHING
            RETURNING started_at
            """, new { id = session.Id, host = session.Host, pid = session.Pid, processors = session.Processors, running = session.Running, alive = session.AliveMs, processorType = session.ProcessorType }),
            RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<bool> BeatWorkerAsync(WorkerBeat beat, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => await c.ExecuteScalarAsync<short>($"""
            INSERT INTO {_w} AS w (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
            VALUES (@id, @host, @pid, @processors, @running, COALESCE(@started::bigint, {Now}), {Now}, {Now} + @alive, 0, @processorType)
            ON CONFLICT (id) DO UPDATE SET running = excluded.running, last_beat_at = excluded.last_beat_at, alive_until = excluded.alive_until,
                processor_type = excluded.processor_type
            RETURNING w.stop_requested
            """, new { id = beat.Id, host = beat.Host, pid = beat.Pid, processors = beat.Processors, running = beat.Running, alive = beat.AliveMs, started = beat.StartedAt, processorType = beat.ProcessorType })
            .ConfigureAwait(false) != 0,
            RetrySafety.Always, ct).ConfigureAwait(false); // the same beat twice lands on the same state
    }

    public Task RemoveWorkerAsync(string id, CancellationToken ct) => OnWorkersTableAsync(c =>
        c.ExecuteAsync(PortableSql.RemoveWorker(_w), new { id }), 0, RetrySafety.Always, ct);

    public async Task<IReadOnlyList<WorkerSessionRow>> ListWorkersAsync(CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await OnWorkersTableAsync(async c =>
            (IReadOnlyList<WorkerSessionRow>)(await c.QueryAsync<WorkerSessionRow>($"SELECT {WorkerColumns} FROM {_w} ORDER BY started_at, id").ConfigureAwait(false)).AsList(),
            [], RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<WorkerSessionRow?> RequestWorkerStopAsync(string id, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await OnWorkersTableAsync(c =>
            c.QuerySingleOrDefaultAsync<WorkerSessionRow?>($"UPDATE {_w} SET stop_requested = 1 WHERE id = @id RETURNING {WorkerColumns}", new { id }),
            null, RetrySafety.Always, ct).ConfigureAwait(false); // running it again lands on the same state
    }

    public Task<int> CleanupWorkersAsync(long deadForMs, CancellationToken ct) => OnWorkersTableAsync(c =>
        c.ExecuteAsync(PortableSql.CleanupWorkers(_w, Now), new { deadFor = deadForMs }), 0, RetrySafety.Always, ct);

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
                var listener = await _dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
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

/// <summary>How PostgreSQL errors are classified; unit-tested.</summary>
internal static class PostgresErrors
{
    /// <summary>
    /// The server ended the session (an administrator's or a crash shutdown, pg_terminate_backend): a pooled
    /// connection that a restart killed reports this on its next use. Like a lost connection, the work may or may
    /// not have been done, so only operations that are safe to run again are retried.
    /// </summary>
    public static bool IsSessionEnded(Exception e) =>
        e is PostgresException { SqlState: PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown };

    /// <summary>The connection is gone (the session ended, or the transport broke): other pooled ones may be too.</summary>
    public static bool IsBrokenConnection(Exception e) => IsSessionEnded(e) || e is NpgsqlException and not PostgresException && e.InnerException is IOException or System.Net.Sockets.SocketException or EndOfStreamException;

    public static bool ShouldRetry(Exception e, bool connectionOpened, RetrySafety safety) => e switch
    {
        _ when IsSessionEnded(e) => !connectionOpened || safety == RetrySafety.Always,
        // The server rolled the transaction back: nothing happened, any operation may run again.
        PostgresException pe => pe.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
                                   or PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.TooManyConnections
                                   or PostgresErrorCodes.CannotConnectNow,
        NpgsqlException ne when !connectionOpened => ne.IsTransient,
        NpgsqlException ne => safety == RetrySafety.Always && ne.IsTransient,
        TimeoutException when !connectionOpened => true,
        _ => false,
    };
}
