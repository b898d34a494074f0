namespace PerfectQueue.Storage;

/// <summary>
/// The status rules of <see cref="TaskStates"/> as standard SQL predicates over the shared schema's columns,
/// for dialects to put in WHERE clauses. A test checks that both agree on every kind of row.
/// </summary>
internal static class TaskStateSql
{
    /// <summary>The status of each row as text (the <see cref="TaskState"/> names), for grouping.</summary>
    public static string CaseExpression(string nowParameter) => $"""
        CASE WHEN finished_at IS NOT NULL THEN 'Finished'
             WHEN cancel_requested = 1 THEN 'CancelRequested'
             WHEN due_at > {nowParameter} AND lease_token IS NULL THEN 'Scheduled'
             WHEN due_at > {nowParameter} THEN 'Running'
             ELSE 'Waiting' END
        """;

    /// <summary>
    /// Counts per status, type and user, and the oldest due time of waiting tasks, over the rows a reader sees
    /// (<paramref name="visible"/>). Portable SQL: the grouping runs over a derived table, as SQL Server needs.
    /// </summary>
    public static string SummarySql(string quotedTable, string nowParameter, string visible) => $"""
        SELECT s AS "State", task_type AS "Type", user_name AS "User", COUNT(*) AS "Count",
               MIN(CASE WHEN s = 'Waiting' THEN due_at END) AS "OldestDueAt"
        FROM (SELECT {CaseExpression(nowParameter)} AS s, task_type, user_name, due_at FROM {quotedTable} WHERE {visible}) AS x
        GROUP BY s, task_type, user_name
        """;

    /// <summary>
    /// 1 when any live task is due or running (leased, expired or not), else 0: every live row but scheduled
    /// ones. Portable SQL (no boolean select, as SQL Server needs).
    /// </summary>
    public static string DueOrRunningSql(string quotedTable, string nowParameter) => $"""
        SELECT CASE WHEN EXISTS (SELECT 1 FROM {quotedTable}
            WHERE finished_at IS NULL AND (due_at <= {nowParameter} OR lease_token IS NOT NULL)) THEN 1 ELSE 0 END
        """;

    /// <param name="status">The status to match.</param>
    /// <param name="nowParameter">The parameter holding the database's now, e.g. "@now".</param>
    public static string Predicate(TaskState status, string nowParameter) => status switch
    {
        TaskState.Finished => "finished_at IS NOT NULL",
        TaskState.CancelRequested => "(finished_at IS NULL AND cancel_requested = 1)",
        TaskState.Running => $"(finished_at IS NULL AND cancel_requested = 0 AND lease_token IS NOT NULL AND due_at > {nowParameter})",
        TaskState.Scheduled => $"(finished_at IS NULL AND cancel_requested = 0 AND lease_token IS NULL AND due_at > {nowParameter})",
        TaskState.Waiting => $"(finished_at IS NULL AND cancel_requested = 0 AND due_at <= {nowParameter})",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };
}
