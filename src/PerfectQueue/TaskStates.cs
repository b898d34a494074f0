using System.Text.Json.Nodes;
using PerfectQueue.Storage;

namespace PerfectQueue;

/// <summary>
/// The state rules, in one place: how a stored row reads as a status, and what a lost lease means.
/// <see cref="TaskStateSql"/> states the same status rules as SQL for filtering; a test keeps them in step.
/// </summary>
internal static class TaskStates
{
    public static TaskState StatusOf(TaskRow row)
    {
        if (row.FinishedAt is not null) return TaskState.Finished;
        if (row.CancelRequested) return TaskState.CancelRequested;
        if (row.DueAt is { } due && due > row.Now) return row.LeaseToken is null ? TaskState.Scheduled : TaskState.Running;
        return TaskState.Waiting; // due, or its lease expired
    }

    /// <summary>True while a holder's lease on the row is current: Running, or CancelRequested and still held.</summary>
    public static bool IsHeld(TaskRow row) => row.FinishedAt is null && row.LeaseToken is not null && row.DueAt is { } due && due > row.Now;

    public static TaskOutcome? OutcomeOf(TaskRow row) =>
        row.Outcome is { } text && Enum.TryParse<TaskOutcome>(text, out var outcome) ? outcome : null;

    public static DateTimeOffset Time(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs);

    /// <param name="row">The row as read.</param>
    /// <param name="hosts">The hosts of worker sessions by id (<see cref="Queue.HostsOfRunningAsync"/>), for a held task's <see cref="TaskInfo.Host"/>; null: unknown.</param>
    public static TaskInfo ToInfo(TaskRow row, IReadOnlyDictionary<string, string>? hosts = null)
    {
        // A row whose data cannot be read still lists (a listing must not fail on one old or hand-written row);
        // DataError says why its Data is empty.
        JsonObject data;
        string? dataError = null;
        try { data = TaskData.Decode(row.Data); }
        catch (TaskDataException e) { data = []; dataError = e.Message; }
        return ToInfo(row, data, dataError, hosts);
    }

    private static TaskInfo ToInfo(TaskRow row, JsonObject data, string? dataError, IReadOnlyDictionary<string, string>? hosts)
    {
        // Who holds it and since when are shown only while the lease is current: after a finish, retry, release or
        // expiry the columns still name the last holder, which history (Get-PQTaskHistory) tells better.
        var held = IsHeld(row);
        var session = held ? row.LeasedBy : null;
        return new()
        {
            Key = row.Key,
            Type = row.Type,
            User = row.User,
            Status = StatusOf(row),
            Outcome = OutcomeOf(row),
            Message = row.Message,
            CreatedAt = Time(row.CreatedAt),
            Timeout = row.FinishedAt is null ? (row.DueAt is { } d ? Time(d) : null) : (row.PurgeAt is { } p ? Time(p) : null),
            FinishedAt = row.FinishedAt is { } f ? Time(f) : null,
            Data = data,
            DataError = dataError,
            Attempts = row.Attempts,
            MaxRunning = row.MaxRunning,
            CancelRequested = row.CancelRequested,
            Compressed = row.Data is { } bytes && TaskData.IsCompressed(bytes),
            ExecutionTimeout = ExecutionTimeout(row),
            Worker = session,
            Host = session is not null && hosts is not null && hosts.TryGetValue(session, out var host) ? host : null,
            StartedAt = held && row.LeasedAt is { } at ? Time(at) : null,
            RunningFor = held && row.LeasedAt is { } since ? TimeSpan.FromMilliseconds(Math.Max(0, row.Now - since)) : null,
            LastDuration = row.LastRunMs is { } ran ? TimeSpan.FromMilliseconds(Math.Max(0, ran)) : null,
        };
    }

    /// <summary>The execution limit stored with the task (null: none).</summary>
    public static TimeSpan? ExecutionTimeout(TaskRow row) => row.TimeoutMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null;

    /// <summary>
    /// Why a holder's fenced write or heartbeat did not apply, from the row as it is now (null: deleted). With
    /// the holder's token, a row that still carries it was lost by expiry alone (a heartbeat came too late).
    /// </summary>
    public static PreemptedException Preempted(string key, TaskRow? now, string operation, long? token = null)
    {
        var reason = now switch
        {
            null => PreemptionReason.Deleted,
            { FinishedAt: not null } when OutcomeOf(now) == TaskOutcome.ForceFinished => PreemptionReason.ForceFinished,
            { FinishedAt: not null } => PreemptionReason.Finished,
            _ when token is not null && now.LeaseToken == token => PreemptionReason.LeaseExpired,
            _ => PreemptionReason.Reacquired,
        };
        return Preempted(key, reason, operation);
    }

    public static PreemptedException Preempted(string key, PreemptionReason reason, string operation)
    {
        var why = reason switch
        {
            PreemptionReason.Deleted => "the task no longer exists",
            PreemptionReason.ForceFinished => "the task was force-finished",
            PreemptionReason.Finished => "the task was finished by somebody else",
            PreemptionReason.LeaseExpired => "its lease expired before this heartbeat",
            _ => "its lease expired and another worker acquired it",
        };
        return new PreemptedException($"Cannot {operation} task '{key}': this worker no longer holds it ({why}).", key, reason);
    }
}
