using PerfectQueue.Storage;

namespace PerfectQueue;

// Pauses (Suspend-PQQueue / Resume-PQQueue, docs/pause.md). The stores read them in acquire itself, so the engine
// only validates scopes and maps rows.
public sealed partial class Queue
{
    /// <summary>The longest reason kept (longer ones are cut, as task messages are).</summary>
    public const int MaxPauseReasonLength = TaskText.MaxMessageLength;

    /// <summary>
    /// Pauses a scope: <paramref name="type"/> and <paramref name="user"/> null (or empty) for any; both null pauses
    /// the whole queue. Idempotent: a scope paused already keeps its pause, which is returned with Created false.
    /// </summary>
    public QueuePause Pause(string? type = null, string? user = null, string? reason = null) => PauseAsync(type, user, reason).GetAwaiter().GetResult();

    public async Task<QueuePause> PauseAsync(string? type = null, string? user = null, string? reason = null, CancellationToken ct = default)
    {
        var (t, u) = Scope(type, user);
        await EnsureCreatedAsync(ct).ConfigureAwait(false); // the embedded default: a maintenance script may pause before the first submit
        var (row, created) = await _store.AddPauseAsync(t, u, TaskText.CleanMessage(string.IsNullOrWhiteSpace(reason) ? null : reason), PausedBy(), ct).ConfigureAwait(false);
        return ToPause(row, created, counts: false);
    }

    /// <summary>Removes exactly the pause of this scope; returns it, or null when the scope was not paused (nothing changes).</summary>
    public QueuePause? Resume(string? type = null, string? user = null) => ResumeAsync(type, user).GetAwaiter().GetResult();

    public async Task<QueuePause?> ResumeAsync(string? type = null, string? user = null, CancellationToken ct = default)
    {
        var (t, u) = Scope(type, user);
        return await _store.RemovePauseAsync(t, u, ct).ConfigureAwait(false) is { } row ? ToPause(row, false, counts: false) : null;
    }

    /// <summary>Every pause, oldest first; with <paramref name="counts"/>, each with the waiting tasks it holds back (one count per pause).</summary>
    public IReadOnlyList<QueuePause> ListPauses(bool counts = false) => ListPausesAsync(counts).GetAwaiter().GetResult();

    public async Task<IReadOnlyList<QueuePause>> ListPausesAsync(bool counts = false, CancellationToken ct = default) =>
        (await _store.ListPausesAsync(counts, ct).ConfigureAwait(false)).Select(r => ToPause(r, false, counts)).ToList();

    /// <summary>How many waiting tasks some pause holds back, each counted once.</summary>
    public long CountPaused() => CountPausedAsync().GetAwaiter().GetResult();

    public Task<long> CountPausedAsync(CancellationToken ct = default) => _store.CountPausedAsync(ct);

    /// <summary>Throws the ArgumentException Pause and Resume would throw for this scope (cmdlets check every scope before changing any).</summary>
    internal static void CheckPauseScope(string? type, string? user) => Scope(type, user);

    // The same rules as a submit's type and user (TaskText), so a pause can name every scope a task can have and
    // nothing else; empty means any, as a submit's empty user means none.
    private static (string Type, string User) Scope(string? type, string? user)
    {
        if (!string.IsNullOrEmpty(type) && TaskText.NameProblem("type", type) is { } badType)
            throw new ArgumentException($"Cannot pause or resume: {badType} Leave the type out to pause every type.", nameof(type));
        if (!string.IsNullOrEmpty(user) && TaskText.NameProblem("user", user) is { } badUser)
            throw new ArgumentException($"Cannot pause or resume: {badUser} Leave the user out to pause every user.", nameof(user));
        return (string.IsNullOrEmpty(type) ? PauseSql.Any : type, string.IsNullOrEmpty(user) ? PauseSql.Any : user);
    }

    private static string PausedBy()
    {
        var by = $"{Environment.UserName}@{Environment.MachineName}";
        return by.Length <= 256 ? by : by[..256];
    }

    private static QueuePause ToPause(PauseRow r, bool created, bool counts) => new()
    {
        Type = r.Type.Length == 0 ? null : r.Type,
        User = r.User.Length == 0 ? null : r.User,
        Since = TaskStates.Time(r.PausedAt),
        Reason = r.Reason,
        PausedBy = r.PausedBy,
        Waiting = counts ? r.Waiting : null,
        Created = created,
    };
}
