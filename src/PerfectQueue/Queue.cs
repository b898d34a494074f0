using PerfectQueue.Storage;

namespace PerfectQueue;

/// <summary>
/// A queue: the original's PerfectQueue.open(config). Thread-safe; open one per process and share it.
/// Every method has an async variant.
/// </summary>
public sealed class Queue : IDisposable, IAsyncDisposable
{
    /// <summary>The most tasks one acquire may lease (the store ranks a batch in 16 bits of the token).</summary>
    public const int MaxBatch = 1000;
    private const int CleanupBatch = 1000;
    private const int CleanupBatchesPerRun = 10;
    private const int MaxKeyLength = 256;

    private readonly IQueueStore _store;
    private readonly LeaseWriteBatcher _writes;
    private long _nextCleanupTicks;

    private Queue(QueueConfig config, IQueueStore store)
    {
        Settings = config;
        Config = config.Masked();
        _store = store;
        _writes = new LeaseWriteBatcher(store);
        RetryPolicy = new RetryPolicy(config);
        ScheduleCleanup();
    }

    /// <summary>
    /// The configuration this queue was opened with (a copy of the one given to Open), with the password of
    /// its url or connection_string masked: a queue object travels in every task object, which scripts print,
    /// log and ConvertTo-Json.
    /// </summary>
    public QueueConfig Config { get; }
    /// <summary>The configuration with its secrets, for the engine and the module that opens queues from it; never shown.</summary>
    internal QueueConfig Settings { get; }
    public RetryPolicy RetryPolicy { get; }
    /// <summary>Where the queue lives, without secrets.</summary>
    public string Description => _store.Description;
    internal IQueueStore Store => _store;
    /// <summary>Holders' finish/retry/release writes, committed in groups when they arrive together.</summary>
    internal LeaseWriteBatcher Writes => _writes;

    public override string ToString() => Description;

    // ---- opening ----

    public static Queue Open(QueueConfig config) => OpenAsync(config).GetAwaiter().GetResult();

    /// <summary>Opens the queue at <paramref name="url"/> (null: the embedded default) with default settings.</summary>
    public static Queue Open(string? url, string table = QueueConfig.DefaultTable) => Open(new QueueConfig { Url = url, Table = table });

