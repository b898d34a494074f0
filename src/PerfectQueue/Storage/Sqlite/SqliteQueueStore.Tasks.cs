using System.Text.Json;
using Dapper;

namespace PerfectQueue.Storage.Sqlite;

// Re-run and delete of finished tasks (Restart-PQTask, Remove-PQTask), and the key patterns of a listing.
// Each runs in one write transaction (BEGIN IMMEDIATE): the change, then, when it found no finished row,
// whether a live one has the key.
internal sealed partial class SqliteQueueStore
{
    private string RestartSql => $"{PortableSql.Restart(_t, "@now")} RETURNING id";
    private string RemoveSql => $"{PortableSql.RemoveFinished(_t, "@now")} RETURNING id";
    // Run first, in RemoveSql's transaction: the attempts of the row it deletes (every life of that id).
    private string RemoveAttemptsSql => $"DELETE FROM {QuotedAttempts} WHERE task_id IN (SELECT id FROM {_t} WHERE {PortableSql.FinishedByKey("@now")})";
    private string KeyLiveSql => $"SELECT COUNT(*) FROM {_t} WHERE {PortableSql.VisibleByKey("@now")}";

    private static string? KeyPatternsJson(TaskQuery q) =>
        q.KeyPatterns is { Count: > 0 } p ? JsonSerializer.Serialize(p.Select(KeyPatternSql.Glob)) : null;

    private IEnumerable<(string Name, string Sql)> FinishedTaskStatements()
    {
        yield return ("restart", RestartSql);
        yield return ("restart.key_live", KeyLiveSql);
        yield return ("remove", RemoveSql);
        yield return ("remove.attempts", RemoveAttemptsSql);
        yield return ("remove.key_live", KeyLiveSql);
    }

    public Task<FinishedTaskResult> RestartAsync(string key, long? runAtMs, long? delayMs, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Write(ct, (c, now) => c.Query<long>(RestartSql, new { key, now, runAt = runAtMs, delay = delayMs }).Any()
            ? FinishedTaskResult.Done
            : LiveOrNotFound(c, key, now));
    });

    public Task<FinishedTaskResult> RemoveAsync(string key, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct); // the attempts table must exist
        // The task's attempt rows go first, in this transaction, so a removed task leaves no history behind.
        return Write(ct, (c, now) =>
        {
            c.Execute(RemoveAttemptsSql, new { key, now });
            return c.Query<long>(RemoveSql, new { key, now }).Any()
                ? FinishedTaskResult.Done
                : LiveOrNotFound(c, key, now);
        });
    });

    private FinishedTaskResult LiveOrNotFound(Microsoft.Data.Sqlite.SqliteConnection c, string key, long now) =>
        c.ExecuteScalar<long>(KeyLiveSql, new { key, now }) > 0 ? FinishedTaskResult.Live : FinishedTaskResult.NotFound;
}
