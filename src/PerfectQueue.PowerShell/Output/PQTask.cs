using System.Management.Automation;
using Newtonsoft.Json;
using Newtonsoft.Json.Converters;

namespace PerfectQueue.PowerShell;

/// <summary>
/// A task as Get-PQTask shows it: local times, data as an ordered hashtable. Built to export well: the data
/// shows as its JSON text in Export-Csv / ConvertTo-Csv, the status and outcome are names in ConvertTo-Json, and
/// the time the original called "timeout" has a name per status (DueAt, LeaseExpiresAt, PurgeAt).
/// </summary>
public sealed class PQTask
{
    internal PQTask(TaskInfo info, Queue queue)
    {
        Key = info.Key;
        Type = info.Type;
        User = info.User;
        Status = (PQTaskState)info.Status;
        Outcome = (PQTaskOutcome?)info.Outcome;
        Message = info.Message;
        CreatedAt = info.CreatedAt.LocalDateTime;
        Timeout = info.Timeout?.LocalDateTime;
        FinishedAt = info.FinishedAt?.LocalDateTime;
        Data = new PQTaskData(PowerShellData.ToHashtable(info.Data), info.Data.ToJsonString());
        Attempts = info.Attempts;
        MaxRunning = info.MaxRunning;
        CancelRequested = info.CancelRequested;
        Compressed = info.Compressed;
        ExecutionTimeout = info.ExecutionTimeout;
        Worker = info.Worker;
        Host = info.Host;
        StartedAt = info.StartedAt?.LocalDateTime;
        RunningFor = info.RunningFor;
        LastDuration = info.LastDuration;
        Queue = new PQQueueReference(queue);
    }

    public string Key { get; }
    public string Type { get; }
    public string? User { get; }
    public PQTaskState Status { get; }
    public PQTaskOutcome? Outcome { get; }
    public string? Message { get; }
    public DateTime CreatedAt { get; }

    /// <summary>Scheduled and Waiting tasks: when the task is (or became) due.</summary>
    public DateTime? DueAt => Status is PQTaskState.Scheduled or PQTaskState.Waiting ? Timeout : null;
    /// <summary>Running and CancelRequested tasks: when the worker's lease ends unless its heartbeat extends it.</summary>
    public DateTime? LeaseExpiresAt => Status is PQTaskState.Running or PQTaskState.CancelRequested ? Timeout : null;
    /// <summary>Finished tasks: when the task is deleted and its key is free again (retention_time after it finished).</summary>
    public DateTime? PurgeAt => Status is PQTaskState.Finished ? Timeout : null;

    /// <summary>
    /// Deprecated: the original's "timeout" column, which is <see cref="DueAt"/>, <see cref="LeaseExpiresAt"/> or
    /// <see cref="PurgeAt"/> depending on the status. Kept (hidden) so scripts that read it keep working.
    /// </summary>
    [Hidden]
    public DateTime? Timeout { get; }

    public DateTime? FinishedAt { get; }
    /// <summary>The task's data; as text (Export-Csv, "$($t.Data)") it is its compact JSON.</summary>
    public PQTaskData Data { get; }
    public int Attempts { get; }
    public int? MaxRunning { get; }
    public bool CancelRequested { get; }
    public bool Compressed { get; }
    /// <summary>How long one attempt may run (Submit-PQTask -Timeout); null: no limit of its own. Not <see cref="Timeout"/>.</summary>
    public TimeSpan? ExecutionTimeout { get; }
    /// <summary>While a worker runs the task: its session id (Get-PQWorker's Id, Stop-PQWorker -Id). Null when no worker holds it.</summary>
    public string? Worker { get; }
    /// <summary>While a worker runs the task: the machine it runs on.</summary>
    public string? Host { get; }
    /// <summary>While the task runs: when its running attempt started.</summary>
    public DateTime? StartedAt { get; }
    /// <summary>While the task runs: how long its running attempt has run, as of the read (database clock).</summary>
    public TimeSpan? RunningFor { get; }
    /// <summary>How long the last ended attempt ran (to its finish or retry); null before one ended. Every attempt: Get-PQTaskHistory.</summary>
    public TimeSpan? LastDuration { get; }
    /// <summary>
    /// The queue the task came from, so piped commands act on the same queue (it converts to <see cref="PerfectQueue.Queue"/>).
    /// As text, and in ConvertTo-Json, it is only where the queue lives, without secrets.
    /// </summary>
    public PQQueueReference Queue { get; }

    public override string ToString() => Key;
}

/// <summary>
/// The queue a <see cref="PQTask"/> came from. Cmdlets take it for -Queue (it converts to the
/// <see cref="PerfectQueue.Queue"/> implicitly), so piped tasks stay on their queue; it shows, exports and
/// serializes as its description alone, so a task in ConvertTo-Json is not padded with the queue's settings.
/// </summary>
public sealed class PQQueueReference
{
    private readonly Queue _queue;

    internal PQQueueReference(Queue queue) => _queue = queue;

    /// <summary>Where the queue lives, without secrets.</summary>
    public string Description => _queue.Description;

    /// <summary>The queue itself (ConvertTo-Json leaves it out: a nested object's ignored properties are skipped).</summary>
    [Newtonsoft.Json.JsonIgnore]
    public Queue Value => _queue;

    public static implicit operator Queue(PQQueueReference reference) => reference._queue;

    public override string ToString() => _queue.Description;
}

/// <summary>
/// A task's data: an ordered, case-insensitive hashtable whose text is its JSON, so Export-Csv and ConvertTo-Csv
/// write the data itself instead of the type's name.
/// </summary>
public sealed class PQTaskData : System.Collections.Specialized.OrderedDictionary
{
    private readonly string _json;

    internal PQTaskData(System.Collections.Specialized.OrderedDictionary values, string json) : base(values.Count, StringComparer.OrdinalIgnoreCase)
    {
        foreach (System.Collections.DictionaryEntry entry in values) Add(entry.Key, entry.Value);
        _json = json;
    }

    /// <summary>The data as compact JSON text.</summary>
    public override string ToString() => _json;
}

/// <summary>
/// <see cref="TaskState"/> for PowerShell output: the same names and values, written as names by ConvertTo-Json
/// (which writes a plain enum as its number).
/// </summary>
[JsonConverter(typeof(StringEnumConverter))]
public enum PQTaskState
{
    Scheduled = TaskState.Scheduled,
    Waiting = TaskState.Waiting,
    Running = TaskState.Running,
    CancelRequested = TaskState.CancelRequested,
    Finished = TaskState.Finished,
}

/// <summary><see cref="TaskOutcome"/> for PowerShell output, written as names by ConvertTo-Json (see <see cref="PQTaskState"/>).</summary>
[JsonConverter(typeof(StringEnumConverter))]
public enum PQTaskOutcome
{
    Succeeded = TaskOutcome.Succeeded,
    Failed = TaskOutcome.Failed,
    Cancelled = TaskOutcome.Cancelled,
    ForceFinished = TaskOutcome.ForceFinished,
}
