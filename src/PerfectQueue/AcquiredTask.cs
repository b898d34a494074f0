using System.Diagnostics;
using System.Text.Json.Nodes;
using PerfectQueue.Storage;
using PerfectQueue.Telemetry;

namespace PerfectQueue;

/// <summary>
/// Where a task's writes go when its holder is in another process: a child process of a process-mode worker runs
/// the handler with an <see cref="AcquiredTask"/> whose writes are applied by the parent with its real, fenced one.
/// Errors come back as the same exception types.
/// </summary>
internal interface IRemoteTaskHolder
{
    Task FinishAsync(TaskOutcome outcome, string? message, CancellationToken ct);
    /// <summary>Returns (another attempt will come, the task ended Failed instead).</summary>
    Task<bool> RetryAsync(string? message, TimeSpan? delay, CancellationToken ct);
    Task ReleaseAsync(CancellationToken ct);
    /// <summary>The new data as JSON text (already checked by the caller).</summary>
    Task UpdateDataAsync(string json, CancellationToken ct);
    Task<HeartbeatResult> HeartbeatAsync(TimeSpan? aliveTime, CancellationToken ct);
}

/// <summary>
/// A task leased to this holder. Every write (finish, retry, release, update data, heartbeat) is fenced by
/// the lease token: once another worker holds the task, they throw <see cref="PreemptedException"/>.
/// </summary>
public sealed class AcquiredTask
{
    private readonly CancellationTokenSource _cancellation = new();
    private readonly CancellationTokenSource _stopRequested = new();
    private readonly TaskRow _row;
    private JsonObject? _data;
    private string? _gaveBack; // what this holder did with the task, once it did
    private readonly IRemoteTaskHolder? _remote;

    internal AcquiredTask(Queue queue, TaskRow row, TimeSpan aliveTime)
    {
        Queue = queue;
        _row = row;
        Lease = new Lease(row.Id, row.LeaseToken!.Value);
        LeaseExpiresAt = TaskStates.Time(row.Now) + aliveTime;
    }

    /// <summary>
    /// A task held by another process (a process-mode worker's parent): every write goes to <paramref name="remote"/>.
    /// It has no queue; <paramref name="row"/> carries what a handler reads (key, type, data as stored, attempt ...).
    /// </summary>
    internal AcquiredTask(TaskRow row, DateTimeOffset leaseExpiresAt, IRemoteTaskHolder remote)
    {
        Queue = null!;
        _row = row;
        _remote = remote;
        Lease = new Lease(row.Id, row.LeaseToken ?? 0);
        LeaseExpiresAt = leaseExpiresAt;
    }

    /// <summary>The queue this task was acquired from (null for a task held by another process, see <see cref="IRemoteTaskHolder"/>).</summary>
    internal Queue Queue { get; }
    internal Lease Lease { get; }
    /// <summary>The data as stored (maybe gzip) and the creation time in the database's units: what a child process is sent.</summary>
    internal byte[]? StoredData => _row.Data;
    internal long StoredCreatedAt => _row.CreatedAt;

    public string Key => _row.Key;
    public string Type => _row.Type;
    public string? User => _row.User;
    public int? MaxRunning => _row.MaxRunning;
    public DateTimeOffset CreatedAt => TaskStates.Time(_row.CreatedAt);
    /// <summary>1 for the first attempt; released attempts do not count.</summary>
    public int Attempt => _row.Attempts;
    /// <summary>The message left by the previous attempt (its error, when it was retried).</summary>
    public string? LastMessage => _row.Message;
    /// <summary>The W3C traceparent of the activity that submitted the task (null: none was current then); a handler's run links to it.</summary>
    public string? TraceParent => _row.TraceParent;
    /// <summary>The task's own execution limit, given at submit (null: none); the worker applies the tightest of its, the route's and this.</summary>
    public TimeSpan? Timeout => TaskStates.ExecutionTimeout(_row);
    /// <summary>The task's data (decoded on first use; gzip detected by itself).</summary>
    /// <exception cref="TaskDataException">the stored data cannot be read (a row from before submit checked data).</exception>
    public JsonObject Data => _data ??= DecodeData();

    private JsonObject DecodeData()
    {
        try { return TaskData.Decode(_row.Data); }
        catch (TaskDataException e) { throw new TaskDataException($"Task '{Key}': {e.Message} Finish it (Complete-PQTask -Key, TaskReference.ForceFinish) or resubmit it with valid data.", Key, e); }
    }
    /// <summary>When the lease ends unless a heartbeat extends it (database clock).</summary>
    public DateTimeOffset LeaseExpiresAt { get; private set; }

