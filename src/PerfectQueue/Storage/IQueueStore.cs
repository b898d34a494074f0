namespace PerfectQueue.Storage;

// The backend contract. A store runs SQL and reports facts (which rows it changed, what it read);
// the queue engine (Queue, AcquiredTask, TaskStates) decides what those facts mean. Every time a store
// uses comes from the database clock, in milliseconds since the Unix epoch.

/// <summary>A task row as stored, plus the database's now at the moment it was read.</summary>
internal sealed class TaskRow
{
    public long Id { get; set; }
    public string Key { get; set; } = "";
    public string Type { get; set; } = "";
    public string? User { get; set; }
    public byte[]? Data { get; set; }
    public int? MaxRunning { get; set; }
    public long CreatedAt { get; set; }
    /// <summary>Live tasks: when due (not leased) or when the lease expires (leased). Null when finished.</summary>
    public long? DueAt { get; set; }
    /// <summary>The current holder's fencing token; null when nobody holds the task.</summary>
    public long? LeaseToken { get; set; }
    public int Attempts { get; set; }
    public bool CancelRequested { get; set; }
    public long? FinishedAt { get; set; }
    public string? Outcome { get; set; }
    public string? Message { get; set; }
    /// <summary>Finished tasks: when cleanup may delete the row (and the key becomes free).</summary>
    public long? PurgeAt { get; set; }
    /// <summary>The execution limit given at submit (Submit-PQTask -Timeout), in milliseconds; null: none. Schema version 3.</summary>
    public long? TimeoutMs { get; set; }
    /// <summary>The worker session that took the current (or last) lease; null: a holder that is no worker, or a row from before schema version 7.</summary>
    public string? LeasedBy { get; set; }
    /// <summary>When the current (or last) lease was taken: the attempt's start. Schema version 7.</summary>
    public long? LeasedAt { get; set; }
    /// <summary>How long the last ended attempt ran, in ms (null: none ended since schema version 7). Schema version 7.</summary>
    public long? LastRunMs { get; set; }
    /// <summary>The W3C traceparent of the activity that submitted the task (null: none). Schema version 8.</summary>
    public string? TraceParent { get; set; }
    /// <summary>The database clock when this row was read.</summary>
    public long Now { get; set; }
}

/// <summary>A running task's key and the worker session that holds it (<see cref="IQueueStore.ListRunningAsync"/>).</summary>
internal sealed class RunningRow
{
    public string Key { get; set; } = "";
    public string Session { get; set; } = "";
}

/// <summary>A new task, encoded. <paramref name="TimeoutMs"/>: its execution limit (null: none).</summary>
internal sealed record NewTaskRow(string Key, string Type, string? User, byte[] Data, int? MaxRunning, long? RunAtMs, long? DelayMs, long? TimeoutMs = null, string? TraceParent = null);

/// <summary>A holder's proof: the row id and the lease token it was given.</summary>
internal readonly record struct Lease(long Id, long Token);

/// <summary>What a holder writes when it gives a task back.</summary>
internal enum LeaseWriteKind { Finish, Retry, Release }

/// <summary>
/// One fenced write: applied only if <see cref="Lease"/> is still current. Finish uses Outcome, Message,
/// RetentionMs and Uncounted (the acquisition was no attempt: a finish at acquire takes it off the attempts,
/// as a release does); Retry uses DelayMs and Message; Release uses nothing else.
/// </summary>
internal sealed record LeaseWrite(Lease Lease, LeaseWriteKind Kind, string? Outcome = null, string? Message = null, long DelayMs = 0, long RetentionMs = 0, bool Uncounted = false)
{
    private readonly string? _message = TaskText.CleanMessage(Message);

    /// <summary>The message, made storable once here for every lease write (<see cref="TaskText.CleanMessage"/>).</summary>
    public string? Message { get => _message; init => _message = TaskText.CleanMessage(value); }

    /// <summary>The attempt this write ends, recorded in <c>&lt;table&gt;_attempts</c> in the same transaction when the write applies (null: none).</summary>
    public AttemptRecord? Attempt { get; init; }

    /// <summary>A notice task submitted in the same transaction when the write applies, unless its key is taken (docs/notices.md).</summary>
    public NewTaskRow? Notice { get; init; }

    /// <summary>The message of a task ended Cancelled before it started (a cancel asked while it was held, then handed back or waiting).</summary>
    public const string CancelRequestedMessage = "cancel requested";

