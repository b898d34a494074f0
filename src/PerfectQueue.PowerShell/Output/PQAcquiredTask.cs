using System.Management.Automation;

namespace PerfectQueue.PowerShell;

/// <summary>
/// A task this session holds (Receive-PQTask). Finish, retry or release it before its lease ends
/// (LeaseExpiresAt), or heartbeat to keep it; Complete-PQTask finishes it from the pipeline.
/// </summary>
public sealed class PQAcquiredTask
{
    internal PQAcquiredTask(AcquiredTask task, Queue queue)
    {
        Task = task;
        Queue = queue;
        Data = PowerShellData.ToHashtable(task.Data);
    }

    /// <summary>The engine's task, for .NET callers.</summary>
    [Hidden] public AcquiredTask Task { get; }
    /// <summary>The queue it came from; null in a handler of a process-mode worker (the child process holds no queue: Connect-PQQueue there to submit).</summary>
    public Queue Queue { get; }
    public string Key => Task.Key;
    public string Type => Task.Type;
    public string? User => Task.User;
    /// <summary>The data when acquired (UpdateData changes what the next attempt sees).</summary>
    public System.Collections.Specialized.OrderedDictionary Data { get; }
    public int Attempt => Task.Attempt;
    public string? LastMessage => Task.LastMessage;
    public DateTime LeaseExpiresAt => Task.LeaseExpiresAt.LocalDateTime;
    /// <summary>True once cancel was asked for this task (or it was lost): stop at a safe point.</summary>
    public bool IsCancellationRequested => Task.IsCancellationRequested;
    /// <summary>Cancelled when cancel is asked for this task, or it is lost; pass it to long operations.</summary>
    public CancellationToken CancellationToken => Task.CancellationToken;
    public bool IsCompleted => Task.IsCompleted;
    /// <summary>True once the worker began a graceful stop: checkpoint (UpdateData) and Release() to let another worker go on.</summary>
    public bool IsStopRequested => Task.IsStopRequested;
    /// <summary>The task's own execution limit (Submit-PQTask -Timeout); the worker's or its route's may be tighter (see Deadline).</summary>
    public TimeSpan? Timeout => Task.Timeout;
    /// <summary>When the worker stops this attempt for running too long (null: no timeout).</summary>
    public DateTime? Deadline => Task.Deadline?.LocalDateTime;

    public void Finish() => Task.Finish();
    public void Finish(string message) => Task.Finish(message);
    public void Finish(TaskOutcome outcome, string? message) => Task.Finish(outcome, message);
    /// <summary>True if another attempt will come, false if max_attempts ended the task as Failed.</summary>
    public bool Retry() => Task.Retry();
    public bool Retry(string message) => Task.Retry(message);
    public bool Retry(string message, TimeSpan delay) => Task.Retry(message, delay);
    /// <summary>Retries after <paramref name="delay"/>: $Task.Retry([timespan]::FromSeconds(30)) (without it, a TimeSpan would bind to the message).</summary>
    public bool Retry(TimeSpan delay) => Task.Retry(delay);
    public void Release() => Task.Release();
    public HeartbeatResult Heartbeat() => Task.Heartbeat();
    public void UpdateData(object data) => Task.UpdateData(data);
    /// <summary>Throws when cancel was asked (the task then ends Cancelled), or when the task was lost.</summary>
    public void ThrowIfCancellationRequested() => Task.ThrowIfCancellationRequested();

    public override string ToString() => Key;
}
