using System.Text.Json.Nodes;
using PerfectQueue.Schedules;
using PerfectQueue.Storage;

namespace PerfectQueue;

// Recurring schedules (docs/schedules.md): a schedule lives in <table>_schedules; every worker fires the due ones
// (ScheduleFirer). These are the client operations.
public sealed partial class Queue
{
    private IScheduleStore ScheduleStore => _store as IScheduleStore
        ?? throw new OperationNotSupportedException($"The queue store of {Description} has no schedules.");

    /// <summary>Registers a schedule; its first fire is the first cron time after now (database clock).</summary>
    /// <remarks>force: replace a schedule of the same name (its counters and last fire stay).</remarks>
    /// <exception cref="ScheduleAlreadyExistsException">the name is taken and <paramref name="force"/> is false.</exception>
    /// <exception cref="ArgumentException">a bad name, cron expression, time zone, type, user or data.</exception>
    public ScheduleInfo RegisterSchedule(ScheduleDefinition definition, bool force = false) => RegisterScheduleAsync(definition, force).GetAwaiter().GetResult();

    public async Task<ScheduleInfo> RegisterScheduleAsync(ScheduleDefinition definition, bool force = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var (row, cron) = EncodeSchedule(definition.Name, definition.Cron, definition.TimeZone, definition.Type, definition.Data, definition.User,
            definition.MaxRunning, definition.Overlap, definition.MissedRuns, definition.Compression);
        row.Paused = definition.Paused;
        await EnsureCreatedAsync(ct).ConfigureAwait(false);
        row.NextFireAt = NextFire(cron, await _store.NowAsync(ct).ConfigureAwait(false));
        if (!await ScheduleStore.AddScheduleAsync(row, ct).ConfigureAwait(false))
        {
            if (!force) throw new ScheduleAlreadyExistsException(row.Name);
            if (!await ScheduleStore.UpdateScheduleAsync(row, keepNext: false, ct).ConfigureAwait(false)
                && !await ScheduleStore.AddScheduleAsync(row, ct).ConfigureAwait(false)) // removed meanwhile: add it; taken again: the other register wins
                throw new ScheduleAlreadyExistsException(row.Name);
        }
        return await GetScheduleAsync(row.Name, ct).ConfigureAwait(false) ?? throw new ScheduleNotFoundException(row.Name);
    }

    /// <summary>Changes a schedule; what <paramref name="change"/> leaves null stays. A new cron or time zone sets the next fire from now.</summary>
    /// <exception cref="ScheduleNotFoundException">no schedule has the name.</exception>
    public ScheduleInfo SetSchedule(string name, ScheduleChange change) => SetScheduleAsync(name, change).GetAwaiter().GetResult();

    public async Task<ScheduleInfo> SetScheduleAsync(string name, ScheduleChange change, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        var (old, now) = await FindScheduleRowAsync(name, ct).ConfigureAwait(false);
        var (row, cron) = EncodeSchedule(old.Name, change.Cron ?? old.Cron, change.TimeZone ?? old.TimeZone, change.Type ?? old.Type,
            change.SetData ? change.Data : null, change.User is null ? old.User : change.User, change.MaxRunning is null ? old.MaxRunning : change.MaxRunning == 0 ? null : change.MaxRunning,
            change.Overlap ?? Enum.Parse<ScheduleOverlap>(old.Overlap), change.MissedRuns ?? Enum.Parse<ScheduleMissedRuns>(old.MissedRuns), change.Compression);
        if (!change.SetData) row.Data = old.Data; // kept as stored, compressed or not
        row.Paused = old.Paused;
        var retimed = row.Cron != old.Cron || row.TimeZone != old.TimeZone;
        row.NextFireAt = retimed ? NextFire(cron, now) : old.NextFireAt;
        if (!await ScheduleStore.UpdateScheduleAsync(row, keepNext: !retimed, ct).ConfigureAwait(false)) throw new ScheduleNotFoundException(old.Name);
        return await GetScheduleAsync(old.Name, ct).ConfigureAwait(false) ?? throw new ScheduleNotFoundException(old.Name);
    }

    /// <summary>Suspends a schedule: it fires nothing until resumed. Returns it as it is now.</summary>
    /// <exception cref="ScheduleNotFoundException">no schedule has the name.</exception>
    public ScheduleInfo SuspendSchedule(string name) => SuspendScheduleAsync(name).GetAwaiter().GetResult();

