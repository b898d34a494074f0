namespace PerfectQueue.Storage;

/// <summary>
/// The pauses of a queue (Suspend-PQQueue, docs/pause.md) as standard SQL over <c>&lt;table&gt;_pauses</c>: one row
/// per pause, keyed by (task_type, user_name), where '' stands for "any" (no task has an empty type, and a task
/// without a user stores NULL, so '' never names a real one, and the key needs no nullable column).
/// </summary>
internal static class PauseSql
{
    /// <summary>What a pause stores for "any type" or "any user".</summary>
    public const string Any = "";

    /// <summary>The columns of a pause row as <see cref="PauseRow"/> reads them (table alias p).</summary>
    public const string Columns = """p.task_type AS "Type", p.user_name AS "User", p.paused_at AS "PausedAt", p.reason AS "Reason", p.paused_by AS "PausedBy" """;

    /// <summary>
    /// True for a task row (alias <paramref name="task"/>) that some pause holds back. The first part does not
    /// depend on the row: a whole-queue pause is seen once per statement, so the candidate scan of acquire stops
    /// at once instead of walking the whole backlog.
    /// </summary>
    public static string Paused(string quotedPauses, string task) => $"({QueuePaused(quotedPauses)} OR {MatchingPause(quotedPauses, task)})";

    /// <summary>The negation of <see cref="Paused"/>, as two NOT EXISTS: the predicate every acquire adds to its candidates.</summary>
    /// <param name="quotedPauses">The pauses table, quoted.</param>
    /// <param name="task">The alias (or quoted name) of the task table in the candidate query.</param>
    /// <param name="subqueryTail">Appended to the correlated subquery: PostgreSQL's " OFFSET 0" (see its store).</param>
    public static string NotPaused(string quotedPauses, string task, string subqueryTail = "") =>
        $"NOT {QueuePaused(quotedPauses)} AND NOT {MatchingPause(quotedPauses, task, subqueryTail)}";

    private static string QueuePaused(string quotedPauses) => $"EXISTS (SELECT 1 FROM {quotedPauses} AS pq WHERE pq.task_type = '' AND pq.user_name = '')";

    private static string MatchingPause(string quotedPauses, string task, string subqueryTail = "") =>
        $"EXISTS (SELECT 1 FROM {quotedPauses} AS pz WHERE (pz.task_type = '' OR pz.task_type = {task}.task_type) AND (pz.user_name = '' OR pz.user_name = {task}.user_name){subqueryTail})";

    /// <summary>
    /// True when every task of the user (an expression) is paused (a pause of the user for any type, or of the
    /// whole queue): acquire's per-user seeks skip such a user instead of walking its backlog.
    /// </summary>
    public static string UserPaused(string quotedPauses, string user) =>
        $"EXISTS (SELECT 1 FROM {quotedPauses} AS pu WHERE pu.task_type = '' AND (pu.user_name = '' OR pu.user_name = {user}))";

    /// <summary>
    /// 1 when any live task is due and not paused, or running (leased, expired or not), else 0: what UntilEmpty
    /// waits for. Paused due tasks do not count, so a worker draining during maintenance exits (docs/pause.md).
    /// </summary>
    public static string DueOrRunningSql(string quotedTable, string quotedPauses, string now) => $"""
        SELECT CASE WHEN EXISTS (SELECT 1 FROM {quotedTable} AS t
            WHERE t.finished_at IS NULL AND (t.lease_token IS NOT NULL OR (t.due_at <= {now} AND {NotPaused(quotedPauses, "t")}))) THEN 1 ELSE 0 END
        """;

    /// <summary>The waiting tasks (as Measure-PQQueue counts them) of task alias x that pause alias p holds back.</summary>
    private static string WaitingOf(string quotedTable, string now) =>
        $"SELECT COUNT(*) FROM {quotedTable} AS x WHERE x.finished_at IS NULL AND x.cancel_requested = 0 AND x.due_at <= {now} " +
        "AND (p.task_type = '' OR x.task_type = p.task_type) AND (p.user_name = '' OR x.user_name = p.user_name)";

    /// <summary>Every pause, oldest first; with <paramref name="counts"/>, each with the waiting tasks it holds back (column "Waiting").</summary>
    public static string ListSql(string quotedTable, string quotedPauses, string now, bool counts) =>
        $"SELECT {Columns}, {(counts ? $"({WaitingOf(quotedTable, now)})" : "0")} AS \"Waiting\" FROM {quotedPauses} AS p ORDER BY p.paused_at, p.task_type, p.user_name";

    /// <summary>How many waiting tasks some pause holds back (each counted once, however many pauses match it).</summary>
    public static string CountPausedSql(string quotedTable, string quotedPauses, string now) =>
        $"SELECT COUNT(*) FROM {quotedTable} AS t WHERE t.finished_at IS NULL AND t.cancel_requested = 0 AND t.due_at <= {now} AND {Paused(quotedPauses, "t")}";

    /// <summary>One pause by its scope (parameters @type and @user, '' for any).</summary>
    public static string ByScope(string quotedPauses) => $"SELECT {Columns}, 0 AS \"Waiting\" FROM {quotedPauses} AS p WHERE p.task_type = @type AND p.user_name = @user";

    /// <summary>Removes one pause by its scope.</summary>
    public static string Remove(string quotedPauses) => $"DELETE FROM {quotedPauses} WHERE task_type = @type AND user_name = @user";
}
