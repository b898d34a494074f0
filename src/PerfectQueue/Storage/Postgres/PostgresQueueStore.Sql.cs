namespace PerfectQueue.Storage.Postgres;

// The statement texts of the PostgreSQL store, one per operation, and their inventory (Statements): the same
// operation names on every backend (StoreStatements), so one operation reads side by side across dialects.
internal sealed partial class PostgresQueueStore
{
    private const string NowQuery = "SELECT " + Now;

    // The pause check stays a filter on the rows the due index yields in order (a subplan) instead of becoming an
    // anti-join: OFFSET 0 keeps PostgreSQL from pulling the NOT EXISTS up into a join, whose estimate (nearly every
    // row removed, once the pauses table has a row) made it scan and sort the whole backlog instead of stopping
    // after @scan rows (measured at 5,000 due tasks and a user paused: 13 ms instead of 1.5 ms; docs/pause.md).
    private const string KeepAsFilter = " OFFSET 0";

    private (string LockUsers, string Acquire) AcquireStatements()
    {
        // max_running without a global lock: a statement's snapshot is taken when it starts, so two acquirers
        // could both count the same running tasks. So acquire is one transaction of two statements, sent in
        // one round trip. The first ranks the candidates as they look now and takes a transaction-scoped
        // try-lock per limited user among the best-ranked @scan of them (users locked by another acquirer
        // are skipped, as rows are with SKIP LOCKED), leaving the locked and the skipped users in
        // transaction-local settings. The second starts after the locks are held, so its running count sees
        // every committed lease of the users it may take from: it ranks tasks without a user, tasks of locked
        // users, and unlimited tasks of users no one else is limiting. Only the first looks for users (one seek
        // per user); the second seeks the tasks of the users it locked.
        // Candidates (AcquireSql): the @scan oldest due tasks, plus the @quota oldest due tasks of every
        // limited user (a loose index scan finds the users, a LATERAL seek per user over <table>_user_due
        // their tasks), so a flood from one user cannot hide the others. The seek reads a user's @quota oldest due
        // tasks and keeps the limited ones: filtering max_running inside it walked every due task of every user
        // without a limit (2.5 s at 1,000,000 tasks of 1,000 such users), and the recursion's last row (NULL, no
        // more users) must not reach it, or its seek walks the whole due index (docs/performance.md).
        const string running = """
            SELECT user_name AS ru, count(*) AS rc FROM {0}
            WHERE finished_at IS NULL AND lease_token IS NOT NULL AND due_at > {1} AND user_name IS NOT NULL {2}
            GROUP BY user_name
            """;
        var everyUser = $"""
            (SELECT user_name FROM {_t} WHERE finished_at IS NULL AND user_name IS NOT NULL ORDER BY user_name LIMIT 1)
                UNION ALL
                SELECT (SELECT user_name FROM {_t} WHERE finished_at IS NULL AND user_name > users.u ORDER BY user_name LIMIT 1)
                FROM users WHERE users.u IS NOT NULL
            """;
        string Candidates(string users, string windowFilter, string userFilter) => $"""
            users(u) AS ({users}),
            pool AS (
                (SELECT c.id, c.user_name, c.max_running, c.due_at FROM {_t} AS c LEFT JOIN running AS r ON r.ru = c.user_name
                 WHERE c.finished_at IS NULL AND c.due_at <= {Now} AND {windowFilter} AND {PauseSql.NotPaused(_p, "c", KeepAsFilter)}
                 ORDER BY c.due_at, c.id
                 LIMIT @scan)
                UNION
                SELECT p.id, p.user_name, p.max_running, p.due_at FROM users CROSS JOIN LATERAL (
                    SELECT id, user_name, max_running, due_at FROM {_t}
                    WHERE user_name = users.u AND finished_at IS NULL AND due_at <= {Now} AND {PauseSql.NotPaused(_p, _t, KeepAsFilter)}
                    ORDER BY due_at, id
                    LIMIT @quota) AS p
                WHERE users.u IS NOT NULL AND p.max_running IS NOT NULL AND {userFilter} AND NOT {PauseSql.UserPaused(_p, "users.u")}),
            candidates AS (
                SELECT p.id AS cid, p.user_name AS cu, p.max_running AS cmax, p.due_at AS cdue, COALESCE(r.rc, 0) AS crun
                FROM pool AS p LEFT JOIN running AS r ON r.ru = p.user_name),
            {AcquireSql.RankCtes}
            """;
        // A queue none of whose tasks has a user (the common case) has no limit to keep and nobody to be fair to: the
        // ranking then is due order, and both statements skip it. The check is one probe of <table>_user_due, and a
        // constant to the planner, so the parts it gates off are never run (a gating One-Time Filter): the first
        // statement locks nobody, and the second walks the due index with FOR UPDATE SKIP LOCKED, locking only
        // the rows it leases, as ranked. Measured on a 5,000-task no-op drain: 0.74 + 0.68 ms of server time per
        // acquire before, most of it sorting the 108 candidates of a 4-task batch (docs/performance.md). That branch
        // has no `user_name IS NULL` of its own: the snapshot saw no unfinished task with a user, no statement gives
        // one to an unfinished task, and the condition made the planner read every due task from <table>_user_due
        // and sort them.
        // ORDER BY user_name makes it a probe of <table>_user_due: a bare EXISTS let the planner filter the due index.
        var anyUser = $"EXISTS (SELECT 1 FROM (SELECT user_name FROM {_t} WHERE finished_at IS NULL AND user_name IS NOT NULL ORDER BY user_name LIMIT 1) AS any_user)";
        const string belowLimit = "(c.max_running IS NULL OR c.user_name IS NULL OR c.max_running > COALESCE(r.rc, 0))";
        var lockUsers = $"""
            WITH RECURSIVE running AS ({string.Format(running, _t, Now, "")}),
            {Candidates(everyUser, belowLimit, "true")},
            limited AS (
                SELECT DISTINCT cu AS u FROM chosen WHERE {anyUser} AND ord <= @scan AND cu IS NOT NULL AND cmax IS NOT NULL),
            tried AS (SELECT u, pg_try_advisory_xact_lock(@ns, hashtext(u)) AS got FROM limited)
            SELECT set_config('perfectqueue.locked', COALESCE((SELECT array_agg(u) FROM tried WHERE got), '{EmptyArray}')::text, true),
                   set_config('perfectqueue.skipped', COALESCE((SELECT array_agg(u) FROM tried WHERE NOT got), '{EmptyArray}')::text, true)
            """;
        // Only the rows leased are locked: the ranking reads without locks, then the chosen rows are locked in
        // rank order, skipping rows another acquirer holds (SKIP LOCKED) and rows leased since our snapshot
        // (the re-check on the locked row), until @max are held. So concurrent acquirers never come back empty
        // because others locked candidates they would not lease. "Ranked" tells the caller how many rows were
        // chosen, so it can try again when rows it wanted were taken under it. The chosen ids are unnested in
        // rank order and each is locked by its own primary-key lookup: a LATERAL subquery with FOR UPDATE is
        // never flattened, so the plan is a nested loop over the ids whatever the statistics say, and LIMIT
        // stops it after @max locks. Filtering the table by `id = ANY(ids)` let the planner walk the due index
        // of a table not yet analyzed (every fresh queue for its first minute): 3 ms at 2,600 due tasks and
        // growing with the backlog, against 0.2 ms this way (docs/performance.md).
        const string locked = "current_setting('perfectqueue.locked')::text[]";
        const string skipped = "current_setting('perfectqueue.skipped')::text[]";
        var acquire = $"""
            WITH RECURSIVE running AS ({string.Format(running, _t, Now, $"AND user_name = ANY({locked})")}),
            {Candidates($"SELECT unnest({locked})", $"(c.user_name IS NULL OR c.user_name = ANY({locked}) OR (c.max_running IS NULL AND NOT c.user_name = ANY({skipped})))", $"users.u = ANY({locked})")},
            ranked_ids AS (SELECT ARRAY(SELECT cid FROM chosen ORDER BY ord) AS ids),
            users_exist AS (SELECT {anyUser} AS yes),
            held AS (
                (SELECT h.id, r.ord FROM unnest((SELECT ids FROM ranked_ids)) WITH ORDINALITY AS r(id, ord)
                CROSS JOIN LATERAL (
                    SELECT l.id FROM {_t} AS l
                    WHERE l.id = r.id AND l.finished_at IS NULL AND l.due_at <= {Now}
                    FOR UPDATE OF l SKIP LOCKED) AS h
                WHERE (SELECT yes FROM users_exist)
                LIMIT @max)
                UNION ALL
                SELECT d.id, row_number() OVER (ORDER BY d.due_at, d.id) FROM (
                    SELECT l.id, l.due_at FROM {_t} AS l
                    WHERE NOT (SELECT yes FROM users_exist) AND l.finished_at IS NULL AND l.due_at <= {Now}
                        AND {PauseSql.NotPaused(_p, "l", KeepAsFilter)}
                    ORDER BY l.due_at, l.id
                    LIMIT @max
                    FOR UPDATE OF l SKIP LOCKED) AS d),
            numbered AS (SELECT id AS nid, row_number() OVER (ORDER BY ord) AS n FROM held),
            leased AS (
                UPDATE {_t} SET lease_token = @token + numbered.n, due_at = {Now} + @alive, attempts = attempts + 1, {PortableSql.LeaseStart(Now)}
                FROM numbered
                WHERE {_t}.id = numbered.nid
                RETURNING {_columns})
            SELECT leased.*, w.n AS "Ranked" FROM (SELECT CASE WHEN (SELECT yes FROM users_exist) THEN (SELECT count(*) FROM chosen) ELSE (SELECT count(*) FROM held) END AS n) AS w LEFT JOIN leased ON true
            """;
        return (lockUsers, acquire);
    }

