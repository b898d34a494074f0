using System.Text.Json;
using Dapper;
using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

// Attempt history (<table>_attempts, schema version 6). ApplySql inserts the attempt rows and notices of the writes
// whose fence holds right after it locked those rows, before its updates clear the fence: the same transaction, the
// same rows.
internal sealed partial class MySqlQueueStore : IHistoryStore
{
    private string AttemptsTable => _table + HistorySql.TableSuffix;
    private string QuotedAttempts => Quote(AttemptsTable);

    private const string Text = "LONGTEXT CHARACTER SET utf8mb4";

    private string InsertAttemptsSql => $"""
        INSERT INTO {QuotedAttempts} (task_id, task_created_at, task_key, attempt, started_at, ended_at, host, session_id, processor, outcome, message, output)
        SELECT a.wid, a.ca, a.k, a.n, a.st, {Now}, a.h, a.s, a.p, a.o, a.m, a.txt
        FROM JSON_TABLE(@attempts, '$[*]' COLUMNS ({LeaseColumns}, ca BIGINT PATH '$[2]', k {Text} PATH '$[3]', n INT PATH '$[4]', st BIGINT PATH '$[5]',
            h {Text} PATH '$[6]', s {Text} PATH '$[7]', p {Text} PATH '$[8]', o {Text} PATH '$[9]', m {Text} PATH '$[10]', txt {Text} PATH '$[11]')) AS a
        JOIN {_t} AS t ON t.id = a.wid
        WHERE t.lease_token = a.wtok AND t.finished_at IS NULL
        """;

    // Insert-if-absent: a key already taken (the event was noticed) is a no-op update, never a duplicate-key error.
    private string InsertNoticesSql => $"""
        INSERT INTO {_t} (task_key, task_type, user_name, data, max_running, created_at, due_at, attempts, cancel_requested, timeout_ms)
        SELECT s.k, s.ty, s.u, FROM_BASE64(s.d), s.mr, {Now}, COALESCE(s.ra, {Now} + COALESCE(s.dl, 0)), 0, 0, s.tm
        FROM JSON_TABLE(@notices, '$[*]' COLUMNS (
            n FOR ORDINALITY, wid BIGINT PATH '$.wid', wtok BIGINT PATH '$.wtok',
            k {Text} PATH '$.key', ty {Text} PATH '$.type', u {Text} PATH '$.user', d LONGTEXT CHARACTER SET ascii PATH '$.data',
            mr INT PATH '$.maxRunning', ra BIGINT PATH '$.runAt', dl BIGINT PATH '$.delay', tm BIGINT PATH '$.timeout')) AS s
        JOIN {_t} AS f ON f.id = s.wid
        WHERE f.lease_token = s.wtok AND f.finished_at IS NULL
        ORDER BY s.n
        ON DUPLICATE KEY UPDATE {_t}.task_key = {_t}.task_key
        """;

    private string CleanupPickSql => $"SELECT id FROM {_t} WHERE finished_at IS NOT NULL AND purge_at <= {Now} ORDER BY purge_at LIMIT @limit FOR UPDATE SKIP LOCKED";
    private string CleanupByIdsSql => $"""
        DELETE FROM {QuotedAttempts} WHERE task_id IN @ids;
        DELETE FROM {_t} WHERE id IN @ids AND finished_at IS NOT NULL;
        """;
    private string ListAttemptsSql => HistorySql.List(QuotedAttempts, HistorySql.Columns(Quote));
    private string DeleteAttemptsSql => HistorySql.Delete(QuotedAttempts, p => $"IN {p}");

    private IEnumerable<(string Name, string Sql)> HistoryStatements()
    {
        yield return ("apply.history", ApplySql(true, true, true, attempts: true, notices: true));
        yield return ("cleanup.pick", CleanupPickSql);
        yield return ("cleanup.attempts", CleanupByIdsSql);
        yield return ("history.list", ListAttemptsSql);
        yield return ("history.delete", DeleteAttemptsSql);
    }

    // The parameters of ApplySql's history statements beside the write's own.
    private static DynamicParameters HistoryArgs(IReadOnlyList<LeaseWrite> writes, object write)
    {
        var p = new DynamicParameters(write);
        p.Add("attempts", JsonSerializer.Serialize(writes.Where(w => w.Attempt is not null).Select(w => new object?[]
        {
            w.Lease.Id, w.Lease.Token, w.Attempt!.TaskCreatedAt, w.Attempt.TaskKey, w.Attempt.Attempt, w.Attempt.StartedAt,
            w.Attempt.Host, w.Attempt.Session, w.Attempt.Processor, w.Attempt.Outcome, w.Attempt.Message, w.Attempt.Output,
        }), Json));
        p.Add("notices", JsonSerializer.Serialize(writes.Where(w => w.Notice is not null).Select(w => new
        {
            wid = w.Lease.Id, wtok = w.Lease.Token, key = w.Notice!.Key, type = w.Notice.Type, user = w.Notice.User, data = Convert.ToBase64String(w.Notice.Data),
            maxRunning = w.Notice.MaxRunning, runAt = w.Notice.RunAtMs, delay = w.Notice.DelayMs, timeout = w.Notice.TimeoutMs,
        }), Json));
        return p;
    }

    // Cleanup locks the rows it deletes first, so their attempts go with exactly them, in one transaction.
    private async Task<int> CleanupWithAttemptsAsync(MySqlConnection c, int limit, CancellationToken ct)
    {
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        var ids = (await c.QueryAsync<long>(new CommandDefinition(CleanupPickSql, new { limit }, tx, cancellationToken: ct)).ConfigureAwait(false)).AsList();
        if (ids.Count > 0) await c.ExecuteAsync(new CommandDefinition(CleanupByIdsSql, new { ids }, tx, cancellationToken: ct)).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return ids.Count; // locked since the pick: every one was deleted
    }

    public async Task<IReadOnlyList<AttemptRow>> ListAttemptsAsync(long taskId, long taskCreatedAt, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<AttemptRow>)(await c.QueryAsync<AttemptRow>(Command(ListAttemptsSql, new { taskId, createdAt = taskCreatedAt }, ct)).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<int> DeleteAttemptsAsync(IReadOnlyCollection<long> taskIds, CancellationToken ct)
    {
        if (taskIds.Count == 0) return 0;
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.ExecuteAsync(Command(DeleteAttemptsSql, new { ids = taskIds.ToArray() }, ct)), RetrySafety.Always, ct).ConfigureAwait(false);
    }
}
