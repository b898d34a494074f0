using System.Text.Json.Nodes;

namespace PerfectQueue;

/// <summary>
/// The notice tasks the queue submits about events worth a look (docs/schedules.md, "Notices"): one method per event.
/// A notice is an ordinary task of type notice_type (default <see cref="DefaultType"/>) whose key is derived from the
/// event, so the event is submitted once however many workers see it. Its data uses generic field names, the same for
/// every event: event, key, type, message, attempts, schedule, fireTime, at (a field an event has no value for is left out).
/// </summary>
public static class Notices
{
    /// <summary>The task type of notices when the queue's notice_type is not set.</summary>
    public const string DefaultType = "pq.notice";

    /// <summary>Every notice key starts with this.</summary>
    public const string KeyPrefix = "pq.notice:";

    /// <summary>The longest text a notice key puts before a fire key ("pq.notice:skipped:"): the schedule name limit leaves room for it.</summary>
    internal const int LongestFireKeyPrefix = 18;

    /// <summary>A schedule fire was skipped: the task of its previous fire was unfinished (Overlap Skip).</summary>
    /// <remarks>fireKey: the key the skipped fire would have had; blockingKey: the unfinished task's key.</remarks>
    internal static TaskSubmission FireSkipped(string noticeType, string schedule, string fireKey, DateTimeOffset fireTime, string taskType, string blockingKey, DateTimeOffset at) =>
        Notice(noticeType, $"{KeyPrefix}skipped:{fireKey}", "FireSkipped", at, new()
        {
            ["schedule"] = schedule,
            ["fireTime"] = fireTime.UtcDateTime,
            ["key"] = blockingKey,
            ["type"] = taskType,
            ["message"] = $"Schedule '{schedule}' skipped its fire of {fireTime.UtcDateTime:u}: the task of its previous fire, '{blockingKey}', is not finished (Overlap Skip).",
        });

    /// <summary>
    /// Fire times of a schedule passed with no worker to fire them. <paramref name="firstMissedKey"/> is the key of the
    /// first missed time; <paramref name="ranKey"/> the fire submitted instead (MissedRuns RunOnce), or null.
    /// </summary>
    internal static TaskSubmission FireMissed(string noticeType, string schedule, string firstMissedKey, DateTimeOffset firstMissed, long count, bool countCapped,
        string taskType, string? ranKey, DateTimeOffset at)
    {
        var how = countCapped ? $"at least {count}" : count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var then = ranKey is null ? "they were not run (MissedRuns Skip)" : $"the latest ran once as '{ranKey}' (MissedRuns RunOnce)";
        return Notice(noticeType, $"{KeyPrefix}missed:{firstMissedKey}", "FireMissed", at, new()
        {
            ["schedule"] = schedule,
            ["fireTime"] = firstMissed.UtcDateTime,
            ["key"] = ranKey,
            ["type"] = taskType,
            ["count"] = count,
            ["message"] = $"Schedule '{schedule}' missed {how} fire time(s) from {firstMissed.UtcDateTime:u} while no worker fired it; {then}.",
        });
    }

    /// <summary>
    /// A task ended Failed: its attempts were spent (max_attempts). One notice per life of the task: the key carries the
    /// task's creation time, so a key resubmitted after its retention that fails again is noticed again (docs/notices.md).
    /// </summary>
    internal static TaskSubmission TaskFailed(string noticeType, string key, string taskType, DateTimeOffset createdAt, string? message, int attempts, DateTimeOffset at) =>
        Notice(noticeType, FailedKey(key, createdAt), "TaskFailed", at, new()
        {
            ["key"] = key,
            ["type"] = taskType,
            ["message"] = message,
            ["attempts"] = attempts,
        });

    /// <summary>The key of a TaskFailed notice: the task's key and creation time; a key too long for that is replaced by its SHA-256.</summary>
    internal static string FailedKey(string key, DateTimeOffset createdAt)
    {
        var prefix = $"{KeyPrefix}failed:{createdAt.ToUnixTimeMilliseconds()}:";
        if (prefix.Length + key.Length <= TaskText.MaxNameLength) return prefix + key;
        var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key))).ToLowerInvariant();
        return prefix + "sha256:" + hash;
    }

    private static TaskSubmission Notice(string noticeType, string key, string eventName, DateTimeOffset at, JsonObject fields)
    {
        var data = new JsonObject { ["event"] = eventName };
        foreach (var (name, value) in fields)
            if (value is not null) data[name] = value.DeepClone();
        data["at"] = at.UtcDateTime;
        return new TaskSubmission(key, noticeType, data);
    }
}
