namespace PerfectQueue.Storage;

/// <summary>
/// Statements and clauses that are the same standard SQL on every dialect, over the shared schema's columns (as
/// <see cref="TaskStateSql"/> is for the status rules). Dialects give their clock expression or parameter and,
/// for lists of values, their membership syntax; they add only what differs (batching, RETURNING or OUTPUT).
/// </summary>
internal static class PortableSql
{
    /// <summary>A finished row past its retention is gone for readers, whether or not cleanup has deleted it yet.</summary>
    public static string NotExpired(string now) => $"(purge_at IS NULL OR purge_at > {now})";

    /// <summary>
    /// The SET list of a cancel request by key (<c>WHERE task_key = @key AND finished_at IS NULL</c>, parameters
    /// @message and @retention). A task nobody holds, or whose lease expired, is finished as Cancelled at once, so
    /// it is never handed out; a held one is only flagged, for its holder to see at its next heartbeat. Afterwards
    /// finished_at tells which of the two happened.
    /// </summary>
    /// <param name="now">The database clock's expression or parameter.</param>
    /// <param name="cancelled">The outcome literal in the dialect's string syntax ('Cancelled' or N'Cancelled').</param>
    public static string CancelSet(string now, string cancelled = "'Cancelled'")
    {
        var idle = $"(lease_token IS NULL OR due_at <= {now})";
        return $"""
            cancel_requested = 1,
                finished_at = CASE WHEN {idle} THEN {now} ELSE NULL END,
                outcome = CASE WHEN {idle} THEN {cancelled} ELSE NULL END,
                message = CASE WHEN {idle} THEN @message ELSE message END,
                purge_at = CASE WHEN {idle} THEN {now} + @retention ELSE NULL END,
                lease_token = CASE WHEN {idle} THEN NULL ELSE lease_token END,
                due_at = CASE WHEN {idle} THEN NULL ELSE due_at END
            """;
    }

    /// <summary>
    /// The SET items an acquire adds for each leased row (parameter @session, null for a holder that is no worker):
    /// who leased it and when, so a listing shows a running task's worker, host and start (schema version 7).
    /// </summary>
    /// <param name="now">The database clock's expression or parameter.</param>
    public static string LeaseStart(string now) => $"leased_by = @session, leased_at = {now}";

    /// <summary>
    /// The SET item of a finish or retry that ends an attempt: how long it ran, from its lease to now. A finish at
    /// acquire that was no attempt (<paramref name="uncounted"/> is 1) keeps the last attempt's time.
    /// </summary>
    /// <param name="now">The database clock's expression or parameter.</param>
    /// <param name="prefix">The table alias with its dot ("t.") where the statement's SET needs it (MySQL's joined UPDATE); empty otherwise.</param>
    /// <param name="uncounted">The expression that is 1 when the write ends no attempt (null: every write ends one).</param>
    public static string RunEnd(string now, string prefix = "", string? uncounted = null) => uncounted is null
        ? $"{prefix}last_run_ms = {now} - {prefix}leased_at"
        : $"{prefix}last_run_ms = CASE WHEN {uncounted} = 1 THEN {prefix}last_run_ms ELSE {now} - {prefix}leased_at END";

    /// <summary>
    /// The running tasks with the worker session that holds each (leased, lease not expired), oldest lease first.
    /// The leased rows are few (the running ones and expired leases), and PostgreSQL and SQLite read them from the
    /// partial index &lt;table&gt;_leased.
    /// </summary>
    public static string Running(string quotedTable, string now, Func<string, string> quote) =>
        $"SELECT task_key AS {quote(nameof(RunningRow.Key))}, leased_by AS {quote(nameof(RunningRow.Session))} FROM {quotedTable} " +
        $"WHERE finished_at IS NULL AND lease_token IS NOT NULL AND due_at > {now} AND leased_by IS NOT NULL ORDER BY leased_at, id";

    /// <summary>The live task a cancel request or a force finish acts on.</summary>
    public const string LiveByKey = "task_key = @key AND finished_at IS NULL";

    /// <summary>Force finish of a live task by key, whatever its state (parameters @key, @outcome, @message, @retention).</summary>
    public static string ForceFinish(string quotedTable, string now) => $"""
        UPDATE {quotedTable} SET finished_at = {now}, outcome = @outcome, message = @message, purge_at = {now} + @retention,
            lease_token = NULL, due_at = NULL
        WHERE {LiveByKey}
        """;

    /// <summary>Replaces a held task's data when the lease is current (parameters @data, @id, @token).</summary>
    public static string UpdateData(string quotedTable) =>
        $"UPDATE {quotedTable} SET data = @data WHERE id = @id AND lease_token = @token AND finished_at IS NULL";