    public Task<ScheduleInfo> SuspendScheduleAsync(string name, CancellationToken ct = default) => SetPausedAsync(name, true, ct);

    /// <summary>
    /// Resumes a suspended schedule. Its next fire is the first cron time after now: the times it was suspended for
    /// are not missed runs (they were asked for). Resuming one that runs changes nothing.
    /// </summary>
    /// <exception cref="ScheduleNotFoundException">no schedule has the name.</exception>
    public ScheduleInfo ResumeSchedule(string name) => ResumeScheduleAsync(name).GetAwaiter().GetResult();

    public Task<ScheduleInfo> ResumeScheduleAsync(string name, CancellationToken ct = default) => SetPausedAsync(name, false, ct);

    private async Task<ScheduleInfo> SetPausedAsync(string name, bool paused, CancellationToken ct)
    {
        var (row, now) = await FindScheduleRowAsync(name, ct).ConfigureAwait(false);
        if (row.Paused != paused)
        {
            row.Paused = paused;
            var resumed = !paused;
            if (resumed) row.NextFireAt = NextFire(ScheduleCron.Parse(row.Cron, row.TimeZone), now);
            if (!await ScheduleStore.UpdateScheduleAsync(row, keepNext: !resumed, ct).ConfigureAwait(false)) throw new ScheduleNotFoundException(row.Name);
        }
        return await GetScheduleAsync(row.Name, ct).ConfigureAwait(false) ?? throw new ScheduleNotFoundException(row.Name);
    }

    /// <summary>Deletes a schedule; false if no schedule has the name. Tasks it fired stay.</summary>
    public bool UnregisterSchedule(string name) => UnregisterScheduleAsync(name).GetAwaiter().GetResult();

    public Task<bool> UnregisterScheduleAsync(string name, CancellationToken ct = default) =>
        ScheduleStore.RemoveScheduleAsync(CheckScheduleLookup(name), ct);

    /// <summary>The schedule with this name, or null.</summary>
    public ScheduleInfo? GetSchedule(string name) => GetScheduleAsync(name).GetAwaiter().GetResult();

    public async Task<ScheduleInfo?> GetScheduleAsync(string name, CancellationToken ct = default)
    {
        CheckScheduleLookup(name);
        return (await ListSchedulesAsync(ct).ConfigureAwait(false)).FirstOrDefault(s => s.Name == name);
    }

    /// <summary>Every schedule, by name, with its last fire's task status (one more round trip for those).</summary>
    public IReadOnlyList<ScheduleInfo> ListSchedules() => ListSchedulesAsync().GetAwaiter().GetResult();

    public async Task<IReadOnlyList<ScheduleInfo>> ListSchedulesAsync(CancellationToken ct = default)
    {
        var (rows, now) = await ScheduleStore.ListSchedulesAsync(withData: true, ct).ConfigureAwait(false);
        var keys = rows.Where(r => r.LastFireKey is not null).Select(r => r.LastFireKey!).Distinct().ToList();
        var tasks = keys.Count == 0 ? [] : (await ListAsync(new TaskFilter { Keys = keys }, ct).ConfigureAwait(false)).ToDictionary(t => t.Key, StringComparer.Ordinal);
        return rows.Select(r => ToScheduleInfo(r, now, r.LastFireKey is { } k ? tasks.GetValueOrDefault(k) : null)).ToList();
    }

    /// <summary>
    /// Fires the due schedules once, as a worker does every second (docs/schedules.md): for tests and for hosts that
    /// fire without a worker. Returns when the earliest schedule fires next (null: none).
    /// </summary>
    public DateTimeOffset? FireDueSchedules() => FireDueSchedulesAsync().GetAwaiter().GetResult();

    public async Task<DateTimeOffset?> FireDueSchedulesAsync(CancellationToken ct = default) =>
        (await new ScheduleFirer(this, null).FireDueAsync(ct).ConfigureAwait(false)).NextFireAt is { } next ? TaskStates.Time(next) : null;

    internal IScheduleStore Schedules => ScheduleStore;

