using System.Text;

namespace PerfectQueue.Storage.MySql;

// The statement texts of the MySQL/MariaDB store, one per operation, and their inventory (Statements): the same
// operation names on every backend (StoreStatements), so one operation reads side by side across dialects.
// Statements with lists of values are built for the list's length (MySQL has no array parameters).
internal sealed partial class MySqlQueueStore
{
    private const string NowQuery = "SELECT " + Now;

    private string HeartbeatSql => $"""
        START TRANSACTION;
        UPDATE {_t} AS t JOIN JSON_TABLE(@batch, '$[*]' COLUMNS ({LeaseColumns})) AS w ON t.id = w.wid
        SET t.due_at = {Now} + @alive
        WHERE t.lease_token = w.wtok AND t.finished_at IS NULL AND t.due_at > {Now};
        SELECT t.id, t.cancel_requested FROM {_t} AS t JOIN JSON_TABLE(@batch, '$[*]' COLUMNS ({LeaseColumns})) AS w ON t.id = w.wid
        WHERE t.lease_token = w.wtok AND t.finished_at IS NULL AND t.due_at > {Now};
        COMMIT;
        """;

    private string RequestCancelSql => $"""
        START TRANSACTION;
        UPDATE {_t} SET {PortableSql.CancelSet(Now)}
        WHERE {PortableSql.LiveByKey};
        SELECT CASE
            WHEN ROW_COUNT() > 0 THEN (SELECT CASE WHEN finished_at IS NULL THEN '{nameof(CancelRequestResult.Flagged)}' ELSE '{nameof(CancelRequestResult.CancelledBeforeStart)}' END FROM {_t} WHERE task_key = @key)
            WHEN EXISTS (SELECT 1 FROM {_t} WHERE task_key = @key AND {NotExpired}) THEN '{nameof(CancelRequestResult.AlreadyFinished)}'
            ELSE '{nameof(CancelRequestResult.NotFound)}' END;
        COMMIT;
        """;

    private string RegisterWorkerSql => $"""
        INSERT INTO {_w} (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
        VALUES (@id, @host, @pid, @processors, @running, {Now}, {Now}, {Now} + @alive, 0, @processorType);
        SELECT started_at FROM {_w} WHERE id = @id;
        """;

    private string BeatWorkerSql => $"""
        INSERT INTO {_w} (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
        VALUES (@id, @host, @pid, @processors, @running, COALESCE(@started, {Now}), {Now}, {Now} + @alive, 0, @processorType)
        ON DUPLICATE KEY UPDATE running = @running, last_beat_at = {Now}, alive_until = {Now} + @alive, processor_type = @processorType;
        SELECT stop_requested FROM {_w} WHERE id = @id;
        """;

    private string RequestWorkerStopSql => $"""
        START TRANSACTION;
        UPDATE {_w} SET stop_requested = 1 WHERE id = @id;
        SELECT {_workerColumns} FROM {_w} WHERE id = @id;
        COMMIT;
        """;

    private string FreeKeysSql => $"""
        DELETE FROM {_t} WHERE task_key IN {KeyList} AND finished_at IS NOT NULL AND purge_at <= {Now};
        SELECT task_key FROM {_t} WHERE task_key IN {KeyList};
        """;

    private string InsertSql => $"""
        INSERT INTO {_t} (task_key, task_type, user_name, data, max_running, created_at, due_at, attempts, cancel_requested, timeout_ms, trace_parent)
        SELECT s.k, s.ty, s.u, FROM_BASE64(s.d), s.mr, {Now}, COALESCE(s.ra, {Now} + COALESCE(s.dl, 0)), 0, 0, s.tm, s.tp
        FROM JSON_TABLE(@batch, '$[*]' COLUMNS (
            n FOR ORDINALITY,
            k LONGTEXT CHARACTER SET utf8mb4 PATH '$.key', ty LONGTEXT CHARACTER SET utf8mb4 PATH '$.type',
            u LONGTEXT CHARACTER SET utf8mb4 PATH '$.user', d LONGTEXT CHARACTER SET ascii PATH '$.data',
            mr INT PATH '$.maxRunning', ra BIGINT PATH '$.runAt', dl BIGINT PATH '$.delay', tm BIGINT PATH '$.timeout',
            tp VARCHAR(64) CHARACTER SET ascii PATH '$.trace')) AS s
        ORDER BY s.n
        """;

