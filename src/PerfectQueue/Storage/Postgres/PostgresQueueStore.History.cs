using Dapper;
using Npgsql;

namespace PerfectQueue.Storage.Postgres;

// Attempt history (<table>_attempts, schema version 6). Each kind of fenced write carries the attempt rows of its
// writes as arrays, inserted by a data-modifying CTE for exactly the leases the UPDATE applied: one statement, as before.
internal sealed partial class PostgresQueueStore : IHistoryStore
{
    private string AttemptsTable => _table + HistorySql.TableSuffix;
    private string QuotedAttempts => Quote(AttemptsTable);

    private string ListAttemptsSql => HistorySql.List(QuotedAttempts, HistorySql.Columns(Quote));
    private string DeleteAttemptsSql => HistorySql.Delete(QuotedAttempts, p => $"= ANY({p})");

    // The rows cleanup deletes and their attempts, in one statement.
    private string CleanupWithAttemptsSql => $"""
        WITH gone AS ({CleanupSql} RETURNING id),
        attempts AS (DELETE FROM {QuotedAttempts} WHERE task_id IN (SELECT id FROM gone))
        SELECT count(*)::int FROM gone
        """;

    /// <summary>A fenced write statement (ending in RETURNING id) that also records the attempts (@a_*) of the leases it applied.</summary>
    private string WithAttempts(string fencedWrite) => $"""
        WITH done AS ({fencedWrite}),
        recorded AS (
            INSERT INTO {QuotedAttempts} (task_id, task_created_at, task_key, attempt, started_at, ended_at, host, session_id, processor, outcome, message, output)
            SELECT a.tid, a.ca, a.k, a.n, a.st, {Now}, a.h, a.s, a.p, a.o, a.m, a.txt
            FROM unnest(@a_ids::bigint[], @a_created::bigint[], @a_keys::text[], @a_attempts::int[], @a_started::bigint[], @a_hosts::text[],
                        @a_sessions::text[], @a_processors::text[], @a_outcomes::text[], @a_messages::text[], @a_outputs::text[])
                AS a(tid, ca, k, n, st, h, s, p, o, m, txt)
            WHERE a.tid IN (SELECT id FROM done))
        SELECT id FROM done
        """;

    // The attempt records (@a_*) of the writes that have one; writes without (endings at acquire) use the plain statement.
    private static (string, object?)[] AttemptArgs(IReadOnlyList<LeaseWrite> writes)
    {
        var recorded = writes.Where(w => w.Attempt is not null).ToList();
        return
        [
            ("a_ids", recorded.Select(w => w.Lease.Id).ToArray()),
            ("a_created", recorded.Select(w => w.Attempt!.TaskCreatedAt).ToArray()),
            ("a_keys", recorded.Select(w => w.Attempt!.TaskKey).ToArray()),
            ("a_attempts", recorded.Select(w => w.Attempt!.Attempt).ToArray()),
            ("a_started", recorded.Select(w => w.Attempt!.StartedAt).ToArray()),
            ("a_hosts", recorded.Select(w => w.Attempt!.Host).ToArray()),
            ("a_sessions", recorded.Select(w => w.Attempt!.Session).ToArray()),
            ("a_processors", recorded.Select(w => w.Attempt!.Processor).ToArray()),
            ("a_outcomes", recorded.Select(w => w.Attempt!.Outcome).ToArray()),
            ("a_messages", recorded.Select(w => w.Attempt!.Message).ToArray()),
            ("a_outputs", recorded.Select(w => w.Attempt!.Output).ToArray()),
        ];
    }

    // The notices of the writes that applied, by the submit statement: a key already taken stores nothing and fails nothing.
    private async Task SubmitNoticesAsync(NpgsqlConnection c, NpgsqlTransaction? tx, IReadOnlyList<LeaseWrite> writes, HashSet<long> applied)
    {
        var notices = writes.Where(w => w.Notice is not null && applied.Contains(w.Lease.Id)).Select(w => w.Notice!)
            .DistinctBy(n => n.Key, StringComparer.Ordinal).ToList();
        if (notices.Count == 0) return;
        await using var command = _submit.Command(c, tx, SubmitArgs(notices, _channel));
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    private IEnumerable<(string Name, string Sql)> HistoryStatements()
    {
        yield return ("apply.finish.attempts", WithAttempts(FinishSql));
        yield return ("apply.retry.attempts", WithAttempts(RetrySql));
        yield return ("apply.release.attempts", WithAttempts(ReleaseSql));
        yield return ("apply.notice", _submitSql);
        yield return ("cleanup.attempts", CleanupWithAttemptsSql);
        yield return ("history.list", ListAttemptsSql);
        yield return ("history.delete", DeleteAttemptsSql);
    }

    public async Task<IReadOnlyList<AttemptRow>> ListAttemptsAsync(long taskId, long taskCreatedAt, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<AttemptRow>)(await c.QueryAsync<AttemptRow>(ListAttemptsSql, new { taskId, createdAt = taskCreatedAt }).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<int> DeleteAttemptsAsync(IReadOnlyCollection<long> taskIds, CancellationToken ct)
    {
        if (taskIds.Count == 0) return 0;
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.ExecuteAsync(DeleteAttemptsSql, new { ids = taskIds.ToArray() }), RetrySafety.Always, ct).ConfigureAwait(false);
    }
}
