namespace PerfectQueue.Storage;

/// <summary>
/// The status rules of <see cref="TaskStates"/> as standard SQL predicates over the shared schema's columns,
/// for dialects to put in WHERE clauses. A test checks that both agree on every kind of row.
/// </summary>
public static class TaskStateSql
{
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
