using System.Text.Json;
using System.Text.Json.Serialization;
using Dapper;
using Microsoft.Data.SqlClient;

namespace PerfectQueue.Storage.SqlServer;

/// <summary>
/// The SQL Server backend (SQL Server 2016+ / Azure SQL, database compatibility level 130+ for OPENJSON).
/// Acquire leases rows in one batch: per-user try-locks (sp_getapplock) for max_running, then a
/// ROWLOCK/READPAST/UPDLOCK read of the candidates and UPDATE ... OUTPUT. Batches travel as JSON arrays
/// read with OPENJSON. Times come from the server's clock. Transient errors are retried with bounded
/// backoff where running the operation again is safe. Every statement text is fixed per store and is
/// listed by <see cref="Statements"/>, so tests can parse all of it.
/// </summary>
internal sealed partial class SqlServerQueueStore : IQueueStore, StoreStatements.IInventory, Relational.ISchemaOwner
{
    // The server clock in Unix milliseconds. DATEDIFF_BIG reads the string literal as datetime2, and the
    // unseparated ISO form does not depend on the session's language or DATEFORMAT.
    internal const string NowSql = "DATEDIFF_BIG(millisecond, '19700101', SYSUTCDATETIME())";

    // Keys, types and users compare exactly (case and accents), as on the other backends. SQL Server still
    // ignores trailing spaces in comparisons, so 'k' and 'k ' are one key here.
    private const string Exact = "Latin1_General_100_BIN2";

    private static readonly string NotExpired = PortableSql.NotExpired("@now");

    private static readonly JsonSerializerOptions Json = new()
    {
        // Numbers travel as JSON strings, so OPENJSON converts their text and 64-bit tokens stay exact.
        NumberHandling = JsonNumberHandling.WriteAsString,
    };

    private readonly string _connectionString;
    private readonly string _table;
    private readonly string _t;
    private readonly string _workersTable;
    private readonly string _w;
    private readonly string _pausesTable;
    private readonly string _p;
    private readonly string _columns;
    private readonly string _acquireSql, _heartbeatSql, _applySql, _submitSql, _requestCancelSql, _forceFinishSql,
        _updateDataSql, _getSql, _getByIdsSql, _cleanupSql, _isInitializedSql, _probeSql,
        _tablesSql, _registerWorkerSql, _beatWorkerSql, _removeWorkerSql, _listWorkersSql, _listRunningSql, _requestWorkerStopSql, _cleanupWorkersSql;
    private readonly StoreRunner<SqlConnection> _runner;

