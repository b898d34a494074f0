namespace PerfectQueue;

/// <summary>
/// A pause of a queue (Suspend-PQQueue, docs/pause.md): workers acquire no waiting task of its scope until it is
/// removed; running tasks finish, and submits are still accepted. A null <see cref="Type"/> or <see cref="User"/>
/// stands for any: both null pauses the whole queue.
/// </summary>
public sealed class QueuePause
{
    /// <summary>The task type paused; null: every type.</summary>
    public string? Type { get; init; }
    /// <summary>The user paused; null: every user (tasks without a user included).</summary>
    public string? User { get; init; }
    /// <summary>When the pause was made (the database clock).</summary>
    public DateTimeOffset Since { get; init; }
    public string? Reason { get; init; }
    /// <summary>Who made it: user@host of the process that paused.</summary>
    public string? PausedBy { get; init; }
    /// <summary>Waiting tasks the pause holds back, when listed with counts (<see cref="Queue.ListPauses"/>); null otherwise.</summary>
    public long? Waiting { get; init; }
    /// <summary>True when this call made the pause; false when the scope was paused already (the pause kept as it was) or for a listed pause.</summary>
    public bool Created { get; init; }

    /// <summary>True for the pause of the whole queue.</summary>
    public bool IsWholeQueue => Type is null && User is null;

    /// <summary>The scope in words: "the whole queue", "type 'backup'", "user 'team-a'", "type 'backup' of user 'team-a'".</summary>
    public string Scope => Describe(Type, User);

    /// <summary>The words for a scope (<see cref="Scope"/>).</summary>
    public static string Describe(string? type, string? user) => (type, user) switch
    {
        (null, null) => "the whole queue",
        (_, null) => $"type '{type}'",
        (null, _) => $"user '{user}'",
        _ => $"type '{type}' of user '{user}'",
    };

    public override string ToString() => Scope;
}
