namespace PerfectQueue.Storage;

/// <summary>
/// The status rules of <see cref="TaskStates"/> as standard SQL predicates over the shared schema's columns,
/// for dialects to put in WHERE clauses. A test checks that both agree on every kind of row.
/// </summary>
public static class TaskStatusSql
{
    /// <param name="status">The status to match.</param>
    /// <param name="nowParameter">The parameter holding the database's now, e.g. "@now".</param>
    public static string Predicate(TaskStatus status, string nowParameter) => status switch
    {
        TaskStatus.Finished => "finished_at IS NOT NULL",
        TaskStatus.CancelRequested => "(finished_at IS NULL AND cancel_requested = 1)",
        TaskStatus.Running => $"(finished_at IS NULL AND cancel_requested = 0 AND lease_token IS NOT NULL AND due_at > {nowParameter})",
        TaskStatus.Scheduled => $"(finished_at IS NULL AND cancel_requested = 0 AND lease_token IS NULL AND due_at > {nowParameter})",
        TaskStatus.Waiting => $"(finished_at IS NULL AND cancel_requested = 0 AND due_at <= {nowParameter})",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };
}
