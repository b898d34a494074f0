using Dapper;

namespace PerfectQueue.Storage.Postgres;

// Re-run and delete of finished tasks (Restart-PQTask, Remove-PQTask): one statement each. The change runs in
// a CTE; the outer SELECT reads the snapshot from before it, where a task it did not change is either live or
// missing.
internal sealed partial class PostgresQueueStore
{
    private string FinishedTaskSql(string change, string? alsoCte = null) => $"""
        WITH done AS ({change} RETURNING id){(alsoCte is null ? "" : ",\n" + alsoCte)}
        SELECT CASE WHEN EXISTS (SELECT 1 FROM done) THEN '{nameof(FinishedTaskResult.Done)}'
                    WHEN EXISTS (SELECT 1 FROM {_t} WHERE {PortableSql.VisibleByKey(Now)}) THEN '{nameof(FinishedTaskResult.Live)}'
                    ELSE '{nameof(FinishedTaskResult.NotFound)}' END
        """;

    private string RestartSql => FinishedTaskSql(PortableSql.Restart(_t, Now, "@runAt::bigint", "@delay::bigint"));
    // The deleted row's attempt rows go in the same statement (a second data-modifying CTE on done's ids).
    private string RemoveSql => FinishedTaskSql(PortableSql.RemoveFinished(_t, Now),
        $"attempts AS (DELETE FROM {QuotedAttempts} WHERE task_id IN (SELECT id FROM done))");

    private IEnumerable<(string Name, string Sql)> FinishedTaskStatements()
    {
        yield return ("restart", RestartSql);
        yield return ("remove", RemoveSql);
    }

    public async Task<FinishedTaskResult> RestartAsync(string key, long? runAtMs, long? delayMs, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return Enum.Parse<FinishedTaskResult>(await Run(c => c.ExecuteScalarAsync<string>(RestartSql, new { key, runAt = runAtMs, delay = delayMs }),
            RetrySafety.BeforeSent, ct).ConfigureAwait(false) ?? nameof(FinishedTaskResult.NotFound)); // a second try of a committed restart would find it live
    }

    public async Task<FinishedTaskResult> RemoveAsync(string key, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false); // the attempts table must exist
        return Enum.Parse<FinishedTaskResult>(await Run(c => c.ExecuteScalarAsync<string>(RemoveSql, new { key }),
            RetrySafety.BeforeSent, ct).ConfigureAwait(false) ?? nameof(FinishedTaskResult.NotFound));
    }
}
