using PerfectQueue.Schedules;

namespace PerfectQueue.Dashboard;

/// <summary>
/// The shapes the dashboard's API answers with (camelCase JSON, enums as names, times as ISO 8601, durations in
/// seconds). Values are sent as data; the page renders every one as text.
/// </summary>
internal static class DashboardJson
{
    private static double? Seconds(TimeSpan? span) => span is { } s ? Math.Round(s.TotalSeconds, 3) : null;

    private static Dictionary<string, long> ByStatus(IEnumerable<QueueCount> counts)
    {
        var by = Enum.GetNames<TaskState>().ToDictionary(n => n, _ => 0L);
        foreach (var c in counts) by[c.State.ToString()] += c.Count;
        return by;
    }

    public static object Summary(QueueSummary summary, long paused) => new
    {
        queue = summary.Queue,
        at = summary.At,
        total = summary.Total,
        statuses = ByStatus(summary.Counts),
        oldestWaitingSince = summary.OldestWaitingSince,
        oldestWaitingAgeSeconds = Seconds(summary.OldestWaitingAge),
        pauses = paused,
        types = summary.Counts.GroupBy(c => c.Type, StringComparer.Ordinal)
            .Select(g => new { type = g.Key, total = g.Sum(c => c.Count), statuses = ByStatus(g) })
            .OrderByDescending(t => t.total).ThenBy(t => t.type, StringComparer.Ordinal),
        users = summary.Counts.GroupBy(c => c.User ?? "", StringComparer.Ordinal)
            .Select(g => new { user = g.Key.Length == 0 ? null : g.Key, total = g.Sum(c => c.Count), statuses = ByStatus(g) })
            .OrderByDescending(u => u.total).ThenBy(u => u.user, StringComparer.Ordinal),
    };

    public static object Task(TaskInfo t) => new
    {
        key = t.Key,
        type = t.Type,
        user = t.User,
        status = t.Status,
        outcome = t.Outcome,
        message = t.Message,
        createdAt = t.CreatedAt,
        timeout = t.Timeout,
        finishedAt = t.FinishedAt,
        attempts = t.Attempts,
        maxRunning = t.MaxRunning,
        cancelRequested = t.CancelRequested,
        worker = t.Worker,
        host = t.Host,
        startedAt = t.StartedAt,
        runningForSeconds = Seconds(t.RunningFor),
        lastDurationSeconds = Seconds(t.LastDuration),
        executionTimeoutSeconds = Seconds(t.ExecutionTimeout),
        dataError = t.DataError,
    };

    public static object TaskDetail(TaskInfo t, IReadOnlyList<TaskAttempt> attempts) => new
    {
        task = Task(t),
        data = t.Data,
        history = attempts.Select(a => new
        {
            attempt = a.Attempt,
            startedAt = a.StartedAt,
            endedAt = a.EndedAt,
            durationSeconds = Seconds(a.Duration),
            host = a.Host,
            workerSession = a.WorkerSession,
            processor = a.Processor,
            outcome = a.Outcome,
            message = a.Message,
            output = a.Output,
        }),
    };

    public static object Worker(WorkerSessionInfo w) => new
    {
        id = w.Id,
        host = w.Host,
        pid = w.Pid,
        processors = w.Processors,
        processorType = w.ProcessorType,
        running = w.Running,
        runningKeys = w.RunningKeys,
        startedAt = w.StartedAt,
        lastBeatAt = w.LastBeatAt,
        lastBeatAgeSeconds = Seconds(w.LastBeatAge),
        state = w.State,
        stopRequested = w.StopRequested,
    };

    public static object Schedule(ScheduleInfo s) => new
    {
        name = s.Name,
        cron = s.Cron,
        timeZone = s.TimeZone,
        type = s.Type,
        user = s.User,
        paused = s.Paused,
        overlap = s.Overlap,
        missedRuns = s.MissedRuns,
        nextFireAt = s.NextFireAt,
        lastFireAt = s.LastFireAt,
        lastFireKey = s.LastFireKey,
        lastFireStatus = s.LastFireStatus,
        lastFireOutcome = s.LastFireOutcome,
        skipCount = s.SkipCount,
        missedCount = s.MissedCount,
    };

    public static object Pause(QueuePause p) => new
    {
        scope = p.Scope,
        type = p.Type,
        user = p.User,
        since = p.Since,
        reason = p.Reason,
        pausedBy = p.PausedBy,
        waiting = p.Waiting,
    };
}