    /// <summary>True once a heartbeat saw a cancel request (or the task was lost).</summary>
    public bool IsCancellationRequested => _cancellation.IsCancellationRequested;
    /// <summary>Cancelled when a heartbeat sees a cancel request, a force finish or a preemption.</summary>
    public CancellationToken CancellationToken => _cancellation.Token;
    /// <summary>
    /// True once the worker running this task began a graceful stop (Ctrl+C, SIGTERM, Stop-PQWorker, Stop-Job): a long
    /// handler may checkpoint (UpdateData) and Release() the task, which another worker then goes on with.
    /// </summary>
    public bool IsStopRequested => _stopRequested.IsCancellationRequested;
    /// <summary>Cancelled when the worker begins a graceful stop (see <see cref="IsStopRequested"/>).</summary>
    public CancellationToken StopRequestedToken => _stopRequested.Token;
    /// <summary>When the worker stops this attempt for running too long (null: no timeout). Worker clock, not the database's.</summary>
    public DateTimeOffset? Deadline { get; internal set; }

    /// <summary>Set when a heartbeat found the task lost; every later write would fail.</summary>
    public PreemptedException? LostBecause { get; private set; }
    /// <summary>True once this holder finished, retried or released the task.</summary>
    public bool IsCompleted => _gaveBack is not null;
    /// <summary>What this holder did with the task: "finished", "retried", "released", or null while it holds it.</summary>
    public string? Completion => _gaveBack;
    /// <summary>The outcome this holder finished the task with (null until it finishes it).</summary>
    public TaskOutcome? FinishedAs { get; private set; }

    public override string ToString() => $"{Key} ({Type}) attempt {Attempt}";

    /// <summary>
    /// Throws <see cref="CancelRequestedException"/> once a heartbeat saw a cancel request (or
    /// <see cref="PreemptedException"/> if the task was lost): a handler's way to stop at a safe point.
    /// </summary>
    public void ThrowIfCancellationRequested()
    {
        if (LostBecause is { } lost) throw TaskStates.Preempted(Key, lost.Reason, "continue");
        if (IsCancellationRequested) throw new CancelRequestedException($"Cancel was requested for task '{Key}'.", Key);
    }

    // ---- finishing ----

    /// <summary>Finishes the task as Succeeded (the original's finish!).</summary>
    public void Finish(string? message = null) => FinishAsync(TaskOutcome.Succeeded, message).GetAwaiter().GetResult();
    public void Finish(TaskOutcome outcome, string? message = null) => FinishAsync(outcome, message).GetAwaiter().GetResult();
    public Task FinishAsync(string? message = null, CancellationToken ct = default) => FinishAsync(TaskOutcome.Succeeded, message, ct);

    public Task FinishAsync(TaskOutcome outcome, string? message, CancellationToken ct = default)
    {
        if (outcome == TaskOutcome.ForceFinished) throw new ArgumentException("ForceFinished is for TaskReference.ForceFinish, not for a holder.", nameof(outcome));
        return FinishCoreAsync(outcome, message, ct);
    }

    private async Task FinishCoreAsync(TaskOutcome outcome, string? message, CancellationToken ct)
    {
        if (_remote is { } remote)
        {
            await RemoteAsync("finish", () => remote.FinishAsync(outcome, message, ct)).ConfigureAwait(false);
            FinishedAs = outcome;
            _gaveBack = "finished";
            return;
        }
        await WriteAsync(new LeaseWrite(Lease, LeaseWriteKind.Finish, outcome.ToString(), message, RetentionMs: Queue.RetentionMs)
            { Attempt = AttemptRecordOf(outcome.ToString(), message) }, "finish", ct).ConfigureAwait(false); // a holder's own Failed is its decision: no notice (docs/notices.md)
        FinishedAs = outcome;
    }

    /// <summary>
    /// Gives the task back for another attempt after <paramref name="delay"/> (default: the retry policy's).
    /// When max_attempts is spent the task finishes as Failed instead, keeping <paramref name="message"/>.
    /// Returns true if another attempt will come, false if the task ended Failed.
    /// </summary>
    public bool Retry(string? message = null, TimeSpan? delay = null) => RetryAsync(message, delay).GetAwaiter().GetResult();

    /// <summary>Retries after <paramref name="delay"/>, keeping the last message (see <see cref="Retry(string?, TimeSpan?)"/>).</summary>
    public bool Retry(TimeSpan delay) => RetryAsync(null, delay).GetAwaiter().GetResult();

    public Task<bool> RetryAsync(TimeSpan delay, CancellationToken ct = default) => RetryAsync(null, delay, ct);