    public SqlServerQueueStore(string connectionString, string table, string description)
    {
        var names = new StoreNames(table, Quote);
        _table = names.Table;
        _t = names.QuotedTable;
        _workersTable = names.Workers;
        _w = names.QuotedWorkers;
        _pausesTable = names.Pauses;
        _p = names.QuotedPauses;
        _connectionString = connectionString;
        Description = description;
        _runner = new StoreRunner<SqlConnection>(OpenAsync, ShouldRetry,
            e => e is SqlException se && SqlServerErrors.IsMissingTable(SqlServerErrors.Numbers(se)),
            e => MissingObjectErrorAsync((SqlException)e), RollbackLeftOverTransactionAsync);

        _columns = RowProjection.TaskColumns("@now", Quote);

        var rowColumns = string.Join(", ", RowProjection.TaskColumnNames);
        var insertedColumns = string.Join(", ", RowProjection.TaskColumnNames.Select(c => "inserted." + c));
        var userLock = $"N'perfectqueue:{_table}:user:'";

        // Acquire, in one batch and one transaction:
        // 1. The users with live tasks, one seek each (a loose scan of <table>_user_due), and the running count
        //    of every user (a plain read: only a hint of whom to lock).
        // 2. The candidates as they look now (AcquireSql): the @scan oldest due tasks of users below their
        //    limit, plus the @quota oldest due tasks of every limited user, so a flood from one user cannot
        //    hide the others. Ranked as on every backend, the users with a limit among the best @scan are the
        //    ones to lock (as on PostgreSQL: a task without a limit needs no lock).
        // 3. max_running without a global lock: a transaction-owned try-lock per such user (@LockTimeout = 0).
        //    Users locked by another acquirer are skipped, as READPAST skips rows. Only an acquirer holding a
        //    user's lock leases that user's tasks, and it commits before the lock is released.
        // 4. The running count per locked user, in a statement that starts after the locks are held. Under
        //    locking READ COMMITTED it reads committed rows and waits for any writer in flight; under
        //    READ_COMMITTED_SNAPSHOT its snapshot is taken at statement start, after the locks. Either way it
        //    sees every lease of these users that another acquirer committed, and no new one can appear
        //    until we commit, so max_running cannot be exceeded.
        // 5. The candidates again, read without keeping locks: tasks without a user, tasks of locked users, and
        //    tasks without a limit of users no other acquirer is limiting (not tried here, or tried and got);
        //    ranked exactly as on every backend (due order, a user's batch within its free slots,
        //    emptier users first by max_running / (running + k)).
        // 6. Only what is leased is locked: the ranked rows are locked one by one in rank order, by a seek of
        //    the clustered key (no scan can lock other rows), skipping rows another transaction holds and
        //    re-checked under the lock, until @max are held (READPAST, UPDLOCK; FORCE ORDER and LOOP JOIN keep
        //    the rank order driving the seeks, so TOP stops the locking). READCOMMITTEDLOCK makes READPAST
        //    legal, and reads current rows rather than versions, when the database has
        //    READ_COMMITTED_SNAPSHOT on. Then UPDATE ... OUTPUT leases them; each row's token is @token + its rank.
        // The leased rows are returned only after COMMIT, so an error can never follow rows already read, after
        // how many rows were ranked, so the caller can try again when rows it wanted were taken under it.
        string Pool(string table, string windowJoin, string windowFilter, string users) => $"""
            INSERT INTO {table} (id, user_name, max_running, due_at)
            SELECT w.id, w.user_name, w.max_running, w.due_at FROM (
                SELECT TOP (@scan) c.id, c.user_name, c.max_running, c.due_at
                FROM {_t} AS c WITH (READPAST, READCOMMITTEDLOCK)
                {windowJoin}
                WHERE c.finished_at IS NULL AND c.due_at <= @now AND {windowFilter} AND {PauseSql.NotPaused(_p, "c")}
                ORDER BY c.due_at, c.id) AS w
            UNION
            SELECT p.id, p.user_name, p.max_running, p.due_at FROM {users}
            CROSS APPLY (
                SELECT TOP (@quota) id, user_name, max_running, due_at FROM {_t} WITH (READPAST, READCOMMITTEDLOCK)
                WHERE user_name = a.u AND finished_at IS NULL AND due_at <= @now AND {PauseSql.NotPaused(_p, _t)}
                ORDER BY due_at, id) AS p
            WHERE p.max_running IS NOT NULL AND NOT {PauseSql.UserPaused(_p, "a.u")};
            """;
        string PoolTable(string name) => $"DECLARE {name} TABLE (id bigint NOT NULL PRIMARY KEY, user_name nvarchar(256) COLLATE {Exact} NULL, max_running int NULL, due_at bigint NOT NULL);";
        _acquireSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            DECLARE @all TABLE (u nvarchar(256) COLLATE {Exact} NOT NULL PRIMARY KEY);
            DECLARE @running TABLE (ru nvarchar(256) COLLATE {Exact} NOT NULL PRIMARY KEY, rc int NOT NULL);
            {PoolTable("@seen")}
            {PoolTable("@pool")}
            DECLARE @users TABLE (
                n int IDENTITY(1,1) NOT NULL PRIMARY KEY,
                u nvarchar(256) COLLATE {Exact} NOT NULL,
                held bit NOT NULL DEFAULT 0,
                rc int NOT NULL DEFAULT 0);
            DECLARE @ranked TABLE (ord bigint NOT NULL PRIMARY KEY, id bigint NOT NULL);
            DECLARE @locked TABLE (ord bigint NOT NULL PRIMARY KEY, id bigint NOT NULL);
            DECLARE @leased TABLE (
                id bigint NOT NULL, task_key nvarchar(256) NOT NULL, task_type nvarchar(256) NOT NULL,
                user_name nvarchar(256) NULL, data varbinary(max) NULL, max_running int NULL, created_at bigint NOT NULL,
                due_at bigint NULL, lease_token bigint NULL, attempts int NOT NULL, cancel_requested smallint NOT NULL,
                finished_at bigint NULL, outcome nvarchar(32) NULL, message nvarchar(max) NULL, purge_at bigint NULL, timeout_ms bigint NULL,
                leased_by nvarchar(64) NULL, leased_at bigint NULL, last_run_ms bigint NULL, trace_parent nvarchar(64) NULL);
            DECLARE @i int = 1, @user_count int, @u nvarchar(256), @next nvarchar(256), @lock_resource nvarchar(255), @granted int;

            SET @next = (SELECT TOP (1) user_name FROM {_t} WITH (READPAST, READCOMMITTEDLOCK)
                WHERE finished_at IS NULL AND user_name IS NOT NULL ORDER BY user_name);
            WHILE @next IS NOT NULL
            BEGIN
                INSERT INTO @all (u) VALUES (@next);
                SET @next = (SELECT TOP (1) user_name FROM {_t} WITH (READPAST, READCOMMITTEDLOCK)
                    WHERE finished_at IS NULL AND user_name > @next ORDER BY user_name);
            END;
            INSERT INTO @running (ru, rc)
            SELECT user_name, COUNT(*) FROM {_t} WITH (READPAST, READCOMMITTEDLOCK)
            WHERE finished_at IS NULL AND lease_token IS NOT NULL AND due_at > @now AND user_name IS NOT NULL
            GROUP BY user_name;

            {Pool("@seen", "LEFT JOIN @running AS r ON r.ru = c.user_name", "(c.max_running IS NULL OR c.user_name IS NULL OR c.max_running > COALESCE(r.rc, 0))", "@all AS a")}
            WITH candidates AS (
                SELECT p.id AS cid, p.user_name AS cu, p.max_running AS cmax, p.due_at AS cdue, COALESCE(r.rc, 0) AS crun
                FROM @seen AS p LEFT JOIN @running AS r ON r.ru = p.user_name),
            {AcquireSql.RankCtes}
            INSERT INTO @users (u)
            SELECT DISTINCT cu FROM chosen WHERE ord <= @scan AND cu IS NOT NULL AND cmax IS NOT NULL;
            SET @user_count = @@ROWCOUNT;

            BEGIN TRANSACTION;
            WHILE @i <= @user_count
            BEGIN
                SELECT @u = u FROM @users WHERE n = @i;
                SET @lock_resource = {userLock} + CONVERT(nvarchar(64), HASHBYTES('SHA2_256', RTRIM(@u)), 2);
                EXEC @granted = sp_getapplock @Resource = @lock_resource, @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 0;
                IF @granted >= 0 UPDATE @users SET held = 1 WHERE n = @i;
                SET @i += 1;
            END;

            SET @now = {NowSql};
            UPDATE x SET rc = (
                SELECT COUNT(*) FROM {_t} AS r
                WHERE r.user_name = x.u AND r.finished_at IS NULL AND r.lease_token IS NOT NULL AND r.due_at > @now)
            FROM @users AS x
            WHERE x.held = 1;

            {Pool("@pool", "LEFT JOIN @users AS x ON x.u = c.user_name AND x.held = 1 LEFT JOIN @users AS s ON s.u = c.user_name AND s.held = 0",
                "(c.user_name IS NULL OR (x.n IS NOT NULL AND (c.max_running IS NULL OR c.max_running > x.rc)) OR (c.max_running IS NULL AND s.n IS NULL))", "@users AS a")}
            WITH candidates AS (
                SELECT p.id AS cid, p.user_name AS cu, p.max_running AS cmax, p.due_at AS cdue, COALESCE(x.rc, 0) AS crun
                FROM @pool AS p LEFT JOIN @users AS x ON x.u = p.user_name AND x.held = 1 LEFT JOIN @users AS s ON s.u = p.user_name AND s.held = 0
                WHERE p.user_name IS NULL OR x.n IS NOT NULL OR (p.max_running IS NULL AND s.n IS NULL)),
            {AcquireSql.RankCtes}
            INSERT INTO @ranked (ord, id) SELECT ord, cid FROM chosen;

            INSERT INTO @locked (ord, id)
            SELECT TOP (@max) r.ord, r.id
            FROM @ranked AS r
            INNER JOIN {_t} AS c WITH (ROWLOCK, READPAST, UPDLOCK, READCOMMITTEDLOCK, INDEX ({Quote(_table + "_pk")}), FORCESEEK) ON c.id = r.id
            WHERE c.finished_at IS NULL AND c.due_at <= @now
            ORDER BY r.ord
            OPTION (FORCE ORDER, LOOP JOIN, MAXDOP 1);

            UPDATE t SET lease_token = @token + ch.ord, due_at = @now + @alive, attempts = t.attempts + 1, {PortableSql.LeaseStart("@now")}
            OUTPUT {insertedColumns}
            INTO @leased ({rowColumns})
            FROM (SELECT id AS cid, ROW_NUMBER() OVER (ORDER BY ord) AS ord FROM @locked) AS ch
            INNER JOIN {_t} AS t WITH (ROWLOCK, FORCESEEK) ON t.id = ch.cid;
            COMMIT TRANSACTION;

            SELECT COUNT(*) AS [Ranked] FROM @ranked;
            SELECT {_columns} FROM @leased ORDER BY lease_token;
            """;

        // Fenced writes join the batch on the clustered key (FORCESEEK: a plan that scanned the table would
        // take update locks on rows of other holders).
        const string fence = "WHERE t.lease_token = w.wtok AND t.finished_at IS NULL";
        // A heartbeat does not revive an expired lease (see the SQLite store): the holder learns it lost the task.
        // OUTPUT goes INTO a table variable, selected after: OUTPUT straight to the client fails with error 334
        // once anyone adds a trigger to the table.
        _heartbeatSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            DECLARE @extended TABLE (id bigint NOT NULL, cancel_requested smallint NOT NULL);
            UPDATE t SET due_at = @now + @alive
            OUTPUT inserted.id, inserted.cancel_requested INTO @extended (id, cancel_requested)
            FROM OPENJSON(@batch) WITH (wid bigint '$.id', wtok bigint '$.token') AS w
            INNER JOIN {_t} AS t WITH (ROWLOCK, FORCESEEK) ON t.id = w.wid
            {fence} AND t.due_at > @now;
            SELECT id AS [Id], cancel_requested AS [CancelRequested] FROM @extended;
            """;
        // One transaction. A released attempt does not count: release is for shutdown, not failure.
        _applySql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            DECLARE @done TABLE (id bigint NOT NULL);
            BEGIN TRANSACTION;
            UPDATE t SET finished_at = @now, outcome = w.o, message = w.m, purge_at = @now + w.r, lease_token = NULL, due_at = NULL,
                attempts = CASE WHEN t.attempts > w.u THEN t.attempts - w.u ELSE 0 END, {PortableSql.RunEnd("@now", uncounted: "w.u")}
            OUTPUT inserted.id INTO @done (id)
            FROM OPENJSON(@finishes) WITH (wid bigint '$.id', wtok bigint '$.token', o nvarchar(max) '$.outcome', m nvarchar(max) '$.message', r bigint '$.retention', u int '$.uncounted') AS w
            INNER JOIN {_t} AS t WITH (ROWLOCK, FORCESEEK) ON t.id = w.wid
            {fence};
            UPDATE t SET due_at = @now + w.d, lease_token = NULL, message = COALESCE(w.m, t.message), {PortableSql.RunEnd("@now")}
            OUTPUT inserted.id INTO @done (id)
            FROM OPENJSON(@retries) WITH (wid bigint '$.id', wtok bigint '$.token', d bigint '$.delay', m nvarchar(max) '$.message') AS w
            INNER JOIN {_t} AS t WITH (ROWLOCK, FORCESEEK) ON t.id = w.wid
            {fence};
            UPDATE t SET due_at = @now, lease_token = NULL, attempts = CASE WHEN t.attempts > 0 THEN t.attempts - 1 ELSE 0 END
            OUTPUT inserted.id INTO @done (id)
            FROM OPENJSON(@releases) WITH (wid bigint '$.id', wtok bigint '$.token') AS w
            INNER JOIN {_t} AS t WITH (ROWLOCK, FORCESEEK) ON t.id = w.wid
            {fence};
            COMMIT TRANSACTION;
            SELECT id FROM @done;
            """;
        // Submit, in one transaction: a finished row past its retention no longer holds its key, so it is
        // deleted first (the new row takes the key, and a new id at the end of the clustered index). Keys
        // already taken are skipped; a key taken by a concurrent submit still fails the unique index, and
        // SubmitAsync then goes row by row. Ids follow the batch order (INSERT ... SELECT ... ORDER BY).
        // Strings arrive as nvarchar(max), so a too-long type or user fails loudly instead of being cut.
        _submitSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            DECLARE @stored TABLE (task_key nvarchar(256) NOT NULL);
            BEGIN TRANSACTION;
            DELETE FROM {_t}
            WHERE finished_at IS NOT NULL AND purge_at <= @now
              AND task_key IN (SELECT s.k COLLATE {Exact} FROM OPENJSON(@batch) WITH (k nvarchar(max) '$.key') AS s);
            INSERT INTO {_t} (task_key, task_type, user_name, data, max_running, created_at, due_at, attempts, cancel_requested, timeout_ms, trace_parent)
            OUTPUT inserted.task_key INTO @stored (task_key)
            SELECT s.k, s.ty, s.u, CONVERT(varbinary(max), s.d, 1), s.mr, @now, COALESCE(s.ra, @now + COALESCE(s.dl, 0)), 0, 0, s.tm, s.tp
            FROM OPENJSON(@batch) AS j
            CROSS APPLY OPENJSON(j.[value]) WITH (
                k nvarchar(max) '$.key', ty nvarchar(max) '$.type', u nvarchar(max) '$.user', d varchar(max) '$.data',
                mr int '$.maxRunning', ra bigint '$.runAt', dl bigint '$.delay', tm bigint '$.timeout', tp nvarchar(64) '$.trace') AS s
            WHERE NOT EXISTS (SELECT 1 FROM {_t} AS e WHERE e.task_key = s.k COLLATE {Exact})
            ORDER BY CAST(j.[key] AS int);
            COMMIT TRANSACTION;
            SELECT task_key FROM @stored;
            """;
        _requestCancelSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            DECLARE @hit TABLE (finished_at bigint NULL);
            UPDATE {_t} SET {PortableSql.CancelSet("@now", "N'Cancelled'")}
            OUTPUT inserted.finished_at INTO @hit (finished_at)
            WHERE {PortableSql.LiveByKey};
            SELECT CASE
                WHEN EXISTS (SELECT 1 FROM @hit WHERE finished_at IS NOT NULL) THEN N'{nameof(CancelRequestResult.CancelledBeforeStart)}'
                WHEN EXISTS (SELECT 1 FROM @hit) THEN N'{nameof(CancelRequestResult.Flagged)}'
                WHEN EXISTS (SELECT 1 FROM {_t} WHERE task_key = @key AND {NotExpired}) THEN N'{nameof(CancelRequestResult.AlreadyFinished)}'
                ELSE N'{nameof(CancelRequestResult.NotFound)}' END;
            """;
        // Row counts are selected, not taken from the DONE token, which SET NOCOUNT ON (in the batch or in
        // the server's user options) would hide.
        _forceFinishSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            {PortableSql.ForceFinish(_t, "@now")};
            SELECT @@ROWCOUNT;
            """;
        _updateDataSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            {PortableSql.UpdateData(_t)};
            SELECT @@ROWCOUNT;
            """;
        _getSql = $"""
            DECLARE @now bigint = {NowSql};
            SELECT {_columns} FROM {_t} WHERE task_key = @key AND {NotExpired};
            """;
        _getByIdsSql = $"""
            DECLARE @now bigint = {NowSql};
            SELECT {_columns} FROM {_t} WHERE id IN (SELECT v FROM OPENJSON(@ids) WITH (v bigint '$'));
            """;
        // Cleanup deletes at most 1000 rows a statement (the engine's batch), about 3 locks a row (clustered
        // key, key index, purge index): far below the 5000 locks at which SQL Server escalates to a table lock.
        _cleanupSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            DELETE TOP (@limit) FROM {_t} WITH (ROWLOCK, READPAST, READCOMMITTEDLOCK)
            WHERE finished_at IS NOT NULL AND purge_at <= @now;
            SELECT @@ROWCOUNT;
            """;
        _isInitializedSql = "SELECT CAST(CASE WHEN OBJECT_ID(@name, N'U') IS NULL THEN 0 ELSE 1 END AS bit);";
        _probeSql = """
            SELECT CAST(CASE WHEN OBJECT_ID(@name, N'U') IS NULL THEN 0 ELSE 1 END AS bit) AS TableExists,
                CAST((SELECT compatibility_level FROM sys.databases WHERE database_id = DB_ID()) AS int) AS CompatibilityLevel;
            """;

        // ---- worker sessions: one small row per running worker ----
        var workerColumns = RowProjection.WorkerColumns("@now", Quote);
        _tablesSql = """
            SELECT CAST(CASE WHEN OBJECT_ID(@name, N'U') IS NULL THEN 0 ELSE 1 END AS bit) AS QueueExists,
                CAST(CASE WHEN OBJECT_ID(@workers, N'U') IS NULL THEN 0 ELSE 1 END AS bit) AS WorkersExists;
            """;
        // The id is checked and inserted under a key-range lock (UPDLOCK, SERIALIZABLE), so two registrations
        // of one id cannot both succeed. The start time comes back only when the row was inserted.
        _registerWorkerSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            INSERT INTO {_w} (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
            SELECT @id, @host, @pid, @processors, @running, @now, @now, @now + @alive, 0, @processorType
            WHERE NOT EXISTS (SELECT 1 FROM {_w} WITH (UPDLOCK, SERIALIZABLE) WHERE id = @id);
            SELECT CASE WHEN @@ROWCOUNT = 1 THEN @now ELSE NULL END;
            """;
        // Update, or insert again when the row is gone (cleaned up while the worker could not beat).
        _beatWorkerSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            DECLARE @stop smallint = 0;
            BEGIN TRANSACTION;
            UPDATE {_w} WITH (UPDLOCK, SERIALIZABLE)
            SET running = @running, last_beat_at = @now, alive_until = @now + @alive, processor_type = @processorType, @stop = stop_requested
            WHERE id = @id;
            IF @@ROWCOUNT = 0
                INSERT INTO {_w} (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
                VALUES (@id, @host, @pid, @processors, @running, COALESCE(@started, @now), @now, @now + @alive, 0, @processorType);
            COMMIT TRANSACTION;
            SELECT @stop;
            """;
        _removeWorkerSql = $"""
            SET NOCOUNT ON;
            {PortableSql.RemoveWorker(_w)};
            """;
        _listWorkersSql = $"""
            DECLARE @now bigint = {NowSql};
            SELECT {workerColumns} FROM {_w} ORDER BY started_at, id;
            """;
        _listRunningSql = $"""
            DECLARE @now bigint = {NowSql};
            {PortableSql.Running(_t, "@now", Quote)};
            """;
        _requestWorkerStopSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            DECLARE @hit TABLE (
                id nvarchar(64) NOT NULL, host nvarchar(256) NOT NULL, pid int NOT NULL, processors int NOT NULL, running int NOT NULL,
                started_at bigint NOT NULL, last_beat_at bigint NOT NULL, alive_until bigint NOT NULL, stop_requested smallint NOT NULL,
                processor_type nvarchar(32) NULL);
            UPDATE {_w} SET stop_requested = 1
            OUTPUT inserted.id, inserted.host, inserted.pid, inserted.processors, inserted.running, inserted.started_at,
                inserted.last_beat_at, inserted.alive_until, inserted.stop_requested, inserted.processor_type
            INTO @hit (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
            WHERE id = @id;
            SELECT {workerColumns} FROM @hit;
            """;
        _cleanupWorkersSql = $"""
            SET NOCOUNT ON;
            SET XACT_ABORT ON;
            DECLARE @now bigint = {NowSql};
            {PortableSql.CleanupWorkers(_w, "@now")};
            SELECT @@ROWCOUNT;
            """;
    }

    public string Description { get; }

    private static string Quote(string identifier) => "[" + identifier + "]";

    // ---- statements and their parameters (call sites and tests use the same ones) ----

    private const string NowQuery = "SELECT " + NowSql + ";";
    private const string CompatibilityLevelSql = "SELECT CAST(compatibility_level AS int) FROM sys.databases WHERE database_id = DB_ID();";
    private const string RollbackSql = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;";
    private const int MinCompatibilityLevel = 130;

    private object NameArgs() => new { name = _t };
    private static object AcquireArgs(int max, long aliveMs, long token, string? session) => new
    {
        scan = AcquireSql.Scan(max), quota = AcquireSql.Quota(max), max, alive = aliveMs, token,
        session,
    };
    private static object HeartbeatArgs(IEnumerable<Lease> leases, long aliveMs) =>
        new { batch = JsonSerializer.Serialize(leases.Select(l => new { id = l.Id, token = l.Token }), Json), alive = aliveMs };
    private static object ApplyArgs(IReadOnlyList<LeaseWrite> writes) => new
    {
        finishes = JsonSerializer.Serialize(writes.Where(w => w.Kind == LeaseWriteKind.Finish)
            .Select(w => new { id = w.Lease.Id, token = w.Lease.Token, outcome = w.Outcome, message = w.Message, retention = w.RetentionMs, uncounted = w.Uncounted ? 1 : 0 }), Json),
        retries = JsonSerializer.Serialize(writes.Where(w => w.Kind == LeaseWriteKind.Retry)
            .Select(w => new { id = w.Lease.Id, token = w.Lease.Token, delay = w.DelayMs, message = w.Message }), Json),
        releases = JsonSerializer.Serialize(writes.Where(w => w.Kind == LeaseWriteKind.Release)
            .Select(w => new { id = w.Lease.Id, token = w.Lease.Token }), Json),
    };
    private static object SubmitArgs(IEnumerable<NewTaskRow> rows) => new
    {
        batch = JsonSerializer.Serialize(rows.Select(t => new
        {
            key = t.Key, type = t.Type, user = t.User,
            data = t.Data is null ? null : "0x" + Convert.ToHexString(t.Data),
            maxRunning = t.MaxRunning, runAt = t.RunAtMs, delay = t.DelayMs, timeout = t.TimeoutMs, trace = t.TraceParent,
        }), Json),
    };
    private static object UpdateDataArgs(Lease lease, byte[] data) => new { data, id = lease.Id, token = lease.Token };
    private static object KeyArgs(string key) => new { key };
    private static object IdsArgs(IEnumerable<long> ids) => new { ids = JsonSerializer.Serialize(ids, Json) };
    private static object ListArgs(TaskQuery q) => new
    {
        keys = q.Keys is { Count: > 0 } ? JsonSerializer.Serialize(q.Keys) : null,
        types = q.Types is { Count: > 0 } ? JsonSerializer.Serialize(q.Types) : null,
        users = q.Users is { Count: > 0 } ? JsonSerializer.Serialize(q.Users) : null,
        first = q.First,
        keyPatterns = q.KeyPatterns is { Count: > 0 } ? JsonSerializer.Serialize(q.KeyPatterns.Select(KeyPatternSql.SqlServerLike)) : null,
        newest = q.Newest,
        pageSize = q.Page?.Size,
        beforeId = q.Page?.BeforeId,
    };
    private static object RequestCancelArgs(string key, string message, long retentionMs) => new { key, message, retention = retentionMs };
    private static object ForceFinishArgs(string key, string outcome, string? message, long retentionMs) => new { key, outcome, message, retention = retentionMs };
    private static object CleanupArgs(int limit) => new { limit };
    private object TablesArgs() => new { name = _t, workers = _w };
    private static object RegisterWorkerArgs(WorkerBeat s) =>
        new { id = s.Id, host = s.Host, pid = s.Pid, processors = s.Processors, running = s.Running, alive = s.AliveMs, processorType = s.ProcessorType };
    private static object BeatWorkerArgs(WorkerBeat b) =>
        new { id = b.Id, host = b.Host, pid = b.Pid, processors = b.Processors, running = b.Running, alive = b.AliveMs, started = b.StartedAt, processorType = b.ProcessorType };
    private static object WorkerIdArgs(string id) => new { id };
    private static object CleanupWorkersArgs(long deadForMs) => new { deadFor = deadForMs };

    private string ListSql(TaskQuery q)
    {
        // Lists travel as JSON arrays, compared exactly (binary collation) as the key index compares.
        // Key patterns too, as LIKE patterns under the binary collation (case-sensitive; [%] [_] [[] are the literals).
        var where = PortableSql.ListConditions(q, "@now", p => $"IN (SELECT v COLLATE {Exact} FROM OPENJSON({p}) WITH (v nvarchar(max) '$'))",
            p => $"EXISTS (SELECT 1 FROM OPENJSON({p}) WITH (v nvarchar(max) '$') AS kp WHERE task_key LIKE kp.v COLLATE {Exact})");
        var limit = PortableSql.ListLimitParameter(q);
        return $"DECLARE @now bigint = {NowSql};\nSELECT {(limit is null ? "" : $"TOP ({limit}) ")}{_columns} FROM {_t} WHERE {where} {PortableSql.ListOrder(q)};";
    }

    /// <summary>
    /// Every statement text this store can send, with sample parameters built by the same code the
    /// operations use (the List query once per filter combination). For tests: no server is needed.
    /// </summary>
    // The clock and the counts in one batch: the counts' Waiting/Running split uses the same @now.
    private string DueOrRunningBatch => $"DECLARE @now bigint = {NowSql};\n{PauseSql.DueOrRunningSql(_t, _p, "@now")};";
    private string SummaryBatch => $"DECLARE @now bigint = {NowSql};\nSELECT @now;\n{TaskStateSql.SummarySql(_t, "@now", NotExpired)};";

    IEnumerable<(string Name, string Sql)> StoreStatements.IInventory.Statements() => Statements().Select(s => (s.Name, s.Sql));

    internal IEnumerable<(string Name, string Sql, object? Parameters)> Statements()
    {
        yield return ("summarize", SummaryBatch, null);
        yield return ("due_or_running", DueOrRunningBatch, null);
        yield return ("now", NowQuery, null);
        yield return ("is_initialized", _isInitializedSql, NameArgs());
        yield return ("probe_missing_table", _probeSql, NameArgs());
        yield return ("rollback_open_transaction", RollbackSql, null);
        yield return ("initialize.compatibility_level", CompatibilityLevelSql, null);
        foreach (var statement in SchemaStatements()) yield return statement;

        var lease = new Lease(42, 0x3FFF_FFFF_FFFF_0001);
        yield return ("submit", _submitSql, SubmitArgs(
        [
            new NewTaskRow("k1", "backup", "team-a", [0x7B, 0x7D], 2, null, 1500, 600_000),
            new NewTaskRow("k2", "backup", null, [0x1F, 0x8B, 0x00], null, 1_767_225_600_000, null),
        ]));
        yield return ("acquire", _acquireSql, AcquireArgs(10, 30_000, lease.Token, "0123456789ab"));
        yield return ("heartbeat", _heartbeatSql, HeartbeatArgs([lease, new Lease(43, 7)], 30_000));
        yield return ("apply", _applySql, ApplyArgs(
        [
            new LeaseWrite(lease, LeaseWriteKind.Finish, "Succeeded", "done", RetentionMs: 600_000),
            new LeaseWrite(new Lease(43, 7), LeaseWriteKind.Retry, Message: "boom", DelayMs: 300_000),
            new LeaseWrite(new Lease(44, 8), LeaseWriteKind.Release),
        ]));
        yield return ("update_data", _updateDataSql, UpdateDataArgs(lease, [0x7B, 0x7D]));
        yield return ("get", _getSql, KeyArgs("k1"));
        yield return ("get_by_ids", _getByIdsSql, IdsArgs([42, 43]));
        foreach (var (name, q) in StoreStatements.SampleQueries()) yield return ($"list{name}", ListSql(q), ListArgs(q));
        yield return ("request_cancel", _requestCancelSql, RequestCancelArgs("k1", "cancel requested", 600_000));
        yield return ("force_finish", _forceFinishSql, ForceFinishArgs("k1", "ForceFinished", null, 600_000));
        yield return ("cleanup", _cleanupSql, CleanupArgs(1000));

        var session = new WorkerBeat("3f9a1c07be42", "build-host-01", 4242, 4, 2, 300_000, 1_767_225_600_000) { ProcessorType = "process" };
        yield return ("worker.tables", _tablesSql, TablesArgs());
        yield return ("worker.register", _registerWorkerSql, RegisterWorkerArgs(session));
        yield return ("worker.beat", _beatWorkerSql, BeatWorkerArgs(session));
        yield return ("worker.remove", _removeWorkerSql, WorkerIdArgs(session.Id));
        yield return ("worker.list", _listWorkersSql, null);
        yield return ("worker.running", _listRunningSql, null);
        yield return ("worker.request_stop", _requestWorkerStopSql, WorkerIdArgs(session.Id));
        yield return ("worker.cleanup", _cleanupWorkersSql, CleanupWorkersArgs(300_000));
        foreach (var statement in ScheduleStatements()) yield return statement;
        foreach (var statement in PauseStatements()) yield return statement;
        foreach (var statement in FinishedTaskStatements()) yield return statement;
        yield return ("tables", ListQueueTablesSql, null);
        foreach (var statement in HistoryStatements()) yield return statement;
    }

    // ---- operations ----

    public Task<bool> IsInitializedAsync(CancellationToken ct) => Run(c =>
        c.ExecuteScalarAsync<bool>(Command(_isInitializedSql, NameArgs(), null, ct)), RetrySafety.Always, ct, checkTable: false);

    public Task<long> NowAsync(CancellationToken ct) => Run(c =>
        c.ExecuteScalarAsync<long>(Command(NowQuery, null, null, ct)), RetrySafety.Always, ct, checkTable: false);

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
        foreach (var part in SplitBySize(unique.Select(u => u.Row).ToList(), MaxBatchChars).Select(p => p.Select(i => unique[i]).ToList()))
        {
            try
            {
                var stored = await InsertAsync(part.Select(u => u.Row), ct).ConfigureAwait(false);
                foreach (var (index, row) in part) result[index] = stored.Contains(row.Key);
            }
            catch (SqlException e) when (SqlServerErrors.IsDuplicateKey(SqlServerErrors.Numbers(e)))
            {
                // The batch met a key taken after its NOT EXISTS check (a concurrent submit, or two keys SQL
                // Server compares as equal), so the whole insert rolled back. Row by row, each duplicate is
                // told by its error number and the others are stored.
                foreach (var (index, row) in part)
                {
                    try { result[index] = (await InsertAsync([row], ct).ConfigureAwait(false)).Contains(row.Key); }
                    catch (SqlException one) when (SqlServerErrors.IsDuplicateKey(SqlServerErrors.Numbers(one))) { result[index] = false; }
                }
            }
        }
        return result;
    }

    /// <summary>
    /// The most characters of JSON one submit batch carries (about 64 MB of nvarchar). Data travels as hex
    /// text inside it, 2 characters a byte (4 bytes of UTF-16), so 500 tasks of 1 MB would otherwise build one
    /// string of about a billion characters: too big for the client's memory and the server's.
    /// </summary>
    internal const long MaxBatchChars = 32L * 1024 * 1024;

    /// <summary>About how many characters a row takes in the submit batch's JSON.</summary>
    internal static long JsonChars(NewTaskRow row) =>
        200 + 2L * (row.Key.Length + row.Type.Length + (row.User?.Length ?? 0)) + (row.Data is null ? 0 : 2 + 2L * row.Data.Length);

    /// <summary>
    /// Splits rows, in order, into consecutive batches (as row indexes) of at most <paramref name="maxChars"/>
    /// characters each; a row bigger than that is a batch of its own. Each batch is one transaction.
    /// </summary>
    internal static List<List<int>> SplitBySize(IReadOnlyList<NewTaskRow> rows, long maxChars)
    {
        var batches = new List<List<int>>();
        List<int>? current = null;
        long size = 0;
        for (var i = 0; i < rows.Count; i++)
        {
            var chars = JsonChars(rows[i]);
            if (current is null || (size + chars > maxChars && current.Count > 0))
            {
                current = [];
                batches.Add(current);
                size = 0;
            }
            current.Add(i);
            size += chars;
        }
        return batches;
    }

    // Not retried on an ambiguous connection loss: the insert may have committed, and a second try would
    // report the caller's own task as a duplicate.
    private Task<HashSet<string>> InsertAsync(IEnumerable<NewTaskRow> rows, CancellationToken ct) => Run(async c =>
        (await c.QueryAsync<string>(Command(_submitSql, SubmitArgs(rows), null, ct)).ConfigureAwait(false)).ToHashSet(StringComparer.Ordinal),
        RetrySafety.BeforeSent, ct);

    public async Task<IReadOnlyList<TaskRow>> AcquireAsync(int max, long aliveMs, string? session, CancellationToken ct)
    {
        if (max > 0) await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await AcquireSql.FillAsync(max, want => AcquireOnceAsync(want, aliveMs, session, ct)).ConfigureAwait(false);
    }

    private Task<(List<TaskRow> Leased, long Ranked)> AcquireOnceAsync(int max, long aliveMs, string? session, CancellationToken ct)
    {
        var token = AcquireSql.NewToken();
        // Safe to run again after any failure: the batch is one transaction, and leases of a lost attempt expire.
        return Run(async c =>
        {
            using var results = await c.QueryMultipleAsync(Command(_acquireSql, AcquireArgs(max, aliveMs, token, session), null, ct)).ConfigureAwait(false);
            var ranked = await results.ReadSingleAsync<long>().ConfigureAwait(false);
            var rows = (await results.ReadAsync<TaskRow>().ConfigureAwait(false)).AsList();
            rows.Sort((a, b) => Nullable.Compare(a.LeaseToken, b.LeaseToken));
            return (rows, ranked);
        }, RetrySafety.Always, ct);
    }

    public Task<IReadOnlyList<ExtendedLease>> HeartbeatAsync(IReadOnlyList<Lease> leases, long aliveMs, CancellationToken ct)
    {
        if (leases.Count == 0) return Task.FromResult<IReadOnlyList<ExtendedLease>>([]);
        return Run(async c => (IReadOnlyList<ExtendedLease>)(await c.QueryAsync<(long Id, short CancelRequested)>(
                Command(_heartbeatSql, HeartbeatArgs(leases, aliveMs), null, ct)).ConfigureAwait(false))
            .Select(r => new ExtendedLease(r.Id, r.CancelRequested != 0)).ToList(), RetrySafety.Always, ct);
    }

    // Not retried on an ambiguous connection loss: a second try of a committed write would look like a lost lease.
    public Task<IReadOnlySet<long>> ApplyAsync(IReadOnlyList<LeaseWrite> writes, CancellationToken ct)
    {
        if (writes.Count == 0) return Task.FromResult<IReadOnlySet<long>>(new HashSet<long>());
        var history = writes.Any(w => w.Attempt is not null || w.Notice is not null);
        return Run(async c => (IReadOnlySet<long>)(await c.QueryAsync<long>(Command(history ? ApplyWithHistorySql : _applySql, history ? ApplyHistoryArgs(writes) : ApplyArgs(writes), null, ct)).ConfigureAwait(false)).ToHashSet(),
            RetrySafety.BeforeSent, ct);
    }

    public Task<bool> UpdateDataAsync(Lease lease, byte[] data, CancellationToken ct) => Run(async c =>
        await c.ExecuteScalarAsync<int>(Command(_updateDataSql, UpdateDataArgs(lease, data), null, ct)).ConfigureAwait(false) == 1,
        RetrySafety.Always, ct);

    public Task<TaskRow?> GetAsync(string key, CancellationToken ct) => UpgradedAsync(ct, () => Run(c =>
        c.QuerySingleOrDefaultAsync<TaskRow?>(Command(_getSql, KeyArgs(key), null, ct)), RetrySafety.Always, ct));

    public Task<IReadOnlyList<TaskRow>> GetByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken ct) => ids.Count == 0
        ? Task.FromResult<IReadOnlyList<TaskRow>>([])
        : UpgradedAsync(ct, () => Run(async c => (IReadOnlyList<TaskRow>)(await c.QueryAsync<TaskRow>(Command(_getByIdsSql, IdsArgs(ids), null, ct)).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct));

    public Task<IReadOnlyList<TaskRow>> ListAsync(TaskQuery q, CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
        (IReadOnlyList<TaskRow>)(await c.QueryAsync<TaskRow>(Command(ListSql(q), ListArgs(q), null, ct)).ConfigureAwait(false)).AsList(),
        RetrySafety.Always, ct));

    public Task<(IReadOnlyList<SummaryRow> Rows, long Now)> SummarizeAsync(CancellationToken ct) => Run(async c =>
    {
        using var results = await c.QueryMultipleAsync(Command(SummaryBatch, null, null, ct)).ConfigureAwait(false);
        var now = await results.ReadSingleAsync<long>().ConfigureAwait(false);
        var rows = (await results.ReadAsync<SummaryRow>().ConfigureAwait(false)).AsList();
        return ((IReadOnlyList<SummaryRow>)rows, now);
    }, RetrySafety.Always, ct);

    public Task<bool> AnyDueOrRunningAsync(CancellationToken ct) => Run(async c =>
        await c.ExecuteScalarAsync<int>(Command(DueOrRunningBatch, null, null, ct)).ConfigureAwait(false) == 1, RetrySafety.Always, ct);

    public Task<CancelRequestResult> RequestCancelAsync(string key, string message, long retentionMs, CancellationToken ct) => Run(async c =>
        Enum.Parse<CancelRequestResult>(await c.ExecuteScalarAsync<string>(Command(_requestCancelSql, RequestCancelArgs(key, message, retentionMs), null, ct)).ConfigureAwait(false)
            ?? nameof(CancelRequestResult.NotFound)),
        RetrySafety.Always, ct); // running it again lands on the same state

    public Task<bool> ForceFinishAsync(string key, string outcome, string? message, long retentionMs, CancellationToken ct) => Run(async c =>
        await c.ExecuteScalarAsync<int>(Command(_forceFinishSql, ForceFinishArgs(key, outcome, message, retentionMs), null, ct)).ConfigureAwait(false) == 1,
        RetrySafety.BeforeSent, ct);

    public Task<int> CleanupAsync(int limit, CancellationToken ct) => Run(c =>
        c.ExecuteScalarAsync<int>(Command(CleanupWithAttemptsSql, CleanupArgs(limit), null, ct)), RetrySafety.Always, ct);

    // ---- worker sessions ----

    private QueueNotInitializedException NotInitialized(Exception? inner) => StoreMessages.NotInitialized(_table, Description, inner);

    private Task<(bool Queue, bool Workers)> TablesAsync(CancellationToken ct) => Run(c =>
        c.QuerySingleAsync<(bool, bool)>(Command(_tablesSql, TablesArgs(), null, ct)), RetrySafety.Always, ct, checkTable: false);

    // Runs a statement on the sessions table. A queue of schema version 1 has none yet: that reads as no
    // sessions (whenMissing), unless the queue table itself is missing.
    private Task<T> OnWorkersTableAsync<T>(Func<SqlConnection, Task<T>> work, T whenMissing, RetrySafety safety, CancellationToken ct) =>
        WorkersTableGuard.RunAsync(() => Run(work, safety, ct, checkTable: false),
            e => e is SqlException se && SqlServerErrors.IsMissingTable(SqlServerErrors.Numbers(se)),
            async () => (await TablesAsync(ct).ConfigureAwait(false)).Queue, NotInitialized, whenMissing);

    public async Task<long?> RegisterWorkerAsync(WorkerBeat session, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false); // a queue of an older version gains its sessions table here at the latest
        var (queue, workers) = await TablesAsync(ct).ConfigureAwait(false);
        if (!queue) throw NotInitialized(null);
        if (!workers) throw WorkersTableMissing();
        // Not retried on an ambiguous connection loss: a second try would find its own row and report the id taken.
        return await Run(c => c.ExecuteScalarAsync<long?>(Command(_registerWorkerSql, RegisterWorkerArgs(session), null, ct)),
            RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public Task<bool> BeatWorkerAsync(WorkerBeat beat, CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
        await c.ExecuteScalarAsync<short>(Command(_beatWorkerSql, BeatWorkerArgs(beat), null, ct)).ConfigureAwait(false) != 0,
        RetrySafety.Always, ct)); // the same beat twice lands on the same state

    public Task RemoveWorkerAsync(string id, CancellationToken ct) => OnWorkersTableAsync(c =>
        c.ExecuteAsync(Command(_removeWorkerSql, WorkerIdArgs(id), null, ct)), 0, RetrySafety.Always, ct);

    public Task<IReadOnlyList<WorkerSessionRow>> ListWorkersAsync(CancellationToken ct) => UpgradedAsync(ct, () => OnWorkersTableAsync(async c =>
        (IReadOnlyList<WorkerSessionRow>)(await c.QueryAsync<WorkerSessionRow>(Command(_listWorkersSql, null, null, ct)).ConfigureAwait(false)).AsList(),
        [], RetrySafety.Always, ct));

    public Task<IReadOnlyList<RunningRow>> ListRunningAsync(CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
        (IReadOnlyList<RunningRow>)(await c.QueryAsync<RunningRow>(Command(_listRunningSql, null, null, ct)).ConfigureAwait(false)).AsList(),
        RetrySafety.Always, ct));

    public Task<WorkerSessionRow?> RequestWorkerStopAsync(string id, CancellationToken ct) => UpgradedAsync(ct, () => OnWorkersTableAsync(c =>
        c.QuerySingleOrDefaultAsync<WorkerSessionRow?>(Command(_requestWorkerStopSql, WorkerIdArgs(id), null, ct)),
        null, RetrySafety.Always, ct)); // running it again lands on the same state

    public Task<int> CleanupWorkersAsync(long deadForMs, CancellationToken ct) => OnWorkersTableAsync(c =>
        c.ExecuteScalarAsync<int>(Command(_cleanupWorkersSql, CleanupWorkersArgs(deadForMs), null, ct)), 0, RetrySafety.Always, ct);

    public async Task<bool> WaitForSubmitAsync(TimeSpan timeout, CancellationToken ct)
    {
        await Task.Delay(timeout, ct).ConfigureAwait(false); // SQL Server has no cheap notification: poll
        return false;
    }

    // ---- connections, errors and retries ----

    private static CommandDefinition Command(string sql, object? parameters, SqlTransaction? tx, CancellationToken ct) =>
        new(sql, parameters, tx, cancellationToken: ct);

    private async Task<SqlConnection> OpenAsync(CancellationToken ct)
    {
        var c = new SqlConnection(_connectionString);
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

    private Task<T> Run<T>(Func<SqlConnection, Task<T>> work, RetrySafety safety, CancellationToken ct, bool checkTable = true) =>
        _runner.RunAsync(work, safety, ct, checkTable);

    private bool ShouldRetry(Exception e, bool opened, RetrySafety safety)
    {
        // A server restart or failover breaks every pooled connection at once: after one broke (severity 20
        // and above), drop the idle ones too, so the next try (and the next command) opens fresh connections.
        if (e is SqlException se && se.Errors.Cast<SqlError>().Any(x => x.Class >= 20))
        {
            using var pooled = new SqlConnection(_connectionString);
            SqlConnection.ClearPool(pooled);
        }
        return SqlServerErrors.ShouldRetry(e, opened, safety);
    }

    // XACT_ABORT ON rolls a batch's transaction back on run-time errors and cancellation, but not on
    // compile-time errors such as a missing table (error 208), which only end the batch. Roll back here so a
    // pooled connection never keeps a transaction (and its locks) open.
    private static async Task RollbackLeftOverTransactionAsync(SqlConnection c)
    {
        if (c.State != System.Data.ConnectionState.Open) return;
        try { await c.ExecuteAsync(RollbackSql).ConfigureAwait(false); }
        catch (Exception e) when (e is SqlException or InvalidOperationException) { /* the connection is broken; the pool discards it */ }
    }

    // Error 208 names no object by number. If the queue table exists, the missing object is OPENJSON,
    // which a database below compatibility level 130 does not have, or something else (null: rethrow as is).
    private async Task<Exception?> MissingObjectErrorAsync(SqlException e)
    {
        try
        {
            await using var c = new SqlConnection(_connectionString);
            await c.OpenAsync().ConfigureAwait(false);
            var probe = await c.QuerySingleAsync<(bool TableExists, int? CompatibilityLevel)>(_probeSql, NameArgs()).ConfigureAwait(false);
            if (probe.TableExists && probe.CompatibilityLevel is < MinCompatibilityLevel)
                return IncompatibleDatabase(probe.CompatibilityLevel.Value, e);
            if (probe.TableExists) return null;
        }
        catch (Exception probe) when (probe is SqlException or InvalidOperationException or TimeoutException) { /* report what we know */ }
        return NotInitialized(e);
    }

    private PerfectQueueException IncompatibleDatabase(int level, Exception? inner) => new(
        $"The database of {Description} has compatibility level {level}; PerfectQueue needs {MinCompatibilityLevel} or later (SQL Server 2016+) for OPENJSON. " +
        $"Raise it with ALTER DATABASE ... SET COMPATIBILITY_LEVEL = {MinCompatibilityLevel} (or higher).", inner);

    /// <summary>Truncation, conversion and overflow errors, and malformed JSON: the value is the problem (SqlServerErrors.IsValueError).</summary>
    public bool IsValueError(Exception error) =>
        (error is SqlException e && SqlServerErrors.IsValueError(SqlServerErrors.Numbers(e))) || StoreErrors.IsEncodingError(error);

    public void Dispose()
    {
        // Connections are pooled by SqlClient per connection string and shared with other stores: nothing to release.
    }
}
