using PerfectQueue.Storage.Relational;

namespace PerfectQueue.Storage;

/// <summary>
/// The schema version this build creates and upgrades to, the names version 3 added, and the errors of an upgrade
/// (docs/schema.md, "Upgrades"). Each backend lists its versions as <see cref="SchemaStep"/>s in its
/// <c>&lt;X&gt;QueueStore.Schema.cs</c>, run by <see cref="SchemaMigrator"/>.
/// </summary>
/// <remarks>
/// Versions: 1, the task table, its indexes and perfectqueue_schema; 2, the sessions table <c>&lt;table&gt;_workers</c>
/// beside it; 3, <see cref="TimeoutColumn"/> in the task table and <see cref="ProcessorTypeColumn"/> in the sessions
/// table. Both are nullable, so adding them is a change of the catalog only, on every backend: no row is rewritten,
/// and every stored task is kept as it was. 4, the schedules table <c>&lt;table&gt;_schedules</c> (docs/schedules.md); 5, the pauses table <c>&lt;table&gt;_pauses</c> (docs/pause.md).
/// 6, the attempts table <c>&lt;table&gt;_attempts</c> (docs/history.md). 7, <see cref="LeasedByColumn"/>, <see cref="LeasedAtColumn"/>
/// and <see cref="LastRunColumn"/> in the task table (who runs a task, since when, how long its last attempt ran), nullable like version 3's.
/// 8, <see cref="TraceParentColumn"/> in the task table (the submit's trace context, docs/telemetry.md), nullable too.
/// </remarks>
internal static class SchemaUpgrade
{
    /// <summary>The schema version this build creates and upgrades to: the last step of every backend's list (a test checks).</summary>
    public const int Version = 8;

    /// <summary>The task's execution limit in milliseconds (NULL: none).</summary>
    public const string TimeoutColumn = "timeout_ms";

    /// <summary>The worker's processor type, 'thread' or 'process' (NULL: a worker older than version 3, which ran threads).</summary>
    public const string ProcessorTypeColumn = "processor_type";

    /// <summary>Version 7: the worker session holding the task's current lease (NULL: never leased, or by a holder that is no worker).</summary>
    public const string LeasedByColumn = "leased_by";

    /// <summary>Version 7: when the current (or last) lease was taken, database clock in ms: the start of the attempt.</summary>
    public const string LeasedAtColumn = "leased_at";

    /// <summary>Version 7: how long the last ended attempt ran (its finish or retry minus its lease), in ms; NULL: none ended yet.</summary>
    public const string LastRunColumn = "last_run_ms";

    /// <summary>Version 8: the W3C traceparent of the activity that submitted the task (NULL: none was current).</summary>
    public const string TraceParentColumn = "trace_parent";

    /// <summary>Version 8's description in every dialect's step list.</summary>
    public const string TraceParentDescription = "the column " + TraceParentColumn;

    /// <summary>Version 7's description in every dialect's step list.</summary>
    public const string RunColumnsDescription = "the columns " + LeasedByColumn + ", " + LeasedAtColumn + " and " + LastRunColumn;

    /// <summary>Version 5: the pauses table <c>&lt;table&gt;_pauses</c> (Suspend-PQQueue, docs/pause.md).</summary>
    public const string PausesDescription = "the pauses table";

    /// <summary>How long a schema change waits for the schema lock and the table's lock before it gives up (and the next command tries again).</summary>
    public const int LockTimeoutSeconds = 10;

    /// <summary>
    /// The error when the table was made (or upgraded) by a newer PerfectQueue: this build does not know what that
    /// version changed, so it touches nothing rather than guess.
    /// </summary>
    public static QueueNotInitializedException TooNew(string table, string where, int version, int known = Version) => new(
        $"The queue table '{table}' in {where} has schema version {version}, made by a newer PerfectQueue; this one knows versions up to {known}. " +
        "Update the PerfectQueue module on this host (Update-PSResource PerfectQueue) to use this queue; nothing was changed.");

    /// <summary>
    /// The error when an older table lacks what later versions added and this database user may not add it:
    /// nothing is changed, and the fix is one Initialize-PQQueue by a user who may alter the table.
    /// </summary>
    public static QueueNotInitializedException CannotUpgrade(string table, string where, int version, IReadOnlyList<SchemaStep> missing, Exception inner) => new(
        $"The queue table '{table}' in {where} was created by an older PerfectQueue (schema version {version}) and lacks what later versions added " +
        $"({string.Join("; ", missing.Select(s => $"{s.Version}: {s.Description}"))}), and this database user may not add it: {inner.Message.TrimEnd('.')}. " +
        "Run Initialize-PQQueue (or Queue.Initialize() from .NET) once as a user who may alter the table, such as its owner: it adds them and keeps every task.",
        inner);

    /// <summary>The sessions table went missing after the upgrade (dropped by hand): Initialize-PQQueue makes it again.</summary>
    public static QueueNotInitializedException WorkersTableMissing(string table, string where) => new(
        $"The sessions table '{table}_workers' of the queue table '{table}' does not exist in {where}. " +
        "Run Initialize-PQQueue (or Queue.Initialize() from .NET) once as a user who may create tables: it makes it again and keeps every task.");
}

/// <summary>
/// Runs a store's upgrade check once per store object: until it succeeds, every caller runs it (one at a time);
/// after, no caller does. A failed check is tried again by the next caller.
/// </summary>
internal sealed class UpgradeOnce
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile bool _done;

    public bool IsDone => _done;

    /// <summary>The schema was just created or upgraded by this store (Initialize): nothing left to check.</summary>
    public void MarkDone() => _done = true;

    /// <param name="check">Brings the table up to date; returns false when there was nothing to check yet (no table: the operation itself reports it).</param>
    /// <param name="ct">Cancels the wait for another caller's check.</param>
    public async Task EnsureAsync(Func<Task<bool>> check, CancellationToken ct)
    {
        if (_done) return;
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!_done && await check().ConfigureAwait(false)) _done = true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The same for synchronous stores (SQLite).</summary>
    public void Ensure(Func<bool> check, CancellationToken ct)
    {
        if (_done) return;
        _gate.Wait(ct);
        try
        {
            if (!_done && check()) _done = true;
        }
        finally
        {
            _gate.Release();
        }
    }
}
