using PerfectQueue.Storage;

namespace PerfectQueue.Schedules;

/// <summary>
/// Fires a queue's due schedules, as every worker does on its own loop (docs/schedules.md). Without a leader: each fire
/// is first submitted under its unique key (&lt;name&gt;@&lt;UTC fire time&gt;), then the schedule is moved to its next
/// fire by a compare-and-set on the fire time it read. Of many workers, one advances; the others' submits are refused
/// as taken (or come after the advance and find nothing due), so each fire is submitted once. All times are the
/// database clock's.
/// </summary>
internal sealed class ScheduleFirer(Queue queue, Action<string>? log, Action? fired = null)
{
    /// <summary>The next fire of a schedule whose cron has no more times: never (the last instant DateTimeOffset holds).</summary>
    public const long Never = 253_402_300_799_000;

    /// <summary>
    /// A fire time this long past is missed (MissedRuns decides), not late: the time a worker may lag behind a fire
    /// (a slow database, a pause) without the fire counting as missed.
    /// </summary>
    public static readonly TimeSpan MissedAfter = TimeSpan.FromMinutes(1);

    /// <summary>How many missed times are counted one by one before the count says "at least".</summary>
    internal const int MissedCountCap = 10_000;

    // A bound on the catch-up of one schedule in one pass: the rest waits for the next pass.
    private const int MaxFiresPerPass = 100;

    private static readonly TimeSpan MinCheckInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxCheckInterval = TimeSpan.FromSeconds(5);
    // A wake-up this much after the fire time: the database clock it is compared with must have passed it.
    private const long WakeSlackMs = 20;

    private readonly HashSet<string> _badSchedules = new(StringComparer.Ordinal);

