using PerfectQueue.Storage;

namespace PerfectQueue;

// Attempt history and failure notices (docs/history.md, docs/notices.md).
public sealed partial class Queue
{
    /// <summary>
    /// The TaskFailed notice of a task whose attempts are spent, encoded like any submit, or null when notices are off
    /// (notice_type empty) or the notice cannot be built. A notice never costs the task's own write.
    /// </summary>
    internal NewTaskRow? FailureNotice(TaskRow row, string? message, int attempts)
    {
        if (string.IsNullOrEmpty(Config.NoticeType)) return null;
        // A notice that failed (a dead webhook) is not noticed: each would fail the same way, a chain without end.
        if (string.Equals(row.Type, Config.NoticeType, StringComparison.Ordinal)) return null;
        try
        {
            return Encode(Notices.TaskFailed(Config.NoticeType, row.Key, row.Type, TaskStates.Time(row.CreatedAt), TaskText.CleanMessage(message), attempts, DateTimeOffset.UtcNow));
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>
    /// The attempt history of a task by key (oldest first), with the attempts that never ended shown as Lost; null
    /// when no task has the key. Attempts of an earlier task of the same key (one past its retention) are not shown.
    /// </summary>
    public IReadOnlyList<TaskAttempt>? GetHistory(string key) => GetHistoryAsync(key).GetAwaiter().GetResult();

    public async Task<IReadOnlyList<TaskAttempt>?> GetHistoryAsync(string key, CancellationToken ct = default)
    {
        CheckKey(key);
        if (!TaskText.IsSendable(key)) return null;
        var row = await _store.GetAsync(key, ct).ConfigureAwait(false);
        if (row is null) return null;
        if (_store is not IHistoryStore history) throw new NotSupportedException($"The store {Description} keeps no attempt history.");
        var rows = await history.ListAttemptsAsync(row.Id, row.CreatedAt, ct).ConfigureAwait(false);
        return TaskAttempt.FromRows(row, rows);
    }
}