    /// <summary>
    /// Ends a leased task that was never started as Cancelled: the acquisition is no attempt (Uncounted). Used by acquire for a
    /// task whose cancel was asked while held earlier, and by a worker for a prefetched task cancelled while it waited.
    /// </summary>
    public static LeaseWrite CancelledBeforeStart(Lease lease, long retentionMs) =>
        new(lease, LeaseWriteKind.Finish, nameof(TaskOutcome.Cancelled), CancelRequestedMessage, RetentionMs: retentionMs, Uncounted: true);
}

/// <summary>A lease whose deadline was extended, and whether cancel has been asked for its task.</summary>
internal readonly record struct ExtendedLease(long Id, bool CancelRequested);

/// <summary>How many visible tasks have one status, type and user; OldestDueAt is set for waiting tasks.</summary>
internal sealed class SummaryRow
{
    public string State { get; set; } = "";
    public string Type { get; set; } = "";
    public string? User { get; set; }
    public long Count { get; set; }
    public long? OldestDueAt { get; set; }
}

/// <summary>What a cancel request by key found and did.</summary>
internal enum CancelRequestResult { NotFound, AlreadyFinished, CancelledBeforeStart, Flagged }

/// <summary>
/// Row predicates a store translates to SQL. A key matches <see cref="Keys"/> or <see cref="KeyPatterns"/>;
/// <see cref="Newest"/> orders by creation, newest first, and is never set with <see cref="First"/>.
/// </summary>
internal sealed record TaskQuery(
    IReadOnlyCollection<string>? Keys,
    IReadOnlyCollection<TaskState>? Statuses,
    IReadOnlyCollection<string>? Types,
    IReadOnlyCollection<string>? Users,
    int? First,
    IReadOnlyCollection<TaskOutcome>? Outcomes = null,
    IReadOnlyCollection<KeyPattern>? KeyPatterns = null,
    int? Newest = null,
    TaskPage? Page = null);

/// <summary>
/// A page of a listing, newest first by id: at most <see cref="Size"/> rows with an id below <see cref="BeforeId"/>
/// (null: from the newest). Keyset paging on the primary key, so a page costs the same at any depth of a large table.
/// Never set with First or Newest.
/// </summary>
internal sealed record TaskPage(int Size, long? BeforeId);

/// <summary>What a restart or a removal by key found and did (finished tasks only; a live one is left alone).</summary>
internal enum FinishedTaskResult { NotFound, Live, Done }

/// <summary>A worker session row as stored (times in Unix ms from the database clock), plus the database's now.</summary>
internal sealed class WorkerSessionRow
{
    public string Id { get; set; } = "";
    public string Host { get; set; } = "";
    public int Pid { get; set; }
    public int Processors { get; set; }
    public int Running { get; set; }
    public long StartedAt { get; set; }
    public long LastBeatAt { get; set; }
    /// <summary>The last beat plus the worker's alive time: after it, the session is dead.</summary>
    public long AliveUntil { get; set; }
    public bool StopRequested { get; set; }
    /// <summary>'thread' or 'process' as the worker wrote it; null for rows of workers older than schema version 3.</summary>
    public string? ProcessorType { get; set; }
    /// <summary>The database clock when this row was read.</summary>
    public long Now { get; set; }
}

/// <summary>
/// What a worker writes about itself at registration and at every beat. <see cref="StartedAt"/> is what
/// registration returned (null if it failed): a beat that finds no row creates it again with it.
/// </summary>
internal sealed record WorkerBeat(string Id, string Host, int Pid, int Processors, int Running, long AliveMs, long? StartedAt = null)
{
    /// <summary>How the worker runs handlers ('thread' or 'process'), shown by Get-PQWorker; written at registration and every beat.</summary>
    public string ProcessorType { get; init; } = "thread";
}

internal interface IQueueStore : IDisposable
{
    /// <summary>Where the store points, safe to show (no secrets).</summary>
    string Description { get; }

    /// <summary>
    /// Creates the schema if missing and brings a table of an older schema version up to this one (idempotent);
    /// <paramref name="force"/> drops it first. Without it, each store brings an older table up to date by itself
    /// before the first statement that needs the newer columns (<see cref="SchemaUpgrade"/>).
    /// </summary>
    Task InitializeAsync(bool force, CancellationToken ct);

    /// <summary>True when the queue's table exists.</summary>
    Task<bool> IsInitializedAsync(CancellationToken ct);

