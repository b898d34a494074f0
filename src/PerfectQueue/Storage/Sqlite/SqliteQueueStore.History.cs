using Dapper;
using Microsoft.Data.Sqlite;

namespace PerfectQueue.Storage.Sqlite;

// Attempt history (<table>_attempts, schema version 6): rows written by ApplyAsync in the fenced write's transaction,
// and notices submitted there; the statements are HistorySql's, with the clock as @now.
internal sealed partial class SqliteQueueStore : IHistoryStore
{
    private string AttemptsTable => _table + HistorySql.TableSuffix;
    private string QuotedAttempts => Quote(AttemptsTable);

    private string ListAttemptsSql => HistorySql.List(QuotedAttempts, HistorySql.Columns(Quote));
    private string DeleteAttemptsSql => HistorySql.Delete(QuotedAttempts, p => $"IN {p}");

    // The attempts of the rows cleanup deletes next (CleanupSql's selection), in its transaction.
    private string CleanupAttemptsSql => $"""
        DELETE FROM {QuotedAttempts} WHERE task_id IN (
            SELECT id FROM {_t} WHERE finished_at IS NOT NULL AND purge_at <= @now ORDER BY purge_at LIMIT @limit)
        """;

    private IEnumerable<(string Name, string Sql)> HistoryStatements()
    {
        yield return ("apply.attempt", _insertAttemptSql);
        yield return ("apply.notice", _submitSql);
        yield return ("cleanup.attempts", CleanupAttemptsSql);
        yield return ("history.list", ListAttemptsSql);
        yield return ("history.delete", DeleteAttemptsSql);
    }

    // For the writes that applied: their attempt rows, and their notices (the submit statement stores nothing when the
    // key is taken, so an event noticed before costs nothing).
    private void RecordAttempts(SqliteConnection c, long now, IReadOnlyList<LeaseWrite> writes, HashSet<long> applied)
    {
        foreach (var w in writes)
        {
            if (!applied.Contains(w.Lease.Id)) continue;
            if (w.Attempt is { } a)
            {
                c.Prepared(_insertAttemptSql, [.. HistorySql.InsertArgs(w.Lease.Id, a), ("now", now)]).ExecuteNonQuery();
            }
            if (w.Notice is { } n)
                Submit(c, n, now);
        }
    }

    public Task<IReadOnlyList<AttemptRow>> ListAttemptsAsync(long taskId, long taskCreatedAt, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Read(c => (IReadOnlyList<AttemptRow>)c.Query<AttemptRow>(ListAttemptsSql, new { taskId, createdAt = taskCreatedAt }).AsList());
    });

    public Task<int> DeleteAttemptsAsync(IReadOnlyCollection<long> taskIds, CancellationToken ct) => Run(ct, () =>
    {
        if (taskIds.Count == 0) return 0;
        EnsureUpgraded(ct);
        return Write(ct, (c, _) => c.Execute(DeleteAttemptsSql, new { ids = taskIds }));
    });
}