    public async Task<bool> RetryAsync(string? message = null, TimeSpan? delay = null, CancellationToken ct = default)
    {
        if (delay is { } d && d < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(delay), delay, "A retry delay must not be negative.");
        if (_remote is { } remote)
        {
            var again = false;
            await RemoteAsync("retry", async () => again = await remote.RetryAsync(message, delay, ct).ConfigureAwait(false)).ConfigureAwait(false);
            if (!again) FinishedAs = TaskOutcome.Failed;
            _gaveBack = "retried";
            return again;
        }
        var policy = Queue.RetryPolicy;
        if (policy.IsLastAttempt(Attempt))
        {
            var text = $"gave up after {Attempt} attempt{(Attempt == 1 ? "" : "s")}" + (message is null ? "" : $": {message}");
            await WriteAsync(new LeaseWrite(Lease, LeaseWriteKind.Finish, nameof(TaskOutcome.Failed), text, RetentionMs: Queue.RetentionMs)
                { Attempt = AttemptRecordOf(nameof(TaskOutcome.Failed), text), Notice = Queue.FailureNotice(_row, text, Attempt) }, "retry", ct).ConfigureAwait(false);
            FinishedAs = TaskOutcome.Failed;
            return false;
        }
        var wait = delay ?? policy.DelayAfter(Attempt);
        await WriteAsync(new LeaseWrite(Lease, LeaseWriteKind.Retry, Message: message, DelayMs: (long)wait.TotalMilliseconds)
            { Attempt = AttemptRecordOf(RetriedAs ?? "Retried", message) }, "retry", ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>Gives the task back at once, without counting the attempt (for shutdown).</summary>
    public void Release() => ReleaseAsync().GetAwaiter().GetResult();
    public Task ReleaseAsync(CancellationToken ct = default) => _remote is { } remote
        ? RemoteAsync("release", async () => { await remote.ReleaseAsync(ct).ConfigureAwait(false); _gaveBack = "released"; })
        : WriteAsync(new LeaseWrite(Lease, LeaseWriteKind.Release) { Attempt = AttemptRecordOf("Released", null) }, "release", ct);

    /// <summary>Replaces the task's data (kept for the next attempt).</summary>
    public void UpdateData(object? data) => UpdateDataAsync(data).GetAwaiter().GetResult();

    public async Task UpdateDataAsync(object? data, CancellationToken ct = default)
    {
        EnsureHeld("update data of");
        var json = TaskData.ToJsonObject(data);
        if (_remote is { } remote)
        {
            // Checked here as the parent will (size, depth), so a bad value fails in the handler's own process.
            var text = json.ToJsonString();
            TaskData.Encode(json, DataCompression.None);
            await RemoteAsync("update data of", () => remote.UpdateDataAsync(text, ct)).ConfigureAwait(false);
            _data = json;
            return;
        }
        var bytes = TaskData.Encode(json, TaskData.IsCompressed(_row.Data ?? []) ? DataCompression.Gzip : Queue.Config.Compression);
        if (!await Queue.Store.UpdateDataAsync(Lease, bytes, ct).ConfigureAwait(false))
            throw await LostAsync("update data of", ct).ConfigureAwait(false);
        _row.Data = bytes;
        _data = json;
    }

    /// <summary>
    /// Extends the lease (by alive_time, or <paramref name="aliveTime"/>). Returns Alive or CancelRequested;
    /// throws <see cref="PreemptedException"/> if the task was lost. A worker with many tasks uses
    /// <see cref="Queue.Heartbeat"/> to beat them all in one round trip.
    /// </summary>
    public HeartbeatResult Heartbeat(TimeSpan? aliveTime = null) => HeartbeatAsync(aliveTime).GetAwaiter().GetResult();

    public async Task<HeartbeatResult> HeartbeatAsync(TimeSpan? aliveTime = null, CancellationToken ct = default)
    {
        EnsureHeld("heartbeat");
        if (_remote is { } remote)
        {
            var result = HeartbeatResult.Alive;
            await RemoteAsync("heartbeat", async () => result = await remote.HeartbeatAsync(aliveTime, ct).ConfigureAwait(false)).ConfigureAwait(false);
            if (result == HeartbeatResult.CancelRequested) Cancel();
            return result;
        }
        var report = (await Queue.HeartbeatAsync([this], aliveTime, ct).ConfigureAwait(false))[0];
        if (report.Error is { } error) throw error;
        return report.Result;
    }

    // ---- attempt history (docs/history.md) ----

    /// <summary>What the handler of this attempt wrote, kept with the attempt's history row (processors fill it).</summary>
    internal AttemptOutput Output { get; } = new();

    /// <summary>The worker session running this attempt (null: a holder that is no worker, such as Receive-PQTask).</summary>
    internal string? WorkerSession { get; set; }

    /// <summary>How the attempt ran: thread, process or compiled (set by the processor); null: client (no worker).</summary>
    internal string? ProcessorName { get; set; }

    /// <summary>The history outcome of a retry, when it is not plain Retried (TimedOut: the worker stopped it at its timeout).</summary>
    internal string? RetriedAs { get; set; }

    private AttemptRecord AttemptRecordOf(string outcome, string? message) => new(_row.CreatedAt, _row.Key, _row.Attempts, _row.Now,
        Environment.MachineName, WorkerSession, ProcessorName ?? "client", outcome, TaskText.CleanMessage(message), Output.Text);

    private async Task WriteAsync(LeaseWrite write, string operation, CancellationToken ct)
    {
        EnsureHeld(operation);
        using var activity = QueueTelemetry.Source.HasListeners() ? QueueTelemetry.Source.StartActivity($"perfectqueue {operation}", ActivityKind.Client) : null;
        activity?.SetTag(QueueTelemetry.TableTag, Queue.Config.Table).SetTag(QueueTelemetry.KeyTag, Key).SetTag(QueueTelemetry.TypeTag, Type)
            .SetTag(QueueTelemetry.AttemptTag, Attempt).SetTag(QueueTelemetry.OutcomeTag, write.Kind == LeaseWriteKind.Retry ? "Retried" : write.Outcome ?? write.Kind.ToString());
        bool applied;
        try
        {
            applied = await Queue.Writes.WriteAsync(write, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (write.Message is not null && Queue.Store.IsValueError(e))
        {
            // The database refused the message itself (it cannot pass with time): the same fenced write without
            // it. Letting the lease expire instead would run a task that already succeeded again, for ever.
            applied = await Queue.Writes.WriteAsync(write with { Message = TaskText.UnstorableNote(e), Attempt = write.Attempt is { } a ? a with { Message = TaskText.UnstorableNote(e), Output = null } : null }, ct).ConfigureAwait(false);
        }
        if (!applied)
        {
            activity?.SetStatus(ActivityStatusCode.Error, "lost: this holder's lease is no longer current");
            throw await LostAsync(operation, ct).ConfigureAwait(false);
        }
        _gaveBack = operation switch { "finish" => "finished", "retry" => "retried", _ => "released" };
    }

    // A write applied by the remote holder; a loss it reports is this holder's loss too.
    private async Task RemoteAsync(string operation, Func<Task> write)
    {
        EnsureHeld(operation);
        try { await write().ConfigureAwait(false); }
        catch (PreemptedException e)
        {
            OnLost(e);
            throw;
        }
    }

    private void EnsureHeld(string operation)
    {
        if (_gaveBack is not null)
            throw new AlreadyFinishedException($"Cannot {operation} task '{Key}': this holder already {_gaveBack} it.", Key);
        if (LostBecause is { } lost) throw TaskStates.Preempted(Key, lost.Reason, operation);
    }

    private async Task<PreemptedException> LostAsync(string operation, CancellationToken ct)
    {
        var now = await Queue.Store.GetByIdsAsync([Lease.Id], ct).ConfigureAwait(false);
        var error = TaskStates.Preempted(Key, SameTask(now.Count == 1 ? now[0] : null), operation);
        OnLost(error);
        return error;
    }

    /// <summary>
    /// The row read by this task's id, or null when the id now belongs to another task: a key resubmitted after
    /// its retention reuses its old row (SQLite, PostgreSQL). Its state says nothing of this holder's loss.
    /// </summary>
    internal TaskRow? SameTask(TaskRow? now) => now is { } r && r.Key == _row.Key && r.CreatedAt == _row.CreatedAt ? r : null;

    internal void OnExtended(TimeSpan aliveTime, bool cancelRequested)
    {
        LeaseExpiresAt = DateTimeOffset.UtcNow + aliveTime; // an estimate on this host; the database holds the truth
        if (cancelRequested) Cancel();
    }

    internal void OnLost(PreemptedException error)
    {
        LostBecause ??= error;
        Cancel();
    }

    /// <summary>The holder in the other process saw a cancel request (a task held through <see cref="IRemoteTaskHolder"/>).</summary>
    internal void OnCancelRequested() => Cancel();

    /// <summary>The worker began a graceful stop: tell the handler (it may release the task itself).</summary>
    internal void OnStopRequested()
    {
        try { _stopRequested.Cancel(); }
        catch (AggregateException) { /* a callback registered by the handler threw; the token is cancelled anyway */ }
    }

    private void Cancel()
    {
        try { _cancellation.Cancel(); }
        catch (AggregateException) { /* a callback registered by the handler threw; the token is cancelled anyway */ }
    }
}
