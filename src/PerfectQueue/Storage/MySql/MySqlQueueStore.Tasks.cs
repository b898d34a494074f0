using Dapper;

namespace PerfectQueue.Storage.MySql;

// Re-run and delete of finished tasks (Restart-PQTask, Remove-PQTask): one command each, one transaction. The
// change, then what it found: ROW_COUNT() says whether it matched a finished row (the connection reports found
// rows), and else whether a live task has the key. RestartSet reads no column it assigns, so MySQL's
// left-to-right SET gives the row every other backend gives.
internal sealed partial class MySqlQueueStore
{
    private string FinishedTaskSql(string change) => $"""
        START TRANSACTION;
        {change};
        SELECT CASE
            WHEN ROW_COUNT() > 0 THEN '{nameof(FinishedTaskResult.Done)}'
            WHEN EXISTS (SELECT 1 FROM {_t} WHERE {PortableSql.VisibleByKey(Now)}) THEN '{nameof(FinishedTaskResult.Live)}'
            ELSE '{nameof(FinishedTaskResult.NotFound)}' END;
        COMMIT;
        """;

    private string RestartSql => FinishedTaskSql(PortableSql.Restart(_t, Now));
    // The row's attempt rows go first, in this transaction (ROW_COUNT() then reads the task's DELETE).
    private string RemoveSql => FinishedTaskSql($"""
        DELETE FROM {QuotedAttempts} WHERE task_id IN (SELECT id FROM {_t} WHERE {PortableSql.FinishedByKey(Now)});
        {PortableSql.RemoveFinished(_t, Now)}
        """);

    private IEnumerable<(string Name, string Sql)> FinishedTaskStatements()
    {
        yield return ("restart", RestartSql);
        yield return ("remove", RemoveSql);
    }

    // Not retried once sent: a second try of a committed change would find the task live (restart) or gone (remove).
    public async Task<FinishedTaskResult> RestartAsync(string key, long? runAtMs, long? delayMs, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return Enum.Parse<FinishedTaskResult>(await Run(c => c.ExecuteScalarAsync<string>(Command(RestartSql, new { key, runAt = runAtMs, delay = delayMs }, ct)),
            RetrySafety.BeforeSent, ct).ConfigureAwait(false) ?? nameof(FinishedTaskResult.NotFound));
    }

    public async Task<FinishedTaskResult> RemoveAsync(string key, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false); // the attempts table must exist
        return Enum.Parse<FinishedTaskResult>(await Run(c => c.ExecuteScalarAsync<string>(Command(RemoveSql, new { key }, ct)),
            RetrySafety.BeforeSent, ct).ConfigureAwait(false) ?? nameof(FinishedTaskResult.NotFound));
    }
}