    private string SubmitStatement()
    {
        // Submit wakes listening workers: notifications are sent at commit, and duplicates within one
        // transaction are folded into one.
        return $"""
            WITH stored AS (
                INSERT INTO {_t} AS t (task_key, task_type, user_name, data, max_running, created_at, due_at, attempts, cancel_requested, timeout_ms, trace_parent)
                SELECT k, ty, u, d, mr, {Now}, COALESCE(ra, {Now} + COALESCE(dl, 0)), 0, 0, tm, tp
                FROM unnest(@keys::text[], @types::text[], @users::text[], @datas::bytea[], @maxes::int[], @runats::bigint[], @delays::bigint[], @timeouts::bigint[], @traces::text[])
                    AS s(k, ty, u, d, mr, ra, dl, tm, tp)
                ON CONFLICT (task_key) DO UPDATE SET
                    task_type = excluded.task_type, user_name = excluded.user_name, data = excluded.data,
                    max_running = excluded.max_running, created_at = excluded.created_at, due_at = excluded.due_at, timeout_ms = excluded.timeout_ms,
                    trace_parent = excluded.trace_parent,
                    lease_token = NULL, attempts = 0, cancel_requested = 0, finished_at = NULL, outcome = NULL,
                    message = NULL, purge_at = NULL, leased_by = NULL, leased_at = NULL, last_run_ms = NULL
                WHERE t.finished_at IS NOT NULL AND t.purge_at <= {Now}
                RETURNING task_key)
            SELECT stored.task_key FROM stored, LATERAL (SELECT pg_notify(@channel, '')) AS n
            """;
    }

