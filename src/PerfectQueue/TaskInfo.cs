using System.Text.Json.Nodes;

namespace PerfectQueue;

/// <summary>A snapshot of a task as stored, with its status derived on the database clock when it was read.</summary>
public sealed class TaskInfo
{
    public required string Key { get; init; }
    public required string Type { get; init; }
    public string? User { get; init; }
    public required TaskState Status { get; init; }
    /// <summary>Set when <see cref="Status"/> is Finished.</summary>
    public TaskOutcome? Outcome { get; init; }
    /// <summary>The finish message, or the last error of a retried task.</summary>
    public string? Message { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    /// <summary>
    /// The original's 'timeout' column: when a waiting task becomes due, when a running task's lease
    /// expires, or when a finished task will be deleted.
    /// </summary>
    public DateTimeOffset? Timeout { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public required JsonObject Data { get; init; }
    /// <summary>
    /// Set when the stored data cannot be read (a row from before submit checked data, or written by hand):
    /// why, and <see cref="Data"/> is then empty. Such a task can still be finished, cancelled or force-finished.
    /// </summary>
    public string? DataError { get; init; }
    /// <summary>How many times the task was handed to a worker (released attempts do not count).</summary>
    public int Attempts { get; init; }
    public int? MaxRunning { get; init; }
    public bool CancelRequested { get; init; }
    /// <summary>True when the stored data is gzip-compressed.</summary>
    public bool Compressed { get; init; }
    /// <summary>
    /// How long one attempt may run before the worker stops it (Submit-PQTask -Timeout, <see cref="SubmitOptions.Timeout"/>);
    /// null: no limit of the task's own. Not <see cref="Timeout"/>, which is the original's due-time column.
    /// </summary>
    public TimeSpan? ExecutionTimeout { get; init; }
    /// <summary>
    /// While a worker holds the task (Running, or CancelRequested and still held): its session id, as Get-PQWorker
    /// shows it. Null otherwise, and for a holder that is no worker (Receive-PQTask, Queue.Poll).
    /// </summary>
    public string? Worker { get; init; }
    /// <summary>The host of <see cref="Worker"/>, from its session row (null when the session row is gone).</summary>
    public string? Host { get; init; }
    /// <summary>While the task is held: when the running attempt started (its lease was taken), by the database clock.</summary>
    public DateTimeOffset? StartedAt { get; init; }
    /// <summary>While the task is held: how long the running attempt has run, as of the read (database clock).</summary>
    public TimeSpan? RunningFor { get; init; }
    /// <summary>
    /// How long the last ended attempt ran (from its start to its finish or retry); null before one ended. A released
    /// attempt (a worker's stop) does not count. Each attempt's own time: Get-PQTaskHistory.
    /// </summary>
    public TimeSpan? LastDuration { get; init; }

    public override string ToString() => $"{Key} ({Type}) {Status}{(Outcome is { } o ? "/" + o : "")}";
}

/// <summary>Options for <see cref="Queue.Submit(string, string, object?, SubmitOptions?)"/>.</summary>
public sealed class SubmitOptions
{
    /// <summary>The user (resource) the task belongs to; max_running applies per user.</summary>
    public string? User { get; init; }
    /// <summary>Run no earlier than this time. Exclusive with <see cref="Delay"/>.</summary>
    public DateTimeOffset? RunAt { get; init; }
    /// <summary>Run no earlier than this long after the database's now. Exclusive with <see cref="RunAt"/>.</summary>
    public TimeSpan? Delay { get; init; }
    /// <summary>At most this many tasks of <see cref="User"/> run at once (counted from this task's point of view).</summary>
    public int? MaxRunning { get; init; }
    /// <summary>Null: the queue's configured compression.</summary>
    public DataCompression? Compression { get; init; }
    /// <summary>
    /// How long one attempt may run: a worker stops the handler after this long (or after its own or its route's
    /// timeout, whichever is shortest) and retries the task. More than zero, at most <see cref="MaxTimeout"/>.
    /// Null: no limit of the task's own. Stored with the task; read back as <see cref="TaskInfo.ExecutionTimeout"/>.
    /// </summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>The longest <see cref="Timeout"/> a task may have.</summary>
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromDays(365);
}

/// <summary>One task of a batch submit.</summary>
public sealed record TaskSubmission(string Key, string Type, object? Data = null, SubmitOptions? Options = null);

/// <summary>Filters for <see cref="Queue.List(TaskFilter?)"/>; every set filter must match.</summary>
public sealed class TaskFilter
{
    public IReadOnlyCollection<string>? Keys { get; init; }
    public IReadOnlyCollection<TaskState>? Statuses { get; init; }
    public IReadOnlyCollection<string>? Types { get; init; }
    public IReadOnlyCollection<string>? Users { get; init; }
    /// <summary>At most this many tasks, oldest first. Null: all.</summary>
    public int? First { get; init; }
    /// <summary>Only finished tasks with one of these outcomes.</summary>
    public IReadOnlyCollection<TaskOutcome>? Outcomes { get; init; }
    /// <summary>
    /// Keys matching one of these wildcards, in PowerShell's syntax: * any run, ? one character, [a-z] / [abc] one of a set, a backtick
    /// before a character to take it literally. Case-sensitive, as keys compare.
    /// With <see cref="Keys"/> too, a task matches when its key is one of the keys or matches one of the patterns.
    /// </summary>
    public IReadOnlyCollection<string>? KeyPatterns { get; init; }
    /// <summary>The this many most recently created tasks, newest first. Not with <see cref="First"/>.</summary>
    public int? Newest { get; init; }
}
