namespace PerfectQueue.Storage;

/// <summary>
/// The select lists that read rows into <see cref="TaskRow"/> and <see cref="WorkerSessionRow"/>: the same columns
/// and aliases on every dialect, with the dialect's expression for the database clock as "Now".
/// </summary>
internal static class RowProjection
{
    /// <summary>Every column of the task table (schema version 8), aliased to <see cref="TaskRow"/>'s properties.</summary>
    /// <param name="now">An expression or parameter holding the database clock in Unix ms.</param>
    /// <param name="quote">The dialect's identifier quoting, for the aliases.</param>
    /// <param name="prefix">A table alias with its dot ("t.") when the statement names the table so; empty otherwise.</param>
    public static string TaskColumns(string now, Func<string, string> quote, string prefix = "") => Columns(TaskColumnMap, now, quote, prefix);

    /// <summary>Every column of the sessions table (schema version 3), aliased to <see cref="WorkerSessionRow"/>'s properties.</summary>
    public static string WorkerColumns(string now, Func<string, string> quote, string prefix = "") => Columns(WorkerColumnMap, now, quote, prefix);

    /// <summary>The task table's columns in schema order, as the stores name them in INSERT and OUTPUT lists.</summary>
    public static IEnumerable<string> TaskColumnNames => TaskColumnMap.Select(c => c.Column);

    /// <summary>The sessions table's columns in schema order.</summary>
    public static IEnumerable<string> WorkerColumnNames => WorkerColumnMap.Select(c => c.Column);

    private static readonly (string Column, string Property)[] TaskColumnMap =
    [
        ("id", nameof(TaskRow.Id)), ("task_key", nameof(TaskRow.Key)), ("task_type", nameof(TaskRow.Type)), ("user_name", nameof(TaskRow.User)),
        ("data", nameof(TaskRow.Data)), ("max_running", nameof(TaskRow.MaxRunning)), ("created_at", nameof(TaskRow.CreatedAt)),
        ("due_at", nameof(TaskRow.DueAt)), ("lease_token", nameof(TaskRow.LeaseToken)), ("attempts", nameof(TaskRow.Attempts)),
        ("cancel_requested", nameof(TaskRow.CancelRequested)), ("finished_at", nameof(TaskRow.FinishedAt)), ("outcome", nameof(TaskRow.Outcome)),
        ("message", nameof(TaskRow.Message)), ("purge_at", nameof(TaskRow.PurgeAt)), ("timeout_ms", nameof(TaskRow.TimeoutMs)),
        ("leased_by", nameof(TaskRow.LeasedBy)), ("leased_at", nameof(TaskRow.LeasedAt)), ("last_run_ms", nameof(TaskRow.LastRunMs)),
        ("trace_parent", nameof(TaskRow.TraceParent)),
    ];

    private static readonly (string Column, string Property)[] WorkerColumnMap =
    [
        ("id", nameof(WorkerSessionRow.Id)), ("host", nameof(WorkerSessionRow.Host)), ("pid", nameof(WorkerSessionRow.Pid)),
        ("processors", nameof(WorkerSessionRow.Processors)), ("running", nameof(WorkerSessionRow.Running)),
        ("started_at", nameof(WorkerSessionRow.StartedAt)), ("last_beat_at", nameof(WorkerSessionRow.LastBeatAt)),
        ("alive_until", nameof(WorkerSessionRow.AliveUntil)), ("stop_requested", nameof(WorkerSessionRow.StopRequested)),
        ("processor_type", nameof(WorkerSessionRow.ProcessorType)),
    ];

    private static string Columns((string Column, string Property)[] map, string now, Func<string, string> quote, string prefix) =>
        string.Join(", ", map.Select(c => $"{prefix}{c.Column} AS {quote(c.Property)}")) + $", {now} AS {quote("Now")}";
}
