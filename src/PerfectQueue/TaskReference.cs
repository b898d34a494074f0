namespace PerfectQueue;

/// <summary>A task named by its key (the original's queue[key]). Nothing is read until a method is called.</summary>
public sealed class TaskReference
{
    private readonly Queue _queue;

    internal TaskReference(Queue queue, string key)
    {
        _queue = queue;
        Key = key;
    }

    public string Key { get; }

    public override string ToString() => Key;

    /// <summary>True while the task exists (finished tasks exist until their retention ends).</summary>
    public bool Exists() => ExistsAsync().GetAwaiter().GetResult();
    public async Task<bool> ExistsAsync(CancellationToken ct = default) => await TryGetInfoAsync(ct).ConfigureAwait(false) is not null;

    /// <summary>The task as stored now; throws <see cref="NotFoundException"/> if there is none.</summary>
    public TaskInfo GetInfo() => GetInfoAsync().GetAwaiter().GetResult();

    public async Task<TaskInfo> GetInfoAsync(CancellationToken ct = default) =>
        await TryGetInfoAsync(ct).ConfigureAwait(false) ?? throw NotFound();

    public TaskInfo? TryGetInfo() => TryGetInfoAsync().GetAwaiter().GetResult();

    public async Task<TaskInfo?> TryGetInfoAsync(CancellationToken ct = default) =>
        await _queue.Store.GetAsync(Key, ct).ConfigureAwait(false) is { } row
            ? TaskStates.ToInfo(row, await _queue.HostsOfRunningAsync([row], ct).ConfigureAwait(false))
            : null;

    /// <summary>
    /// Asks the task to cancel (the original's cancel_request!). A task nobody runs now is finished as Cancelled
    /// at once and returns Finished; a running one returns CancelRequested and its holder is told at its next
    /// heartbeat. Throws <see cref="NotFoundException"/> or <see cref="AlreadyFinishedException"/>.
    /// </summary>
    public TaskState CancelRequest() => CancelRequestAsync().GetAwaiter().GetResult();

    public async Task<TaskState> CancelRequestAsync(CancellationToken ct = default)
    {
        var result = await _queue.Store.RequestCancelAsync(Key, "cancel requested", _queue.RetentionMs, ct).ConfigureAwait(false);
        return result switch
        {
            Storage.CancelRequestResult.CancelledBeforeStart => TaskState.Finished,
            Storage.CancelRequestResult.Flagged => TaskState.CancelRequested,
            Storage.CancelRequestResult.AlreadyFinished => throw new AlreadyFinishedException($"Task '{Key}' is already finished; there is nothing to cancel.", Key),
            _ => throw NotFound(),
        };
    }

    /// <summary>
    /// Finishes the task whatever its state, as ForceFinished (the original's force_finish!). Its holder learns
    /// at its next heartbeat and can write to it no more. Throws <see cref="NotFoundException"/>, or
    /// <see cref="IdempotentAlreadyFinishedException"/> if it is finished already.
    /// </summary>
    public void ForceFinish(string? message = null) => ForceFinishAsync(message).GetAwaiter().GetResult();

    public async Task ForceFinishAsync(string? message = null, CancellationToken ct = default)
    {
        var text = TaskText.CleanMessage(message) ?? "force finished";
        bool finished;
        try { finished = await _queue.Store.ForceFinishAsync(Key, nameof(TaskOutcome.ForceFinished), text, _queue.RetentionMs, ct).ConfigureAwait(false); }
        catch (Exception e) when (_queue.Store.IsValueError(e))
        {
            // The database refused the message itself: finish without it rather than not at all.
            finished = await _queue.Store.ForceFinishAsync(Key, nameof(TaskOutcome.ForceFinished), TaskText.UnstorableNote(e), _queue.RetentionMs, ct).ConfigureAwait(false);
        }
        if (finished) return;
        if (await _queue.Store.GetAsync(Key, ct).ConfigureAwait(false) is not null)
            throw new IdempotentAlreadyFinishedException($"Task '{Key}' is already finished.", Key);
        throw NotFound();
    }

    private NotFoundException NotFound() => new($"No task has the key '{Key}' in {_queue.Description}.", Key);
}
