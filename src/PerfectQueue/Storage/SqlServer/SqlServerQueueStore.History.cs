using System.Text.Json;
using Dapper;

namespace PerfectQueue.Storage.SqlServer;

// Attempt history (<table>_attempts, schema version 6): the apply batch, when its writes carry attempts or notices,
// inserts them for the leases it applied (@done) before its COMMIT; cleanup deletes the attempts of the rows it deleted
// in its transaction.
internal sealed partial class SqlServerQueueStore : IHistoryStore
{
    private string AttemptsTable => _table + HistorySql.TableSuffix;
    private string QuotedAttempts => Quote(AttemptsTable);

    private const string CommitApply = "COMMIT TRANSACTION;";

    private string HistoryInsertsSql => $"""
        INSERT INTO {QuotedAttempts} (task_id, task_created_at, task_key, attempt, started_at, ended_at, host, session_id, processor, outcome, message, output)
        SELECT a.wid, a.ca, a.k, a.n, a.st, @now, a.h, a.s, a.p, a.o, a.m, a.txt
        FROM OPENJSON(@attempts) WITH (
            wid bigint '$.id', ca bigint '$.createdAt', k nvarchar(max) '$.key', n int '$.attempt', st bigint '$.startedAt', h nvarchar(max) '$.host',
            s nvarchar(max) '$.session', p nvarchar(max) '$.processor', o nvarchar(max) '$.outcome', m nvarchar(max) '$.message', txt nvarchar(max) '$.output') AS a
        WHERE a.wid IN (SELECT id FROM @done);
        INSERT INTO {_t} (task_key, task_type, user_name, data, max_running, created_at, due_at, attempts, cancel_requested, timeout_ms)
        SELECT s.k, s.ty, s.u, CONVERT(varbinary(max), s.d, 1), s.mr, @now, COALESCE(s.ra, @now + COALESCE(s.dl, 0)), 0, 0, s.tm
        FROM OPENJSON(@notices) WITH (
            wid bigint '$.wid', k nvarchar(max) '$.key', ty nvarchar(max) '$.type', u nvarchar(max) '$.user', d varchar(max) '$.data',
            mr int '$.maxRunning', ra bigint '$.runAt', dl bigint '$.delay', tm bigint '$.timeout') AS s
        WHERE s.wid IN (SELECT id FROM @done)
          AND NOT EXISTS (SELECT 1 FROM {_t} AS e WITH (UPDLOCK, HOLDLOCK) WHERE e.task_key = s.k COLLATE {Exact});

        """;

    // Insert-if-absent for notices: the key-range lock (UPDLOCK, HOLDLOCK) keeps a concurrent insert of the same key out
    // until commit, so a notice noticed twice is skipped, never a duplicate-key error that would undo the task's write.
    private string ApplyWithHistorySql
    {
        get
        {
            var at = _applySql.LastIndexOf(CommitApply, StringComparison.Ordinal);
            return _applySql[..at] + HistoryInsertsSql + _applySql[at..];
        }
    }

    private string CleanupWithAttemptsSql => $"""
        SET NOCOUNT ON;
        SET XACT_ABORT ON;
        DECLARE @now bigint = {NowSql};
        DECLARE @gone TABLE (id bigint NOT NULL);
        BEGIN TRANSACTION;
        DELETE TOP (@limit) FROM {_t} WITH (ROWLOCK, READPAST, READCOMMITTEDLOCK)
        OUTPUT deleted.id INTO @gone (id)
        WHERE finished_at IS NOT NULL AND purge_at <= @now;
        DELETE FROM {QuotedAttempts} WHERE task_id IN (SELECT id FROM @gone);
        COMMIT TRANSACTION;
        SELECT COUNT(*) FROM @gone;
        """;

    private string ListAttemptsSql => HistorySql.List(QuotedAttempts, HistorySql.Columns(Quote)) + ";";
    private string DeleteAttemptsSql => $"""
        SET NOCOUNT ON;
        DELETE FROM {QuotedAttempts} WHERE task_id IN (SELECT v FROM OPENJSON(@ids) WITH (v bigint '$'));
        SELECT @@ROWCOUNT;
        """;