    /// <summary>The database clock.</summary>
    Task<long> NowAsync(CancellationToken ct);

    /// <summary>
    /// Inserts tasks in one round trip. Per task: true if stored, false if the key is taken by a live task
    /// or by a finished one within its retention (a finished one past retention is replaced).
    /// </summary>
    Task<bool[]> SubmitAsync(IReadOnlyList<NewTaskRow> tasks, CancellationToken ct);

    /// <summary>
    /// Leases up to <paramref name="max"/> due tasks in one statement: due order, users with spare
    /// max_running capacity first, no user's max_running exceeded. Each row gets its own new lease token,
    /// a deadline of now + <paramref name="aliveMs"/>, one more attempt, and <paramref name="session"/> and now as who
    /// leased it and when (<see cref="PortableSql.LeaseStart"/>). Rows come back in the order chosen.
    /// </summary>
    Task<IReadOnlyList<TaskRow>> AcquireAsync(int max, long aliveMs, string? session, CancellationToken ct);

    /// <summary>Extends every still-current lease to now + <paramref name="aliveMs"/>; returns those extended.</summary>
    Task<IReadOnlyList<ExtendedLease>> HeartbeatAsync(IReadOnlyList<Lease> leases, long aliveMs, CancellationToken ct);

    /// <summary>Applies fenced writes in one transaction; returns the ids whose lease was current (and so written).</summary>
    Task<IReadOnlySet<long>> ApplyAsync(IReadOnlyList<LeaseWrite> writes, CancellationToken ct);

    /// <summary>
    /// True when <paramref name="error"/>, thrown by a write, was caused by a value the write carried (text this
    /// database cannot store): the same write again cannot succeed, and the engine sends it once more without its
    /// message. False for anything that may pass with time (connections, locks, timeouts).
    /// </summary>
    bool IsValueError(Exception error) => StoreErrors.IsEncodingError(error);

    /// <summary>Replaces a held task's data; false if the lease is not current.</summary>
    Task<bool> UpdateDataAsync(Lease lease, byte[] data, CancellationToken ct);