    public static async Task<Queue> OpenAsync(QueueConfig config, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var copy = config.Clone();
        copy.Validate();
        var (store, autoInitialize) = QueueStores.Create(copy);
        try
        {
            if (autoInitialize && !await store.IsInitializedAsync(ct).ConfigureAwait(false))
                await store.InitializeAsync(force: false, ct).ConfigureAwait(false);
            return new Queue(copy, store);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>For tests: a queue over a store the caller built (for example one that counts round trips).</summary>
    internal static Queue OpenWith(QueueConfig config, IQueueStore store) => new(config.Clone(), store);

    /// <summary>Creates the schema (idempotent); <paramref name="force"/> drops the table and every task in it first.</summary>
    public void Initialize(bool force = false) => InitializeAsync(force).GetAwaiter().GetResult();
    public Task InitializeAsync(bool force = false, CancellationToken ct = default) => _store.InitializeAsync(force, ct);

    public bool IsInitialized() => _store.IsInitializedAsync(default).GetAwaiter().GetResult();

    /// <summary>The database clock.</summary>
    public DateTimeOffset Now() => TaskStates.Time(_store.NowAsync(default).GetAwaiter().GetResult());

    // ---- client operations ----

    /// <summary>A reference to the task with this key (the original's queue[key]); nothing is read yet.</summary>
    public TaskReference this[string key] => new(this, CheckKey(key));

    /// <summary>
    /// Submits a task. Throws <see cref="IdempotentAlreadyExistsException"/> while a task with the key exists
    /// or finished less than retention_time ago.
    /// </summary>
    public TaskReference Submit(string key, string type, object? data = null, SubmitOptions? options = null) =>
        SubmitAsync(key, type, data, options).GetAwaiter().GetResult();

    public async Task<TaskReference> SubmitAsync(string key, string type, object? data = null, SubmitOptions? options = null, CancellationToken ct = default)
    {
        var result = (await SubmitManyAsync([new TaskSubmission(key, type, data, options)], ct).ConfigureAwait(false))[0];
        if (!result) throw Duplicate(key);
        return this[key];
    }

    /// <summary>
    /// Submits many tasks in one round trip. Returns, per task, true if stored and false if its key was taken
    /// (see <see cref="Duplicate"/> for the matching error). Invalid input throws before anything is stored.
    /// </summary>
    public bool[] SubmitMany(IEnumerable<TaskSubmission> tasks) => SubmitManyAsync(tasks).GetAwaiter().GetResult();

    public Task<bool[]> SubmitManyAsync(IEnumerable<TaskSubmission> tasks, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        var rows = tasks.Select(Encode).ToList();
        return _store.SubmitAsync(rows, ct);
    }

    /// <summary>
    /// Checks one submission as <see cref="SubmitMany"/> would (key, type, options, data), without storing it:
    /// callers that batch can report a bad item as its own error and still submit the rest.
    /// </summary>
    /// <exception cref="ArgumentException">what is wrong with it.</exception>
    public void Validate(TaskSubmission submission) => Encode(submission);

    /// <summary>The error a duplicate submit raises.</summary>
    public static IdempotentAlreadyExistsException Duplicate(string key) =>
        new($"A task with key '{key}' already exists (or finished less than retention_time ago). Use another key, or wait until the finished task's retention ends.", key);

    private NewTaskRow Encode(TaskSubmission s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var key = CheckKey(s.Key);
        if (string.IsNullOrWhiteSpace(s.Type)) throw new ArgumentException($"Task '{key}' has no type. Give a type such as 'backup'; workers route on it.", "type");
        var o = s.Options ?? new SubmitOptions();
        if (o.RunAt is not null && o.Delay is not null) throw new ArgumentException($"Task '{key}': give RunAt or Delay, not both.", "options");
        if (o.Delay is { } delay && delay < TimeSpan.Zero) throw new ArgumentException($"Task '{key}': Delay must not be negative (got {delay}).", "options");
        if (o.MaxRunning is < 1) throw new ArgumentException($"Task '{key}': MaxRunning must be at least 1 (got {o.MaxRunning}).", "options");
        var data = TaskData.Encode(s.Data, o.Compression ?? Config.Compression);
        return new NewTaskRow(key, s.Type, string.IsNullOrEmpty(o.User) ? null : o.User, data, o.MaxRunning,
            o.RunAt?.ToUnixTimeMilliseconds(), o.Delay is { } d ? (long)d.TotalMilliseconds : null);
    }

    private static string CheckKey(string key)
    {
        if (string.IsNullOrWhiteSpace(key)) throw new ArgumentException("A task key must not be empty.", nameof(key));
        if (key.Length > MaxKeyLength) throw new ArgumentException($"A task key must be at most {MaxKeyLength} characters (got {key.Length}).", nameof(key));
        return key;
    }

    /// <summary>Tasks matching the filter, oldest first; finished tasks past their retention are not listed.</summary>
    public IReadOnlyList<TaskInfo> List(TaskFilter? filter = null) => ListAsync(filter).GetAwaiter().GetResult();

    public async Task<IReadOnlyList<TaskInfo>> ListAsync(TaskFilter? filter = null, CancellationToken ct = default)
    {
        var f = filter ?? new TaskFilter();
        if (f.First is < 0) throw new ArgumentException("First must not be negative.", nameof(filter));
        var rows = await _store.ListAsync(new TaskQuery(f.Keys, f.Statuses, f.Types, f.Users, f.First), ct).ConfigureAwait(false);
        return rows.Select(TaskStates.ToInfo).ToList();
    }

    /// <summary>Counts tasks per status, type and user, with the age of the oldest waiting one (one round trip).</summary>
    public QueueSummary Summarize() => SummarizeAsync().GetAwaiter().GetResult();

    public async Task<QueueSummary> SummarizeAsync(CancellationToken ct = default)
    {
        var (rows, now) = await _store.SummarizeAsync(ct).ConfigureAwait(false);
        var oldest = rows.Where(r => r.OldestDueAt is not null).Select(r => r.OldestDueAt!.Value).DefaultIfEmpty(long.MaxValue).Min();
        return new QueueSummary
        {
            Queue = Description,
            At = TaskStates.Time(now),
            Counts = rows.Select(r => new QueueCount(Enum.Parse<TaskState>(r.State), r.Type, r.User, r.Count))
                .OrderBy(c => c.State).ThenBy(c => c.Type, StringComparer.Ordinal).ThenBy(c => c.User, StringComparer.Ordinal).ToList(),
            OldestWaitingSince = oldest == long.MaxValue ? null : TaskStates.Time(oldest),
        };
    }

    // ---- worker operations ----

    /// <summary>Leases the next due task, or returns null (the original's poll).</summary>
    public AcquiredTask? Poll(TimeSpan? aliveTime = null) => PollMulti(1, aliveTime) is [var task, ..] ? task : null;

    public async Task<AcquiredTask?> PollAsync(TimeSpan? aliveTime = null, CancellationToken ct = default) =>
        await PollMultiAsync(1, aliveTime, ct).ConfigureAwait(false) is [var task, ..] ? task : null;

    /// <summary>Leases up to <paramref name="max"/> due tasks in one statement (the original's poll_multi).</summary>
    public IReadOnlyList<AcquiredTask> PollMulti(int max, TimeSpan? aliveTime = null) => PollMultiAsync(max, aliveTime).GetAwaiter().GetResult();

    public async Task<IReadOnlyList<AcquiredTask>> PollMultiAsync(int max, TimeSpan? aliveTime = null, CancellationToken ct = default)
    {
        if (max is < 1 or > MaxBatch) throw new ArgumentOutOfRangeException(nameof(max), max, $"Poll between 1 and {MaxBatch} tasks at a time.");
        var alive = aliveTime ?? Config.AliveTime;
        if (alive <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(aliveTime), aliveTime, "The alive time must be more than zero.");
        await CleanupIfDueAsync(ct).ConfigureAwait(false);

        var rows = await _store.AcquireAsync(max, (long)alive.TotalMilliseconds, ct).ConfigureAwait(false);
        var acquired = new List<AcquiredTask>(rows.Count);
        List<LeaseWrite>? endings = null;
        foreach (var row in rows)
        {
            var lease = new Lease(row.Id, row.LeaseToken!.Value);
            // A task cancelled while held, then given back (or orphaned), is never started again.
            if (row.CancelRequested)
                (endings ??= []).Add(new LeaseWrite(lease, LeaseWriteKind.Finish, nameof(TaskOutcome.Cancelled), "cancel requested", RetentionMs: RetentionMs));
            // Its earlier attempts all lost their lease (the worker died): stop once max_attempts is spent.
            else if (RetryPolicy.MaxAttempts is { } maxAttempts && row.Attempts > maxAttempts)
                (endings ??= []).Add(new LeaseWrite(lease, LeaseWriteKind.Finish, nameof(TaskOutcome.Failed),
                    $"gave up after {maxAttempts} attempts: the last lease expired without a finish" + (row.Message is { } m ? $"; last message: {m}" : ""),
                    RetentionMs: RetentionMs));
            else
                acquired.Add(new AcquiredTask(this, row, alive));
        }
        if (endings is not null) await _store.ApplyAsync(endings, ct).ConfigureAwait(false);
        return acquired;
    }

    /// <summary>Extends the leases of many held tasks in one round trip and reports, per task, what the holder must know.</summary>
    public IReadOnlyList<HeartbeatReport> Heartbeat(IEnumerable<AcquiredTask> tasks, TimeSpan? aliveTime = null) =>
        HeartbeatAsync(tasks, aliveTime).GetAwaiter().GetResult();

    public async Task<IReadOnlyList<HeartbeatReport>> HeartbeatAsync(IEnumerable<AcquiredTask> tasks, TimeSpan? aliveTime = null, CancellationToken ct = default)
    {
        var list = tasks.ToList();
        foreach (var t in list)
            if (!ReferenceEquals(t.Queue, this)) throw new ArgumentException($"Task '{t.Key}' was acquired from another queue object.", nameof(tasks));
        var alive = aliveTime ?? Config.AliveTime;
        var extended = (await _store.HeartbeatAsync(list.Select(t => t.Lease).ToList(), (long)alive.TotalMilliseconds, ct).ConfigureAwait(false))
            .ToDictionary(e => e.Id);
        var lost = list.Where(t => !extended.ContainsKey(t.Lease.Id)).ToList();
        var now = lost.Count > 0
            ? (await _store.GetByIdsAsync(lost.Select(t => t.Lease.Id).ToList(), ct).ConfigureAwait(false)).ToDictionary(r => r.Id)
            : [];
        var reports = new List<HeartbeatReport>(list.Count);
        foreach (var task in list)
        {
            if (extended.TryGetValue(task.Lease.Id, out var e))
            {
                task.OnExtended(alive, e.CancelRequested);
                reports.Add(new HeartbeatReport(task, e.CancelRequested ? HeartbeatResult.CancelRequested : HeartbeatResult.Alive, null));
            }
            else
            {
                var error = TaskStates.Preempted(task.Key, now.GetValueOrDefault(task.Lease.Id), "heartbeat");
                task.OnLost(error);
                reports.Add(new HeartbeatReport(task,
                    error.Reason == PreemptionReason.ForceFinished ? HeartbeatResult.ForceFinished : HeartbeatResult.Preempted, error));
            }
        }
        return reports;
    }

    /// <summary>
    /// Waits until new tasks may have been submitted (PostgreSQL: LISTEN/NOTIFY) or <paramref name="timeout"/>
    /// passes. An idle worker calls this between polls: it wakes early on a submit, and never waits longer
    /// than the timeout, so polling stays the fallback. Returns true when woken by a submit.
    /// </summary>
    public bool WaitForTasks(TimeSpan timeout) => WaitForTasksAsync(timeout).GetAwaiter().GetResult();

    public Task<bool> WaitForTasksAsync(TimeSpan timeout, CancellationToken ct = default) =>
        timeout <= TimeSpan.Zero ? Task.FromResult(false) : _store.WaitForSubmitAsync(timeout, ct);

    // ---- worker sessions ----

    /// <summary>Every worker session, live and dead (until cleanup deletes it), oldest first.</summary>
    public IReadOnlyList<WorkerSessionInfo> ListWorkers() => ListWorkersAsync().GetAwaiter().GetResult();

    public async Task<IReadOnlyList<WorkerSessionInfo>> ListWorkersAsync(CancellationToken ct = default) =>
        (await _store.ListWorkersAsync(ct).ConfigureAwait(false)).Select(WorkerSessionInfo.From).ToList();

    /// <summary>
    /// Asks the worker of session <paramref name="id"/>, on any host, to stop gracefully: it sees the request at
    /// its next heartbeat, acquires nothing more, lets its running tasks end and exits. Returns the session after
    /// the request, or null if no session has this id. A dead session is flagged too, but nothing will read it.
    /// </summary>
    public WorkerSessionInfo? RequestWorkerStop(string id) => RequestWorkerStopAsync(id).GetAwaiter().GetResult();

    public async Task<WorkerSessionInfo?> RequestWorkerStopAsync(string id, CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(id)) throw new ArgumentException("A worker session id must not be empty. Get-PQWorker (ListWorkers) shows them.", nameof(id));
        var row = await _store.RequestWorkerStopAsync(id.Trim().ToLowerInvariant(), ct).ConfigureAwait(false);
        return row is null ? null : WorkerSessionInfo.From(row);
    }

    /// <summary>A new session id: 12 lowercase hex digits (48 random bits), short enough to type.</summary>
    internal static string NewWorkerId() => Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();

    /// <summary>Registers a worker session; returns its start (database clock, ms), or null if the id is taken.</summary>
    internal Task<long?> RegisterWorkerAsync(WorkerBeat session, CancellationToken ct = default) => _store.RegisterWorkerAsync(session, ct);

    /// <summary>Records a worker's beat; true when a stop was requested.</summary>
    internal Task<bool> BeatWorkerAsync(WorkerBeat beat, CancellationToken ct = default) => _store.BeatWorkerAsync(beat, ct);

    internal Task RemoveWorkerAsync(string id, CancellationToken ct = default) => _store.RemoveWorkerAsync(id, ct);

    /// <summary>
    /// Deletes finished tasks past their retention, in bounded batches, and worker sessions dead for longer than
    /// retention_time. Polling calls this by itself every cleanup_interval (jittered, so many workers do not all
    /// clean at once); call it to clean now. Returns how many tasks were deleted.
    /// </summary>
    public int Cleanup(int maxRows = CleanupBatch * CleanupBatchesPerRun) => CleanupAsync(maxRows).GetAwaiter().GetResult();

    public async Task<int> CleanupAsync(int maxRows = CleanupBatch * CleanupBatchesPerRun, CancellationToken ct = default)
    {
        var total = 0;
        while (total < maxRows)
        {
            var deleted = await _store.CleanupAsync(Math.Min(CleanupBatch, maxRows - total), ct).ConfigureAwait(false);
            total += deleted;
            if (deleted < CleanupBatch) break;
        }
        // Dead sessions are bookkeeping: a user without rights on the sessions table (an upgraded queue whose
        // grants were not extended) must not lose task cleanup, nor see polls fail, because of them.
        try { await _store.CleanupWorkersAsync(RetentionMs, ct).ConfigureAwait(false); }
        catch (System.Data.Common.DbException) { }
        return total;
    }

    private async Task CleanupIfDueAsync(CancellationToken ct)
    {
        if (Config.CleanupInterval <= TimeSpan.Zero) return;
        var due = Interlocked.Read(ref _nextCleanupTicks);
        if (Environment.TickCount64 < due) return;
        if (Interlocked.CompareExchange(ref _nextCleanupTicks, long.MaxValue, due) != due) return; // another thread runs it
        try { await CleanupAsync(ct: ct).ConfigureAwait(false); }
        finally { ScheduleCleanup(); }
    }

    private void ScheduleCleanup()
    {
        var ms = Config.CleanupInterval.TotalMilliseconds * (0.5 + Random.Shared.NextDouble());
        Interlocked.Exchange(ref _nextCleanupTicks, Environment.TickCount64 + (long)ms);
    }

    internal long RetentionMs => (long)Config.RetentionTime.TotalMilliseconds;

    public void Dispose() => _store.Dispose();

    public ValueTask DisposeAsync()
    {
        _store.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>What a heartbeat found for one held task.</summary>
public enum HeartbeatResult
{
    /// <summary>The lease was extended.</summary>
    Alive,
    /// <summary>The lease was extended, and cancel was asked: the handler should stop and the task end Cancelled.</summary>
    CancelRequested,
    /// <summary>The holder lost the task (re-acquired elsewhere, finished by somebody else, or deleted). Stop; never write to it again.</summary>
    Preempted,
    /// <summary>Somebody force-finished the task. Stop; never write to it again.</summary>
    ForceFinished,
}

/// <summary>One task's heartbeat outcome. <see cref="Error"/> explains a lost task.</summary>
public sealed record HeartbeatReport(AcquiredTask Task, HeartbeatResult Result, PreemptedException? Error);