    private const string KeyList = "(SELECT k.v COLLATE " + Exact + " FROM JSON_TABLE(@keys, '$[*]' COLUMNS (v LONGTEXT CHARACTER SET utf8mb4 PATH '$')) AS k)";

    private string GetSql => $"SELECT {_columns} FROM {_t} WHERE task_key = @key AND {NotExpired}";
    private string GetByIdsSql => $"SELECT {_columns} FROM {_t} WHERE id IN @ids";
    private string SummarySql => TaskStateSql.SummarySql(_t, "@now", PortableSql.NotExpired("@now"));
    private string DueOrRunningSql => PauseSql.DueOrRunningSql(_t, _p, Now);
    private string ForceFinishSql => PortableSql.ForceFinish(_t, Now);
    private string UpdateDataSql => PortableSql.UpdateData(_t);
    private string CleanupSql => $"DELETE FROM {_t} WHERE finished_at IS NOT NULL AND purge_at <= {Now} ORDER BY purge_at LIMIT @limit";
    private string RemoveWorkerSql => PortableSql.RemoveWorker(_w);
    private string ListWorkersSql => $"SELECT {_workerColumns} FROM {_w} ORDER BY started_at, id";
    private string ListRunningSql => PortableSql.Running(_t, Now, Quote);
    private string CleanupWorkersSql => PortableSql.CleanupWorkers(_w, Now);

    // Dapper expands each list parameter into (@keys1, @keys2, ...). Statuses of live tasks only: the rows are found
    // through <table>_due (finished_at IS NULL), not by walking the primary key in id order through every finished
    // row, which the optimizer prefers for ORDER BY id LIMIT.
    private string ListSql(TaskQuery q)
    {
        var liveOnly = q.Statuses is { Count: > 0 } && !q.Statuses.Contains(TaskState.Finished);
        // Key patterns travel as a JSON array of anchored regular expressions, compared under the exact collation
        // (case-sensitive; LIKE has no [a-z], and its default escape character is the backslash).
        var keyMatches = (string p) => $"EXISTS (SELECT 1 FROM JSON_TABLE({p}, '$[*]' COLUMNS (v LONGTEXT CHARACTER SET utf8mb4 PATH '$')) AS kp WHERE task_key REGEXP kp.v COLLATE {Exact})";
        var limit = PortableSql.ListLimitParameter(q);
        return $"SELECT {_columns} FROM {_t}{(liveOnly && q.Newest is null ? " IGNORE INDEX FOR ORDER BY (PRIMARY)" : "")} WHERE {PortableSql.ListConditions(q, Now, p => $"IN {p}", keyMatches)}" +
            (liveOnly ? " AND finished_at IS NULL" : "") + " " + PortableSql.ListOrder(q) + (limit is null ? "" : $" LIMIT {limit}");
    }

    // Acquire's first look: users below their limit, by the running count as it is now (no locks).
    private string FirstRankingSql => RankingSql(
        "(c.max_running IS NULL OR c.user_name IS NULL OR c.max_running > COALESCE((SELECT r.rc FROM running AS r WHERE r.ru = c.user_name), 0))", "");

    // The lock rows of the limited users among the best ranked (@l0...): made on first need, then locked.
    private string LockUsersSql(int users) => $"""
        INSERT INTO {_u} (user_name)
        SELECT v.u FROM ({string.Join(" UNION ALL ", Enumerable.Range(0, users).Select(i => $"SELECT @l{i} COLLATE {Exact} AS u"))}) AS v
        WHERE NOT EXISTS (SELECT 1 FROM {_u} AS e WHERE e.user_name = v.u)
        ON DUPLICATE KEY UPDATE user_name = {_u}.user_name;
        START TRANSACTION;
        SELECT user_name FROM {_u} WHERE user_name IN {InList("l", users)} FOR UPDATE SKIP LOCKED;
        """;

    // The ranked rows (@i0...) still due, locked by primary key; the transaction begins here when no user was locked.
    private string LockRowsSql(int rows, bool begun) => (begun ? "" : "START TRANSACTION;\n") +
        $"SELECT id FROM {_t} WHERE id IN {InList("i", rows)} AND finished_at IS NULL AND due_at <= {Now} FOR UPDATE SKIP LOCKED";

