using Dapper;

namespace PerfectQueue.Storage.SqlServer;

// Re-run and delete of finished tasks (Restart-PQTask, Remove-PQTask): one batch each. The change records what
// it touched in a table variable (OUTPUT ... INTO), then one SELECT says what it found. XACT_ABORT: a failure
// rolls the statement back whole.
internal sealed partial class SqlServerQueueStore
{
    private string FinishedTaskSql(string change) => $"""
        SET NOCOUNT ON;
        SET XACT_ABORT ON;
        DECLARE @now bigint = {NowSql};
        DECLARE @hit TABLE (id bigint NOT NULL);
        {change};
        SELECT CASE
            WHEN EXISTS (SELECT 1 FROM @hit) THEN N'{nameof(FinishedTaskResult.Done)}'
            WHEN EXISTS (SELECT 1 FROM {_t} WHERE {PortableSql.VisibleByKey("@now")}) THEN N'{nameof(FinishedTaskResult.Live)}'
            ELSE N'{nameof(FinishedTaskResult.NotFound)}' END;
        """;

    private string RestartSql => FinishedTaskSql($"""
        UPDATE {_t} SET {PortableSql.RestartSet("@now")}
        OUTPUT inserted.id INTO @hit (id)
        WHERE {PortableSql.FinishedByKey("@now")}
        """);
    // The deleted row's attempt rows go in the same transaction (the ids it recorded in @hit).
    private string RemoveSql => FinishedTaskSql($"""
        BEGIN TRANSACTION;
        DELETE FROM {_t}
        OUTPUT deleted.id INTO @hit (id)
        WHERE {PortableSql.FinishedByKey("@now")};
        DELETE FROM {QuotedAttempts} WHERE task_id IN (SELECT id FROM @hit);
        COMMIT TRANSACTION
        """);

    private static object RestartArgs(string key, long? runAtMs, long? delayMs) => new { key, runAt = runAtMs, delay = delayMs };
    private static object RemoveArgs(string key) => new { key };

    private IEnumerable<(string Name, string Sql, object? Parameters)> FinishedTaskStatements()
    {
        yield return ("restart", RestartSql, RestartArgs("k1", 1_767_225_600_000, null));
        yield return ("restart.delay", RestartSql, RestartArgs("k1", null, 60_000));
        yield return ("remove", RemoveSql, RemoveArgs("k1"));
    }

    // Not retried once sent: a second try of a committed change would find the task live (restart) or gone (remove).
    public Task<FinishedTaskResult> RestartAsync(string key, long? runAtMs, long? delayMs, CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
        Enum.Parse<FinishedTaskResult>(await c.ExecuteScalarAsync<string>(Command(RestartSql, RestartArgs(key, runAtMs, delayMs), null, ct)).ConfigureAwait(false)
            ?? nameof(FinishedTaskResult.NotFound)), RetrySafety.BeforeSent, ct));

    public Task<FinishedTaskResult> RemoveAsync(string key, CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
        Enum.Parse<FinishedTaskResult>(await c.ExecuteScalarAsync<string>(Command(RemoveSql, RemoveArgs(key), null, ct)).ConfigureAwait(false)
            ?? nameof(FinishedTaskResult.NotFound)), RetrySafety.BeforeSent, ct));
}