    private async Task<(ScheduleRow Row, long Now)> FindScheduleRowAsync(string name, CancellationToken ct)
    {
        CheckScheduleLookup(name);
        var (rows, now) = await ScheduleStore.ListSchedulesAsync(withData: true, ct).ConfigureAwait(false);
        return (rows.FirstOrDefault(r => r.Name == name) ?? throw new ScheduleNotFoundException(name), now);
    }

    private static string CheckScheduleLookup(string name) =>
        string.IsNullOrEmpty(name) ? throw new ArgumentException("A schedule name must not be empty. Get-PQSchedule (ListSchedules) lists them.", nameof(name)) : name;

    // When a schedule that was just (re)timed fires first: the first cron time after now.
    private static long NextFire(ScheduleCron cron, long now) => cron.NextMs(now) ?? ScheduleFirer.Never;

    private (ScheduleRow Row, ScheduleCron Cron) EncodeSchedule(string name, string cronText, string? zone, string type, object? data, string? user,
        int? maxRunning, ScheduleOverlap overlap, ScheduleMissedRuns missedRuns, DataCompression? compression)
    {
        if (ScheduleNames.Problem(name) is { } badName) throw new ArgumentException(badName, nameof(name));
        ScheduleCron cron;
        try { cron = ScheduleCron.Parse(cronText, zone); }
        catch (ArgumentException e) { throw new ArgumentException($"Schedule '{name}': {ArgumentText.WithoutParameterName(e)}", e.ParamName, e); }
        if (!Enum.IsDefined(overlap)) throw new ArgumentException($"Schedule '{name}': Overlap must be Skip or Allow (got {overlap}).", nameof(overlap));
        if (!Enum.IsDefined(missedRuns)) throw new ArgumentException($"Schedule '{name}': MissedRuns must be Skip or RunOnce (got {missedRuns}).", nameof(missedRuns));
        // Each fire is a submit: the task rules apply now, so no fire can fail on them later.
        var sample = new TaskSubmission(ScheduleNames.FireKey(name, ScheduleFirer.Never), type, data,
            new SubmitOptions { User = string.IsNullOrEmpty(user) ? null : user, MaxRunning = maxRunning, Compression = compression });
        NewTaskRow encoded;
        try { encoded = Encode(sample); }
        catch (ArgumentException e) { throw new ArgumentException($"Schedule '{name}': {ArgumentText.WithoutParameterName(e).Replace($"Task '{sample.Key}': ", "", StringComparison.Ordinal)}", e.ParamName, e); }
        return (new ScheduleRow
        {
            Name = name, Cron = cron.Expression, TimeZone = cron.TimeZoneId, Type = encoded.Type, User = encoded.User, Data = encoded.Data,
            MaxRunning = encoded.MaxRunning, Overlap = overlap.ToString(), MissedRuns = missedRuns.ToString(),
        }, cron);
    }

    private static ScheduleInfo ToScheduleInfo(ScheduleRow r, long now, TaskInfo? lastTask)
    {
        JsonObject data;
        try { data = TaskData.Decode(r.Data); }
        catch (TaskDataException) { data = []; }
        return new ScheduleInfo
        {
            Name = r.Name, Cron = r.Cron, TimeZone = r.TimeZone, Type = r.Type, User = r.User, MaxRunning = r.MaxRunning, Data = data,
            Overlap = Enum.TryParse<ScheduleOverlap>(r.Overlap, out var o) ? o : ScheduleOverlap.Skip,
            MissedRuns = Enum.TryParse<ScheduleMissedRuns>(r.MissedRuns, out var m) ? m : ScheduleMissedRuns.RunOnce,
            Paused = r.Paused, NextFireAt = TaskStates.Time(r.NextFireAt),
            LastFireAt = r.LastFireAt is { } lf ? TaskStates.Time(lf) : null, LastFireKey = r.LastFireKey,
            LastFireStatus = lastTask?.Status, LastFireOutcome = lastTask?.Outcome,
            SkipCount = r.SkipCount, LastSkipAt = r.LastSkipAt is { } ls ? TaskStates.Time(ls) : null,
            MissedCount = r.MissedCount, LastMissedAt = r.LastMissedAt is { } lm ? TaskStates.Time(lm) : null,
            CreatedAt = TaskStates.Time(r.CreatedAt), UpdatedAt = TaskStates.Time(r.UpdatedAt), ReadAt = TaskStates.Time(now),
        };
    }
}
