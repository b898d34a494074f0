namespace PerfectQueue.Storage;

/// <summary>
/// Schema version 3 on every backend: the columns it added to tables an older version created, and the
/// once-per-store step that adds them to such a table before the first statement that uses them
/// (docs/schema.md, "Upgrades").
/// </summary>
/// <remarks>
/// Versions: 1, the task table; 2, the sessions table <c>&lt;table&gt;_workers</c> beside it (created at the first
/// worker start for version-1 queues); 3, <see cref="TimeoutColumn"/> in the task table and
/// <see cref="ProcessorTypeColumn"/> in the sessions table. Both are nullable, so adding them is a change of the
/// catalog only, on every backend: no row is rewritten, and every stored task is kept as it was.
/// </remarks>
internal static class SchemaUpgrade
{
    /// <summary>The schema version this build creates and upgrades to.</summary>
    public const int Version = 3;

    /// <summary>The task's execution limit in milliseconds (NULL: none).</summary>
    public const string TimeoutColumn = "timeout_ms";

    /// <summary>The worker's processor type, 'thread' or 'process' (NULL: a worker older than version 3, which ran threads).</summary>
    public const string ProcessorTypeColumn = "processor_type";

    /// <summary>How long an upgrade waits for the table lock before it gives up (and the next command tries again).</summary>
    public const int LockTimeoutSeconds = 10;

    /// <summary>
    /// The error when the table was made (or upgraded) by a newer PerfectQueue: this build does not know what that
    /// version changed, so it touches nothing rather than guess.
    /// </summary>
    public static QueueNotInitializedException TooNew(string table, string where, int version) => new(
        $"The queue table '{table}' in {where} has schema version {version}, made by a newer PerfectQueue; this one knows versions up to {Version}. " +
        "Update the PerfectQueue module on this host (Update-PSResource PerfectQueue) to use this queue; nothing was changed.");

    /// <summary>
    /// The error when an older table lacks the version-3 columns and this database user may not add them:
    /// nothing is changed, and the fix is one Initialize-PQQueue by a user who may alter the table.
    /// </summary>
    public static QueueNotInitializedException CannotUpgrade(string table, string where, Exception inner) => new(
        $"The queue table '{table}' in {where} was created by an older PerfectQueue and lacks the columns of schema version {Version} " +
        $"({TimeoutColumn}, and {ProcessorTypeColumn} in '{table}_workers'), and this database user may not add them: {inner.Message.TrimEnd('.')}. " +
        "Run Initialize-PQQueue (or Queue.Initialize() from .NET) once as a user who may alter the table, such as its owner: it adds them and keeps every task.",
        inner);
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
