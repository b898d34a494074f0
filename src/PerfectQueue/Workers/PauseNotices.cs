namespace PerfectQueue.Workers;

/// <summary>
/// Logs once when a worker notices a pause (Suspend-PQQueue) and once when it is lifted. It looks only after a poll
/// that leased nothing, at most once per <see cref="Interval"/>: the pauses table is a few rows, so an idle
/// worker pays one tiny read every few seconds, and a busy one none.
/// </summary>
internal sealed class PauseNotices(Queue queue, Action<string> log)
{
    private HashSet<string> _seen = new(StringComparer.Ordinal);
    private long _nextTicks;

    /// <summary>How often an idle worker looks at the pauses.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>After a poll that leased nothing: looks again if the interval has passed. Never throws (the notices are only for the log).</summary>
    public async Task AfterEmptyPollAsync()
    {
        var now = Environment.TickCount64;
        if (now < _nextTicks) return;
        _nextTicks = now + (long)Interval.TotalMilliseconds;
        IReadOnlyList<QueuePause> pauses;
        try { pauses = await queue.ListPausesAsync(counts: false).ConfigureAwait(false); }
        catch (Exception e) when (e is not OutOfMemoryException) { return; } // acquire reports database trouble already
        var current = pauses.ToDictionary(p => p.Scope, StringComparer.Ordinal);
        foreach (var (scope, p) in current)
            if (!_seen.Contains(scope))
                log($"paused: {scope} (since {p.Since.LocalDateTime}{(p.PausedBy is null ? "" : $", by {p.PausedBy}")}{(p.Reason is null ? "" : $": {p.Reason}")}); its waiting tasks are not acquired until Resume-PQQueue");
        foreach (var scope in _seen)
            if (!current.ContainsKey(scope)) log($"resumed: {scope}");
        _seen = current.Keys.ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>At an UntilEmpty exit: says how many waiting tasks the pauses hold back, if any.</summary>
    public async Task AtEmptyExitAsync()
    {
        long paused;
        try { paused = await queue.CountPausedAsync().ConfigureAwait(false); }
        catch (Exception e) when (e is not OutOfMemoryException) { return; }
        if (paused > 0) log($"{paused} waiting task(s) are paused and were not run (Get-PQQueuePause lists the pauses; Resume-PQQueue lifts them)");
    }
}