    Task<TaskRow?> GetAsync(string key, CancellationToken ct);
    Task<IReadOnlyList<TaskRow>> GetByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken ct);
    Task<IReadOnlyList<TaskRow>> ListAsync(TaskQuery query, CancellationToken ct);

    /// <summary>
    /// Cancel by key. A task nobody currently holds is finished as Cancelled at once, so it is never handed out;
    /// a held one is flagged for its holder, who sees the flag at its next heartbeat.
    /// </summary>
    Task<CancelRequestResult> RequestCancelAsync(string key, string message, long retentionMs, CancellationToken ct);

    /// <summary>Finishes a live task whatever its state; false if no live task has this key.</summary>
    Task<bool> ForceFinishAsync(string key, string outcome, string? message, long retentionMs, CancellationToken ct);

    /// <summary>Counts of visible tasks per status, type and user, and the database clock they were read at.</summary>
    Task<(IReadOnlyList<SummaryRow> Rows, long Now)> SummarizeAsync(CancellationToken ct);

    /// <summary>
    /// True when any live task is due or running (leased, expired or not): everything but finished and
    /// scheduled ones. A worker's UntilEmpty asks this before it stops. SQL: <see cref="TaskStateSql.DueOrRunningSql"/>.
    /// </summary>
    Task<bool> AnyDueOrRunningAsync(CancellationToken ct);

    /// <summary>
    /// Waits until a submit may have made work available, or the timeout passes (false). Backends without
    /// notifications just wait: callers poll after it either way.
    /// </summary>
    Task<bool> WaitForSubmitAsync(TimeSpan timeout, CancellationToken ct);

    /// <summary>Deletes up to <paramref name="limit"/> finished rows past their retention; returns how many.</summary>
    Task<int> CleanupAsync(int limit, CancellationToken ct);

    // ---- worker sessions: one row per running worker in <table>_workers ----

    /// <summary>
    /// Inserts a session row (started and last beat now, alive until now + AliveMs); returns the database's
    /// now as its start, or null if the id is taken. Creates the sessions table when the queue table exists
    /// without it (a queue created by schema version 1).
    /// </summary>
    Task<long?> RegisterWorkerAsync(WorkerBeat session, CancellationToken ct);

    /// <summary>
    /// Records a beat (last beat now, alive until now + AliveMs, the running count); a missing row is
    /// inserted again. Returns whether a stop was requested for the session.
    /// </summary>
    Task<bool> BeatWorkerAsync(WorkerBeat beat, CancellationToken ct);

    /// <summary>Deletes a session row (a worker's clean exit); nothing happens if it is gone.</summary>
    Task RemoveWorkerAsync(string id, CancellationToken ct);

    /// <summary>Every session row, live and dead, in start order. Empty when the sessions table does not exist yet.</summary>
    Task<IReadOnlyList<WorkerSessionRow>> ListWorkersAsync(CancellationToken ct);

    /// <summary>
    /// The keys of the running tasks (leased, lease not expired) that a worker session holds, oldest lease first.
    /// SQL: <see cref="PortableSql.Running"/>.
    /// </summary>
    Task<IReadOnlyList<RunningRow>> ListRunningAsync(CancellationToken ct);

    /// <summary>Flags a session for a graceful stop; returns the row after the change, or null if no session has the id.</summary>
    Task<WorkerSessionRow?> RequestWorkerStopAsync(string id, CancellationToken ct);

    /// <summary>Deletes sessions dead for at least <paramref name="deadForMs"/> (alive_until at or before now minus it); returns how many.</summary>
    Task<int> CleanupWorkersAsync(long deadForMs, CancellationToken ct);

    // ---- pauses: one row per pause in <table>_pauses (schema version 5, docs/pause.md) ----

    /// <summary>
    /// Adds the pause of a scope (<paramref name="type"/> and <paramref name="user"/>, <see cref="PauseSql.Any"/> for
    /// any); returns the pause as stored, and whether this call made it (false: it was there, and is kept as it was).
    /// </summary>
    Task<(PauseRow Pause, bool Created)> AddPauseAsync(string type, string user, string? reason, string? pausedBy, CancellationToken ct);

    /// <summary>Removes exactly the pause of this scope; returns it, or null if the scope was not paused.</summary>
    Task<PauseRow?> RemovePauseAsync(string type, string user, CancellationToken ct);

    /// <summary>Every pause, oldest first; with <paramref name="counts"/>, each with how many waiting tasks it holds back.</summary>
    Task<IReadOnlyList<PauseRow>> ListPausesAsync(bool counts, CancellationToken ct);

    /// <summary>How many waiting tasks some pause holds back, each counted once.</summary>
    Task<long> CountPausedAsync(CancellationToken ct);

    // ---- re-run and delete finished tasks (Restart-PQTask, Remove-PQTask) ----

    /// <summary>
    /// Makes a visible finished task live again in one statement: due at <paramref name="runAtMs"/>, or now plus
    /// <paramref name="delayMs"/> (0 when both are null), attempts 0, outcome, message, finish and purge times
    /// cleared, no lease, no cancel flag; key, type, user, data and limits kept. A finished row past its retention
    /// is not visible (as for GetAsync): NotFound. SQL: <see cref="PortableSql.RestartSet"/>.
    /// </summary>
    Task<FinishedTaskResult> RestartAsync(string key, long? runAtMs, long? delayMs, CancellationToken ct);

    /// <summary>Deletes a visible finished task by key, freeing the key before its retention ends. SQL: <see cref="PortableSql.RemoveFinished"/>.</summary>
    Task<FinishedTaskResult> RemoveAsync(string key, CancellationToken ct);

    /// <summary>
    /// The database's queue tables: names perfectqueue_schema records whose table exists, sorted, at most
    /// <see cref="Relational.QueueTables.Limit"/>. Empty when there is no perfectqueue_schema (or no database file).
    /// </summary>
    Task<IReadOnlyList<string>> ListQueueTablesAsync(CancellationToken ct);
}

/// <summary>A pause as stored: '' (<see cref="PauseSql.Any"/>) in Type or User stands for any.</summary>
internal sealed class PauseRow
{
    public string Type { get; set; } = "";
    public string User { get; set; } = "";
    public long PausedAt { get; set; }
    public string? Reason { get; set; }
    public string? PausedBy { get; set; }
    /// <summary>Waiting tasks it holds back, when listed with counts (else 0).</summary>
    public long Waiting { get; set; }
}

/// <summary>Value errors every store shares: the client could not encode the text it was asked to send.</summary>
internal static class StoreErrors
{
    public static bool IsEncodingError(Exception error)
    {
        for (var e = error; e is not null; e = e.InnerException)
            if (e is System.Text.EncoderFallbackException or System.Text.DecoderFallbackException) return true;
        return false;
    }
}
