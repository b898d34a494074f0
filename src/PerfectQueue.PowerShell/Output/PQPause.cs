namespace PerfectQueue.PowerShell;

/// <summary>A pause as Suspend-PQQueue, Resume-PQQueue and Get-PQQueuePause show it: its scope, local time, and its queue.</summary>
public sealed class PQPause
{
    internal PQPause(QueuePause pause, Queue queue)
    {
        Type = pause.Type;
        User = pause.User;
        Scope = pause.Scope;
        Since = pause.Since.LocalDateTime;
        Reason = pause.Reason;
        PausedBy = pause.PausedBy;
        Waiting = pause.Waiting;
        New = pause.Created;
        Queue = queue;
    }

    /// <summary>The task type paused; empty: every type. Binds to Resume-PQQueue -Type.</summary>
    public string? Type { get; }
    /// <summary>The user paused; empty: every user. Binds to Resume-PQQueue -User.</summary>
    public string? User { get; }
    /// <summary>The scope in words: "the whole queue", "type 'backup'", "user 'team-a'", "type 'backup' of user 'team-a'".</summary>
    public string Scope { get; }
    /// <summary>When the pause was made.</summary>
    public DateTime Since { get; }
    public string? Reason { get; }
    /// <summary>user@host of whoever paused.</summary>
    public string? PausedBy { get; }
    /// <summary>Waiting tasks the pause holds back (Get-PQQueuePause); empty where not counted.</summary>
    public long? Waiting { get; }
    /// <summary>Suspend-PQQueue: true when this call made the pause, false when the scope was paused already (the pause is kept as it was).</summary>
    public bool New { get; }
    /// <summary>The queue of the pause, so piped commands act on the same queue.</summary>
    public Queue Queue { get; }

    public override string ToString() => Scope;
}