    // An expired lease is not revived (see the SQLite store): the holder learns it lost the task.
    private string HeartbeatSql => $"""
        UPDATE {_t} SET due_at = {Now} + @alive
        FROM unnest(@ids::bigint[], @tokens::bigint[]) AS w(wid, wtok)
        WHERE {_t}.id = w.wid AND {_t}.lease_token = w.wtok AND {_t}.finished_at IS NULL AND {_t}.due_at > {Now}
        RETURNING {_t}.id, {_t}.cancel_requested
        """;

    private string FinishSql => $"""
        UPDATE {_t} SET finished_at = {Now}, outcome = w.o, message = w.m, purge_at = {Now} + w.r, lease_token = NULL, due_at = NULL,
            attempts = GREATEST({_t}.attempts - w.u, 0), {PortableSql.RunEnd(Now, uncounted: "w.u")}
        FROM unnest(@ids::bigint[], @tokens::bigint[], @outcomes::text[], @messages::text[], @retentions::bigint[], @uncounted::int[]) AS w(wid, wtok, o, m, r, u)
        {LeaseFence}
        """;

    private string RetrySql => $"""
        UPDATE {_t} SET due_at = {Now} + w.d, lease_token = NULL, message = COALESCE(w.m, {_t}.message), {PortableSql.RunEnd(Now)}
        FROM unnest(@ids::bigint[], @tokens::bigint[], @delays::bigint[], @messages::text[]) AS w(wid, wtok, d, m)
        {LeaseFence}
        """;

    private string ReleaseSql => $"""
        UPDATE {_t} SET due_at = {Now}, lease_token = NULL, attempts = GREATEST({_t}.attempts - 1, 0)
        FROM unnest(@ids::bigint[], @tokens::bigint[]) AS w(wid, wtok)
        {LeaseFence}
        """;

    private string RequestCancelSql => $"""
        UPDATE {_t} SET {PortableSql.CancelSet(Now)}
        WHERE {PortableSql.LiveByKey}
        RETURNING finished_at
        """;

    private string CleanupSql => $"""
        DELETE FROM {_t} WHERE id IN (
            SELECT id FROM {_t} WHERE finished_at IS NOT NULL AND purge_at <= {Now}
            ORDER BY purge_at LIMIT @limit FOR UPDATE SKIP LOCKED)
        """;

    private string RegisterWorkerSql => $"""
        INSERT INTO {_w} (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
        VALUES (@id, @host, @pid, @processors, @running, {Now}, {Now}, {Now} + @alive, 0, @processorType)
        ON CONFLICT (id) DO NOTHING
        RETURNING started_at
        """;