    private static object ApplyHistoryArgs(IReadOnlyList<LeaseWrite> writes) => new
    {
        finishes = JsonSerializer.Serialize(writes.Where(w => w.Kind == LeaseWriteKind.Finish)
            .Select(w => new { id = w.Lease.Id, token = w.Lease.Token, outcome = w.Outcome, message = w.Message, retention = w.RetentionMs, uncounted = w.Uncounted ? 1 : 0 }), Json),
        retries = JsonSerializer.Serialize(writes.Where(w => w.Kind == LeaseWriteKind.Retry)
            .Select(w => new { id = w.Lease.Id, token = w.Lease.Token, delay = w.DelayMs, message = w.Message }), Json),
        releases = JsonSerializer.Serialize(writes.Where(w => w.Kind == LeaseWriteKind.Release)
            .Select(w => new { id = w.Lease.Id, token = w.Lease.Token }), Json),
        attempts = JsonSerializer.Serialize(writes.Where(w => w.Attempt is not null).Select(w => new
        {
            id = w.Lease.Id, createdAt = w.Attempt!.TaskCreatedAt, key = w.Attempt.TaskKey, attempt = w.Attempt.Attempt, startedAt = w.Attempt.StartedAt,
            host = w.Attempt.Host, session = w.Attempt.Session, processor = w.Attempt.Processor, outcome = w.Attempt.Outcome, message = w.Attempt.Message, output = w.Attempt.Output,
        }), Json),
        // One notice per key in a batch: two rows of one key in one INSERT would collide with each other.
        notices = JsonSerializer.Serialize(writes.Where(w => w.Notice is not null).DistinctBy(w => w.Notice!.Key, StringComparer.Ordinal).Select(w => new
        {
            wid = w.Lease.Id, key = w.Notice!.Key, type = w.Notice.Type, user = w.Notice.User, data = "0x" + Convert.ToHexString(w.Notice.Data),
            maxRunning = w.Notice.MaxRunning, runAt = w.Notice.RunAtMs, delay = w.Notice.DelayMs, timeout = w.Notice.TimeoutMs,
        }), Json),
    };

    private static object AttemptListArgs(long taskId, long createdAt) => new { taskId, createdAt };

    private IEnumerable<(string Name, string Sql, object? Parameters)> HistoryStatements()
    {
        var lease = new Lease(42, 0x3FFF_FFFF_FFFF_0001);
        yield return ("apply.history", ApplyWithHistorySql, ApplyHistoryArgs(
        [
            new LeaseWrite(lease, LeaseWriteKind.Finish, "Failed", "gave up", RetentionMs: 600_000)
            {
                Attempt = HistorySql.SampleRecord() with { Outcome = "Failed" },
                Notice = new NewTaskRow("pq.notice:failed:1767225600000:nightly-1", "pq.notice", null, [0x7B, 0x7D], null, null, null),
            },
            new LeaseWrite(new Lease(43, 7), LeaseWriteKind.Retry, Message: "boom", DelayMs: 300_000) { Attempt = HistorySql.SampleRecord() },
            new LeaseWrite(new Lease(44, 8), LeaseWriteKind.Release) { Attempt = HistorySql.SampleRecord() with { Outcome = "Released" } },
        ]));
        yield return ("cleanup.attempts", CleanupWithAttemptsSql, CleanupArgs(1000));
        yield return ("history.list", ListAttemptsSql, AttemptListArgs(42, 1_767_225_600_000));
        yield return ("history.delete", DeleteAttemptsSql, IdsArgs([42, 43]));
    }

    public async Task<IReadOnlyList<AttemptRow>> ListAttemptsAsync(long taskId, long taskCreatedAt, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<AttemptRow>)(await c.QueryAsync<AttemptRow>(Command(ListAttemptsSql, AttemptListArgs(taskId, taskCreatedAt), null, ct)).ConfigureAwait(false)).AsList(),
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<int> DeleteAttemptsAsync(IReadOnlyCollection<long> taskIds, CancellationToken ct)
    {
        if (taskIds.Count == 0) return 0;
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.ExecuteScalarAsync<int>(Command(DeleteAttemptsSql, IdsArgs(taskIds), null, ct)), RetrySafety.Always, ct).ConfigureAwait(false);
    }
}