    /// <summary>
    /// The WHERE conditions of a listing: visible rows, then each filter the query sets, ANDed. Lists of values are
    /// the parameters @keys, @types and @users, written through <paramref name="memberOf"/> (for example
    /// <c>p =&gt; $"= ANY({p})"</c>, or <c>p =&gt; $"IN {p}"</c> for a driver that expands lists).
    /// </summary>
    /// <remarks>
    /// keyMatches: the dialect's test of task_key against the patterns in the parameter @keyPatterns
    /// (<see cref="KeyPatternSql"/>), needed only when the query has key patterns. Exact keys and patterns are
    /// ORed: a key matches either.
    /// </remarks>
    public static string ListConditions(TaskQuery q, string now, Func<string, string> memberOf, Func<string, string>? keyMatches = null)
    {
        var where = new List<string> { NotExpired(now) };
        if (q.KeyPatterns is { Count: > 0 })
        {
            var byPattern = (keyMatches ?? throw new ArgumentException("This store cannot match key patterns.", nameof(keyMatches)))("@keyPatterns");
            where.Add(q.Keys is { Count: > 0 } ? $"(task_key {memberOf("@keys")} OR {byPattern})" : byPattern);
        }
        else if (q.Keys is { Count: > 0 }) where.Add("task_key " + memberOf("@keys"));
        if (q.Outcomes is { Count: > 0 })
            where.Add($"finished_at IS NOT NULL AND outcome IN ({string.Join(", ", q.Outcomes.Distinct().Order().Select(o => $"'{o}'"))})");
        if (q.Types is { Count: > 0 }) where.Add("task_type " + memberOf("@types"));
        if (q.Users is { Count: > 0 }) where.Add("user_name " + memberOf("@users"));
        if (q.Statuses is { Count: > 0 })
            where.Add("(" + string.Join(" OR ", q.Statuses.Distinct().Select(s => TaskStateSql.Predicate(s, now))) + ")");
        if (q.Page is { BeforeId: not null }) where.Add("id < @beforeId");
        return string.Join(" AND ", where);
    }

    /// <summary>
    /// The ORDER BY of a listing: creation order (id), or with <see cref="TaskQuery.Newest"/> the newest first (a key
    /// resubmitted after its retention may keep its row, and so its id, with a new created_at).
    /// </summary>
    /// A page (<see cref="TaskQuery.Page"/>) walks the primary key down from its cursor.
    public static string ListOrder(TaskQuery q) =>
        q.Page is not null ? "ORDER BY id DESC" : q.Newest is null ? "ORDER BY id" : "ORDER BY created_at DESC, id DESC";

    /// <summary>How many rows a listing returns at most: @pageSize, @first or @newest (null: all).</summary>
    public static string? ListLimitParameter(TaskQuery q) =>
        q.Page is not null ? "@pageSize" : q.Newest is not null ? "@newest" : q.First is not null ? "@first" : null;

    /// <summary>The visible finished task a restart or a removal acts on (parameter @key).</summary>
    public static string FinishedByKey(string now) => $"task_key = @key AND finished_at IS NOT NULL AND {NotExpired(now)}";

    /// <summary>Whether a visible task has the key (parameter @key): after a restart or removal found no finished one, Live or NotFound.</summary>
    public static string VisibleByKey(string now) => $"task_key = @key AND {NotExpired(now)}";

    /// <summary>
    /// The SET list of a restart (parameters @runAt and @delay, either may be null): the row becomes a new first
    /// attempt, due then, with nothing of its finish left. Key, type, user, data, limits and created_at stay.
    /// No SET expression reads a column the list assigns, so MySQL's left-to-right assignment gives the same row.
    /// </summary>
    /// <param name="now">The database clock's expression or parameter.</param>
    /// <param name="runAt">@runAt as the dialect needs it typed (PostgreSQL: @runAt::bigint).</param>
    /// <param name="delay">@delay, likewise.</param>
    public static string RestartSet(string now, string runAt = "@runAt", string delay = "@delay") => $"""
        due_at = COALESCE({runAt}, {now} + COALESCE({delay}, 0)), attempts = 0, lease_token = NULL, cancel_requested = 0,
            finished_at = NULL, outcome = NULL, message = NULL, purge_at = NULL
        """;

    /// <summary>A restart of the visible finished task with the key (parameters @key, @runAt, @delay; see <see cref="RestartSet"/>).</summary>
    public static string Restart(string quotedTable, string now, string runAt = "@runAt", string delay = "@delay") =>
        $"UPDATE {quotedTable} SET {RestartSet(now, runAt, delay)} WHERE {FinishedByKey(now)}";

    /// <summary>
    /// The removal of the visible finished task with the key (parameter @key).
    /// Every store deletes the row's attempts history (<c>&lt;table&gt;_attempts</c>) in the same statement or transaction.
    /// </summary>
    public static string RemoveFinished(string quotedTable, string now) => $"DELETE FROM {quotedTable} WHERE {FinishedByKey(now)}";

    /// <summary>Sessions dead for at least @deadFor milliseconds.</summary>
    public static string CleanupWorkers(string quotedWorkers, string now) => $"DELETE FROM {quotedWorkers} WHERE alive_until <= {now} - @deadFor";

    /// <summary>A clean exit's removal of its session row.</summary>
    public static string RemoveWorker(string quotedWorkers) => $"DELETE FROM {quotedWorkers} WHERE id = @id";
}

/// <summary>
/// The rule every store keeps for the sessions table: a queue whose sessions table does not exist yet reads as having
/// no sessions (and a stop request finds none), but a missing queue table is still an error.
/// </summary>
internal static class WorkersTableGuard
{
    /// <param name="run">The statement on the sessions table.</param>
    /// <param name="isMissingTable">Whether a failure says a table does not exist.</param>
    /// <param name="queueTableExists">Asked after such a failure: whether the queue table itself exists.</param>
    /// <param name="notInitialized">The error when it does not.</param>
    /// <param name="whenMissing">What the statement reads as when only the sessions table is missing.</param>
    public static async Task<T> RunAsync<T>(Func<Task<T>> run, Func<Exception, bool> isMissingTable, Func<Task<bool>> queueTableExists,
        Func<Exception, Exception> notInitialized, T whenMissing)
    {
        try
        {
            return await run().ConfigureAwait(false);
        }
        catch (Exception e) when (isMissingTable(e))
        {
            if (!await queueTableExists().ConfigureAwait(false)) throw notInitialized(e);
            return whenMissing;
        }
    }
}