    // The held rows (@i0... in rank order) leased, read back, committed; each token is @token + its rank.
    private string LeaseSql(int rows)
    {
        var list = InList("i", rows);
        return $"""
            UPDATE {_t} SET lease_token = @token + FIELD(id, {list[1..^1]}), due_at = {Now} + @alive, attempts = attempts + 1, {PortableSql.LeaseStart(Now)}
            WHERE id IN {list};
            SELECT {_columns} FROM {_t} WHERE id IN {list};
            COMMIT;
            """;
    }

    private string ApplySql(bool finishes, bool retries, bool releases, bool attempts = false, bool notices = false)
    {
        const string fence = "WHERE t.lease_token = w.wtok AND t.finished_at IS NULL";
        // One transaction: first the rows whose lease is current are locked (and returned). A fence that holds on
        // a locked row holds until commit, and one that fails never holds again (a token is never given twice), so
        // the updates after it change exactly the rows returned.
        var sql = new StringBuilder($"""
            START TRANSACTION;
            SELECT t.id FROM {_t} AS t JOIN JSON_TABLE(@all, '$[*]' COLUMNS ({LeaseColumns})) AS w ON t.id = w.wid
            {fence} FOR UPDATE;

            """);
        // Attempt rows and notices of the writes whose fence holds, before the updates clear it (docs/history.md).
        if (attempts) sql.Append(InsertAttemptsSql).Append(";\n");
        if (notices) sql.Append(InsertNoticesSql).Append(";\n");
        if (finishes)
            sql.Append($"""
                UPDATE {_t} AS t JOIN JSON_TABLE(@finishes, '$[*]' COLUMNS ({LeaseColumns}, o VARCHAR(32) PATH '$[2]', m LONGTEXT CHARACTER SET utf8mb4 PATH '$[3]', r BIGINT PATH '$[4]', u INT PATH '$[5]')) AS w ON t.id = w.wid
                SET t.finished_at = {Now}, t.outcome = w.o, t.message = w.m, t.purge_at = {Now} + w.r, t.lease_token = NULL, t.due_at = NULL,
                    t.attempts = GREATEST(t.attempts - w.u, 0), {PortableSql.RunEnd(Now, "t.", "w.u")}
                {fence};

                """);
        if (retries)
            sql.Append($"""
                UPDATE {_t} AS t JOIN JSON_TABLE(@retries, '$[*]' COLUMNS ({LeaseColumns}, d BIGINT PATH '$[2]', m LONGTEXT CHARACTER SET utf8mb4 PATH '$[3]')) AS w ON t.id = w.wid
                SET t.due_at = {Now} + w.d, t.lease_token = NULL, t.message = COALESCE(w.m, t.message), {PortableSql.RunEnd(Now, "t.")}
                {fence};

                """);
        if (releases)
            sql.Append($"""
                UPDATE {_t} AS t JOIN JSON_TABLE(@releases, '$[*]' COLUMNS ({LeaseColumns})) AS w ON t.id = w.wid
                SET t.due_at = {Now}, t.lease_token = NULL, t.attempts = GREATEST(t.attempts - 1, 0)
                {fence};

                """);
        sql.Append("COMMIT;");
        return sql.ToString();
    }

    /// <summary>Every statement text this store sends for the task and session operations, by operation name (<see cref="StoreStatements"/>).</summary>
    public IEnumerable<(string Name, string Sql)> Statements()
    {
        yield return ("now", NowQuery);
        yield return ("submit.free_keys", FreeKeysSql);
        yield return ("submit", InsertSql);
        yield return ("acquire", FirstRankingSql);
        yield return ("acquire.lock_users", LockUsersSql(2));
        yield return ("acquire.lock_rows", LockRowsSql(3, begun: false));
        yield return ("acquire.lease", LeaseSql(3));
        yield return ("heartbeat", HeartbeatSql);
        yield return ("apply", ApplySql(true, true, true));
        yield return ("update_data", UpdateDataSql);
        yield return ("get", GetSql);
        yield return ("get_by_ids", GetByIdsSql);
        foreach (var (name, q) in StoreStatements.SampleQueries()) yield return ($"list{name}", ListSql(q));
        yield return ("summarize", SummarySql);
        yield return ("due_or_running", DueOrRunningSql);
        yield return ("request_cancel", RequestCancelSql);
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
