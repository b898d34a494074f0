namespace PerfectQueue.Storage;

/// <summary>
/// One attempt's row of <c>&lt;table&gt;_attempts</c> (schema version 6), written by <see cref="IQueueStore.ApplyAsync"/> in
/// the transaction of the fenced write that ended the attempt. <see cref="TaskCreatedAt"/> ties it to one life of the
/// task's row: a key resubmitted after its retention may reuse the row (and its id), and its history starts empty.
/// </summary>
internal sealed record AttemptRecord(long TaskCreatedAt, string TaskKey, int Attempt, long StartedAt, string Host, string? Session,
    string Processor, string Outcome, string? Message, string? Output);

/// <summary>An attempt row as stored (times in Unix ms from the database clock).</summary>
internal sealed class AttemptRow
{
    public long Id { get; set; }
    public long TaskId { get; set; }
    public long TaskCreatedAt { get; set; }
    public string TaskKey { get; set; } = "";
    public int Attempt { get; set; }
    public long StartedAt { get; set; }
    public long EndedAt { get; set; }
    public string Host { get; set; } = "";
    public string? Session { get; set; }
    public string Processor { get; set; } = "";
    public string Outcome { get; set; } = "";
    public string? Message { get; set; }
    public string? Output { get; set; }
}

/// <summary>The attempt history operations every relational store implements (its <c>&lt;X&gt;QueueStore.History.cs</c>).</summary>
internal interface IHistoryStore
{
    /// <summary>The attempts of one life of a task row (its id and created_at), in the order they were written.</summary>
    Task<IReadOnlyList<AttemptRow>> ListAttemptsAsync(long taskId, long taskCreatedAt, CancellationToken ct);

    /// <summary>Deletes every attempt of these task ids (a removed task's history); returns how many rows went.</summary>
    Task<int> DeleteAttemptsAsync(IReadOnlyCollection<long> taskIds, CancellationToken ct);
}

/// <summary>
/// The attempt statements, the same standard SQL on every dialect (as <see cref="ScheduleSql"/> is for schedules).
/// The insert's parameters come from <see cref="InsertArgs"/>; the clock is the dialect's.
/// </summary>
internal static class HistorySql
{
    /// <summary>The suffix of the attempts table: &lt;table&gt;_attempts.</summary>
    public const string TableSuffix = "_attempts";

    /// <summary>The closed set of stored outcomes (Lost is never stored: Get-PQTaskHistory shows a missing attempt so).</summary>
    public static readonly IReadOnlyList<string> Outcomes = ["Succeeded", "Failed", "Cancelled", "Retried", "TimedOut", "Released"];

    public static string Columns(Func<string, string> quote) => string.Join(", ",
        $"id AS {quote("Id")}", $"task_id AS {quote("TaskId")}", $"task_created_at AS {quote("TaskCreatedAt")}", $"task_key AS {quote("TaskKey")}",
        $"attempt AS {quote("Attempt")}", $"started_at AS {quote("StartedAt")}", $"ended_at AS {quote("EndedAt")}", $"host AS {quote("Host")}",
        $"session_id AS {quote("Session")}", $"processor AS {quote("Processor")}", $"outcome AS {quote("Outcome")}",
        $"message AS {quote("Message")}", $"output AS {quote("Output")}");

    public static string Insert(string quotedAttempts, string now) => $"""
        INSERT INTO {quotedAttempts} (task_id, task_created_at, task_key, attempt, started_at, ended_at, host, session_id, processor, outcome, message, output)
        VALUES (@taskId, @createdAt, @key, @attempt, @startedAt, {now}, @host, @session, @processor, @outcome, @message, @output)
        """;

    public static string List(string quotedAttempts, string columns) =>
        $"SELECT {columns} FROM {quotedAttempts} WHERE task_id = @taskId AND task_created_at = @createdAt ORDER BY id";

    /// <summary>The attempts of a list of task ids; <paramref name="memberOf"/> writes the dialect's membership test of @ids.</summary>
    public static string Delete(string quotedAttempts, Func<string, string> memberOf) => $"DELETE FROM {quotedAttempts} WHERE task_id {memberOf("@ids")}";

    public static (string Name, object? Value)[] InsertArgs(long taskId, AttemptRecord a) =>
    [
        ("taskId", taskId), ("createdAt", a.TaskCreatedAt), ("key", a.TaskKey), ("attempt", a.Attempt), ("startedAt", a.StartedAt), ("host", a.Host),
        ("session", a.Session), ("processor", a.Processor), ("outcome", a.Outcome), ("message", a.Message), ("output", a.Output),
    ];

    public static AttemptRecord SampleRecord() => new(1_767_225_600_000, "nightly-1", 2, 1_767_225_600_100, "host1", "host1:4242:ab12", "thread", "Retried", "boom", "[output] hi");
}
