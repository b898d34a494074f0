namespace PerfectQueue.Storage.Sqlite;

// The statement texts of the SQLite store, one per operation, and their inventory (Statements): the same
// operation names on every backend (StoreStatements), so one operation reads side by side across dialects.
// The batch statements (acquire, heartbeat, finish, retry, release, submit) are built once in the constructor.
// The clock is the parameter @now, read at the start of each transaction.
internal sealed partial class SqliteQueueStore
{
    private string RequestCancelSql => $"""
        UPDATE {_t} SET {PortableSql.CancelSet("@now")}
        WHERE {PortableSql.LiveByKey}
        RETURNING finished_at
        """;

    private string CleanupSql => $"""
        DELETE FROM {_t} WHERE id IN (
            SELECT id FROM {_t} WHERE finished_at IS NOT NULL AND purge_at <= @now ORDER BY purge_at LIMIT @limit)
        """;

    private string RegisterWorkerSql => $"""
        INSERT INTO {_w} (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
        VALUES (@Id, @Host, @Pid, @Processors, @Running, @now, @now, @now + @AliveMs, 0, @ProcessorType)
        ON CONFLICT (id) DO NOTHING
        RETURNING started_at
        """;

    private string BeatWorkerSql => $"""
        INSERT INTO {_w} (id, host, pid, processors, running, started_at, last_beat_at, alive_until, stop_requested, processor_type)
        VALUES (@Id, @Host, @Pid, @Processors, @Running, COALESCE(@StartedAt, @now), @now, @now + @AliveMs, 0, @ProcessorType)
        ON CONFLICT (id) DO UPDATE SET running = excluded.running, last_beat_at = excluded.last_beat_at, alive_until = excluded.alive_until,
            processor_type = excluded.processor_type
        RETURNING stop_requested
        """;

    private static readonly string NotExpired = PortableSql.NotExpired("@now");
    private static readonly string WorkerColumns = RowProjection.WorkerColumns("@now", Quote);

    private string GetSql => $"SELECT {_columns} FROM {_t} WHERE task_key = @key AND {NotExpired}";
    private string GetByIdsSql => $"SELECT {_columns} FROM {_t} WHERE id IN @ids";
    private string KeyVisibleSql => $"SELECT COUNT(*) FROM {_t} WHERE task_key = @key AND {NotExpired}";
    private string UpdateDataSql => PortableSql.UpdateData(_t);
    private string ForceFinishSql => PortableSql.ForceFinish(_t, "@now");
    private string SummarySql => TaskStateSql.SummarySql(_t, "@now", NotExpired);
    private string DueOrRunningSql => PauseSql.DueOrRunningSql(_t, _p, "@now");
    private string RemoveWorkerSql => PortableSql.RemoveWorker(_w);
    private string ListWorkersSql => $"SELECT {WorkerColumns} FROM {_w} ORDER BY started_at, id";
    private string ListRunningSql => PortableSql.Running(_t, "@now", Quote);
    private string RequestWorkerStopSql => $"UPDATE {_w} SET stop_requested = 1 WHERE id = @id RETURNING {WorkerColumns}";
    private string CleanupWorkersSql => PortableSql.CleanupWorkers(_w, "@now");

    // Dapper expands "IN @list" into one parameter per value.
    // Key patterns travel as a JSON array of GLOB patterns (case-sensitive, unlike LIKE).
    private string ListSql(TaskQuery q) =>
        $"SELECT {_columns} FROM {_t} WHERE {PortableSql.ListConditions(q, "@now", p => $"IN {p}", p => $"EXISTS (SELECT 1 FROM json_each({p}) AS kp WHERE task_key GLOB kp.value)")} " +
        PortableSql.ListOrder(q) + (PortableSql.ListLimitParameter(q) is { } limit ? $" LIMIT {limit}" : "");

    /// <summary>Every statement text this store sends for the task and session operations, by operation name (<see cref="StoreStatements"/>).</summary>
    public IEnumerable<(string Name, string Sql)> Statements()
    {
        yield return ("now", NowSql);
        yield return ("submit", _submitSql);
        yield return ("acquire", _acquireSql);
        yield return ("acquire.any_user", _anyUserSql);
        yield return ("acquire.without_users", _acquireWithoutUsersSql);
        yield return ("heartbeat", _heartbeatSql);
        yield return ("apply.finish", _finishSql);
        yield return ("apply.retry", _retrySql);
        yield return ("apply.release", _releaseSql);
        yield return ("update_data", UpdateDataSql);
        yield return ("get", GetSql);
        yield return ("get_by_ids", GetByIdsSql);
        foreach (var (name, q) in StoreStatements.SampleQueries()) yield return ($"list{name}", ListSql(q));
        yield return ("summarize", SummarySql);
        yield return ("due_or_running", DueOrRunningSql);
        yield return ("request_cancel", RequestCancelSql);
        yield return ("request_cancel.key_visible", KeyVisibleSql);
        yield return ("force_finish", ForceFinishSql);
        yield return ("cleanup", CleanupSql);
        yield return ("worker.register", RegisterWorkerSql);
        yield return ("worker.beat", BeatWorkerSql);
        yield return ("worker.remove", RemoveWorkerSql);
        yield return ("worker.list", ListWorkersSql);
        yield return ("worker.running", ListRunningSql);
        yield return ("worker.request_stop", RequestWorkerStopSql);
        yield return ("worker.cleanup", CleanupWorkersSql);
        foreach (var statement in ScheduleStatements()) yield return statement;
        foreach (var statement in PauseStatements()) yield return statement;
        foreach (var statement in FinishedTaskStatements()) yield return statement;
        yield return ("tables", ListQueueTablesSql);
        foreach (var statement in HistoryStatements()) yield return statement;
    }
}
