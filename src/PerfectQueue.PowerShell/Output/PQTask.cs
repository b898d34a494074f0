using System.Management.Automation;

namespace PerfectQueue.PowerShell;

/// <summary>A task as Get-PQTask shows it: local times, data as an ordered hashtable.</summary>
public sealed class PQTask
{
    internal PQTask(TaskInfo info, Queue queue)
    {
        Key = info.Key;
        Type = info.Type;
        User = info.User;
        Status = info.Status;
        Outcome = info.Outcome;
        Message = info.Message;
        CreatedAt = info.CreatedAt.LocalDateTime;
        Timeout = info.Timeout?.LocalDateTime;
        FinishedAt = info.FinishedAt?.LocalDateTime;
        Data = PowerShellData.ToHashtable(info.Data);
        Attempts = info.Attempts;
        MaxRunning = info.MaxRunning;
        CancelRequested = info.CancelRequested;
        Compressed = info.Compressed;
        ExecutionTimeout = info.ExecutionTimeout;
        Queue = queue;
    }

    public string Key { get; }
    public string Type { get; }
    public string? User { get; }
    public TaskState Status { get; }
    public TaskOutcome? Outcome { get; }
    public string? Message { get; }
    public DateTime CreatedAt { get; }
    /// <summary>When a waiting task becomes due, a running task's lease ends, or a finished task is deleted.</summary>
    public DateTime? Timeout { get; }
    public DateTime? FinishedAt { get; }
    public System.Collections.Specialized.OrderedDictionary Data { get; }
    public int Attempts { get; }
    public int? MaxRunning { get; }
    public bool CancelRequested { get; }
    public bool Compressed { get; }
    /// <summary>How long one attempt may run (Submit-PQTask -Timeout); null: no limit of its own. Not <see cref="Timeout"/>.</summary>
    public TimeSpan? ExecutionTimeout { get; }
    /// <summary>The queue the task came from, so piped commands act on the same queue.</summary>
    public Queue Queue { get; }

    public override string ToString() => Key;
}