    private string BeatWorkerSql => $"""
        INSERT INTO {_w} AS w (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
        VALUES (@id, @host, @pid, @processors, @running, COALESCE(@started::bigint, {Now}), {Now}, {Now} + @alive, 0, @processorType)
        ON CONFLICT (id) DO UPDATE SET running = excluded.running, last_beat_at = excluded.last_beat_at, alive_until = excluded.alive_until,
            processor_type = excluded.processor_type
        RETURNING w.stop_requested
        """;

    // A fenced write applies only to the rows whose lease the holder still has.
    private string LeaseFence => $"WHERE {_t}.id = w.wid AND {_t}.lease_token = w.wtok AND {_t}.finished_at IS NULL RETURNING {_t}.id";

    private static readonly string NotExpired = PortableSql.NotExpired(Now);
    private static readonly string WorkerColumns = RowProjection.WorkerColumns(Now, Quote);

    private string GetSql => $"SELECT {_columns} FROM {_t} WHERE task_key = @key AND {NotExpired}";
    private string GetByIdsSql => $"SELECT {_columns} FROM {_t} WHERE id = ANY(@ids)";
    private string KeyVisibleSql => $"SELECT EXISTS (SELECT 1 FROM {_t} WHERE task_key = @key AND {NotExpired})";
    private string UpdateDataSql => PortableSql.UpdateData(_t);
    private string ForceFinishSql => PortableSql.ForceFinish(_t, Now);
    private string SummarySql => TaskStateSql.SummarySql(_t, "@now", PortableSql.NotExpired("@now"));
    private string DueOrRunningSql => PauseSql.DueOrRunningSql(_t, _p, Now);
    private string RemoveWorkerSql => PortableSql.RemoveWorker(_w);
    private string ListWorkersSql => $"SELECT {WorkerColumns} FROM {_w} ORDER BY started_at, id";
    private string ListRunningSql => PortableSql.Running(_t, Now, Quote);
    private string RequestWorkerStopSql => $"UPDATE {_w} SET stop_requested = 1 WHERE id = @id RETURNING {WorkerColumns}";
    private string CleanupWorkersSql => PortableSql.CleanupWorkers(_w, Now);

    // Key patterns travel as an array of anchored regular expressions (~ is case-sensitive; LIKE has no [a-z]).
    private string ListSql(TaskQuery q) =>
        $"SELECT {_columns} FROM {_t} WHERE {PortableSql.ListConditions(q, Now, p => $"= ANY({p})", p => $"task_key ~ ANY({p})")} " +
        PortableSql.ListOrder(q) + (PortableSql.ListLimitParameter(q) is { } limit ? $" LIMIT {limit}" : "");

    /// <summary>Every statement text this store sends for the task and session operations, by operation name (<see cref="StoreStatements"/>).</summary>
    public IEnumerable<(string Name, string Sql)> Statements()
    {
        yield return ("now", NowQuery);
        yield return ("submit", _submitSql);
        yield return ("acquire.lock_users", _lockUsersSql);
        yield return ("acquire", _acquireSql);
        yield return ("heartbeat", HeartbeatSql);
        yield return ("apply.finish", FinishSql);
        yield return ("apply.retry", RetrySql);
        yield return ("apply.release", ReleaseSql);
        yield return ("update_data", UpdateDataSql);
        yield return ("get", GetSql);
        yield return ("get_by_ids", GetByIdsSql);
        foreach (var (name, q) in StoreStatements.SampleQueries()) yield return ($"list{name}", ListSql(q));
        yield return ("summarize", SummarySql);
        yield return ("due_or_running", DueOrRunningSql);
        yield return ("request_cancel", RequestCancelSql);
        yield return ("request_cancel.key_visible", KeyVisibleSql);
        yield return ("force_finish", ForceFinishSql);
        yield return ("cleanup", CleanupSql);
        yield return ("worker.register", RegisterWorkerSql);
        yield return ("worker.beat", BeatWorkerSql);
        yield return ("worker.remove", RemoveWorkerSql);
        yield return ("worker.list", ListWorkersSql);
        yield return ("worker.running", ListRunningSql);
        yield return ("worker.request_stop", RequestWorkerStopSql);
        yield return ("worker.cleanup", CleanupWorkersSql);
        foreach (var statement in ScheduleStatements()) yield return statement;
        foreach (var statement in PauseStatements()) yield return statement;
        foreach (var statement in FinishedTaskStatements()) yield return statement;
        yield return ("tables", ListQueueTablesSql);
        foreach (var statement in HistoryStatements()) yield return statement;
    }
}