    /// <summary>
    /// Checks schedules until <paramref name="stop"/>: at most once a second, else at the earliest next fire (at least
    /// every 5 s, so schedules registered elsewhere are seen). Failures are logged and retried with backoff; they never end the loop.
    /// </summary>
    public async Task RunAsync(CancellationToken stop)
    {
        if (queue.Store is not IScheduleStore) return; // a store without schedules (a test's wrapper) has none to fire
        var failures = 0;
        while (!stop.IsCancellationRequested)
        {
            var started = System.Diagnostics.Stopwatch.StartNew();
            TimeSpan wait;
            try
            {
                var (next, now) = await FireDueAsync(stop).ConfigureAwait(false);
                if (failures > 0) log?.Invoke($"schedules: firing works again after {failures} failure(s)");
                failures = 0;
                wait = next is { } at ? TimeSpan.FromMilliseconds(Math.Clamp(at - now + WakeSlackMs, 0, MaxCheckInterval.TotalMilliseconds)) : MaxCheckInterval;
                if (wait < MinCheckInterval - started.Elapsed) wait = MinCheckInterval - started.Elapsed;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                failures++;
                wait = TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, Math.Min(failures - 1, 5))));
                log?.Invoke($"schedules: firing failed ({failures} in a row), trying again in {wait.TotalSeconds:0}s: {e.Message}");
            }
            try { await Task.Delay(wait, stop).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>Fires every due schedule once; returns the earliest next fire of the unpaused ones (null: none) and the database clock.</summary>
    public async Task<(long? NextFireAt, long Now)> FireDueAsync(CancellationToken ct)
    {
        // Without data: the listing runs every second on every worker, and data may be large; a fire reads its schedule's.
        var (rows, now) = await queue.Schedules.ListSchedulesAsync(withData: false, ct).ConfigureAwait(false);
        long? earliest = null;
        foreach (var row in rows)
        {
            if (row.Paused) continue;
            var next = row.NextFireAt <= now ? await FireAsync(row, now, ct).ConfigureAwait(false) : row.NextFireAt;
            if (next is { } n && (earliest is null || n < earliest)) earliest = n;
        }
        return (earliest, now);
    }

    // Fires one schedule's due times (catching up at most MaxFiresPerPass); returns its next fire as this worker
    // knows it, or null when another worker moved it first (it is read again next pass).
    private async Task<long?> FireAsync(ScheduleRow row, long now, CancellationToken ct)
    {
        ScheduleCron cron;
        try { cron = ScheduleCron.Parse(row.Cron, row.TimeZone); }
        catch (ArgumentException e)
        {
            // Only a row changed by hand (or a time zone this host lacks) gets here: say so once per worker, fire nothing.
            lock (_badSchedules)
                if (_badSchedules.Add(row.Name)) log?.Invoke($"schedules: '{row.Name}' cannot fire on this host: {e.Message}");
            return null;
        }
        var expected = row.NextFireAt;
        var lastKey = row.LastFireKey;
        for (var i = 0; i < MaxFiresPerPass && expected <= now; i++)
        {
            var missedBefore = now - (long)MissedAfter.TotalMilliseconds;
            var overlapSkip = row.Overlap == nameof(ScheduleOverlap.Skip);
            if (expected < missedBefore)
            {
                // No worker fired these times: count them, fire the latest once if asked (and not blocked), and go on
                // from the first time that is not missed.
                var (count, last) = cron.Between(expected, missedBefore, MissedCountCap);
                var resume = cron.NextMs(missedBefore, inclusive: true) ?? Never;
                long? ranAt = null, skippedAt = null;
                string? ranKey = null, blocking = null;
                if (row.MissedRuns == nameof(ScheduleMissedRuns.RunOnce) && last is { } latest)
                {
                    blocking = overlapSkip ? await UnfinishedAsync(lastKey, ct).ConfigureAwait(false) : null;
                    if (blocking is null)
                    {
                        ranKey = ScheduleNames.FireKey(row.Name, latest);
                        if (await SubmitFireAsync(row, ranKey, ct).ConfigureAwait(false))
                        {
                            log?.Invoke($"schedules: '{row.Name}' fired {ranKey}");
                            fired?.Invoke();
                        }
                        ranAt = latest;
                    }
                    else skippedAt = latest;
                }
                var missed = count - (ranAt is null && skippedAt is null ? 0 : 1);
                var advance = new ScheduleAdvance(row.Name, expected, resume, ranAt, ranKey, skippedAt is null ? 0 : 1, skippedAt, missed, missed > 0 ? expected : null);
                if (!await queue.Schedules.AdvanceScheduleAsync(advance, ct).ConfigureAwait(false)) return null;
                if (missed > 0)
                    await NoticeAsync(type => Notices.FireMissed(type, row.Name, ScheduleNames.FireKey(row.Name, expected), TaskStates.Time(expected), missed,
                        count >= MissedCountCap, row.Type, ranKey, TaskStates.Time(now)), ct).ConfigureAwait(false);
                if (skippedAt is { } s) await NoticeSkippedAsync(row, s, blocking!, now, ct).ConfigureAwait(false);
                log?.Invoke($"schedules: '{row.Name}' missed {(count >= MissedCountCap ? "at least " : "")}{count} fire time(s) from {ScheduleCron.FormatFireTime(expected)}" +
                    (ranKey is not null ? $"; ran the latest once as {ranKey}" : skippedAt is not null ? $"; the latest was skipped: {blocking} is not finished" : "; none run (MissedRuns Skip)"));
                lastKey = ranKey ?? lastKey;
                expected = resume;
                continue;
            }

            var following = cron.NextMs(expected) ?? Never;
            var unfinished = overlapSkip ? await UnfinishedAsync(lastKey, ct).ConfigureAwait(false) : null;
            if (unfinished is not null)
            {
                if (!await queue.Schedules.AdvanceScheduleAsync(new ScheduleAdvance(row.Name, expected, following, Skips: 1, SkippedAt: expected), ct).ConfigureAwait(false)) return null;
                await NoticeSkippedAsync(row, expected, unfinished, now, ct).ConfigureAwait(false);
                log?.Invoke($"schedules: '{row.Name}' skipped its fire of {ScheduleCron.FormatFireTime(expected)}: {unfinished} is not finished (Overlap Skip)");
            }
            else
            {
                // Submit first: a worker that dies before the advance leaves the schedule due, and the next worker's
                // submit of the same key is refused as taken before it advances (docs/schedules.md, "Exactly once").
                var key = ScheduleNames.FireKey(row.Name, expected);
                // The worker whose submit stored the task says so, whichever worker's advance then wins.
                if (await SubmitFireAsync(row, key, ct).ConfigureAwait(false))
                {
                    log?.Invoke($"schedules: '{row.Name}' fired {key}");
                    fired?.Invoke();
                }
                if (!await queue.Schedules.AdvanceScheduleAsync(new ScheduleAdvance(row.Name, expected, following, expected, key), ct).ConfigureAwait(false)) return null;
                lastKey = key;
            }
            expected = following;
        }
        return expected;
    }

    // The key of the previous fire's task while it is unfinished (Overlap Skip waits for it), else null.
    private async Task<string?> UnfinishedAsync(string? lastKey, CancellationToken ct)
    {
        if (lastKey is null) return null;
        var task = await queue.Store.GetAsync(lastKey, ct).ConfigureAwait(false);
        return task is { FinishedAt: null } ? lastKey : null;
    }

    // The schedule's data is stored encoded, checked at register as a submit checks it: it goes in as is. It is read
    // once per pass of the schedule (the listing leaves it out).
    private async Task<bool> SubmitFireAsync(ScheduleRow row, string key, CancellationToken ct)
    {
        row.Data ??= await queue.Schedules.GetScheduleDataAsync(row.Name, ct).ConfigureAwait(false) ?? "{}"u8.ToArray();
        return (await queue.StoreNewAsync([new NewTaskRow(key, row.Type, row.User, row.Data, row.MaxRunning, null, null)], ct).ConfigureAwait(false))[0];
    }

    private Task NoticeSkippedAsync(ScheduleRow row, long fireAt, string blocking, long now, CancellationToken ct) =>
        NoticeAsync(type => Notices.FireSkipped(type, row.Name, ScheduleNames.FireKey(row.Name, fireAt), TaskStates.Time(fireAt), row.Type, blocking, TaskStates.Time(now)), ct);

    // Notices go in after the advance, by the worker that made it: a notice is never sent for an event that did not
    // happen; one lost to a crash right after the advance is not sent again (docs/schedules.md, "Notices").
    private async Task NoticeAsync(Func<string, TaskSubmission> build, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(queue.Config.NoticeType)) return;
        try { await queue.SubmitManyAsync([build(queue.Config.NoticeType)], ct).ConfigureAwait(false); }
        catch (Exception e) when (e is not OperationCanceledException) { log?.Invoke($"schedules: a notice could not be submitted: {e.Message}"); }
    }
}
