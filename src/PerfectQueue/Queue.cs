using System.Diagnostics;
using PerfectQueue.Storage;
using PerfectQueue.Telemetry;

namespace PerfectQueue;

/// <summary>
/// A queue: the original's PerfectQueue.open(config). Thread-safe; open one per process and share it.
/// Every method has an async variant.
/// </summary>
public sealed partial class Queue : IDisposable, IAsyncDisposable
{
    /// <summary>The most tasks one acquire may lease (the store ranks a batch in 16 bits of the token).</summary>
    public const int MaxBatch = 1000;
    private const int CleanupBatch = 1000;
    private const int CleanupBatchesPerRun = 10;

    private readonly IQueueStore _store;
    private readonly LeaseWriteBatcher _writes;
    // Create the schema at the first submit that finds it missing (SQLite's auto_initialize). Reads never
    // create it, so a mistyped file or table name is an error that says what does not exist.
    private readonly bool _autoInitialize;
    private long _nextCleanupTicks;

    private Queue(QueueConfig config, IQueueStore store, bool autoInitialize = false)
    {
        Settings = config;
        Config = config.Masked();
        TableTag = new(QueueTelemetry.TableTag, config.Table);
        _store = store;
        _autoInitialize = autoInitialize;
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
    /// <summary>This queue's table as a metric tag (every instrument carries it, docs/telemetry.md).</summary>
    internal KeyValuePair<string, object?> TableTag { get; }
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
            // Only the embedded default is created on open: it has no name to mistype, and every command finds it ready.
            if (autoInitialize && string.IsNullOrWhiteSpace(copy.Url) && copy.ConnectionString is null
                && !await store.IsInitializedAsync(ct).ConfigureAwait(false))
                await store.InitializeAsync(force: false, ct).ConfigureAwait(false);
            return new Queue(copy, store, autoInitialize);
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

    public async Task<bool[]> SubmitManyAsync(IEnumerable<TaskSubmission> tasks, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        var rows = tasks.Select(Encode).ToList();
        await EnsureCreatedAsync(ct).ConfigureAwait(false);
        // One span per batch; each task keeps its trace context, so the span of its run links back (docs/telemetry.md).
        using var activity = QueueTelemetry.Source.StartActivity("perfectqueue submit", ActivityKind.Producer);
        if (activity is not null)
        {
            activity.SetTag(QueueTelemetry.TableTag, Config.Table).SetTag(QueueTelemetry.CountTag, rows.Count);
            if (rows.Count == 1) activity.SetTag(QueueTelemetry.KeyTag, rows[0].Key).SetTag(QueueTelemetry.TypeTag, rows[0].Type);
        }
        if (QueueTelemetry.CurrentTraceParent() is { } trace) rows = rows.ConvertAll(r => r with { TraceParent = trace });
        return await StoreNewAsync(rows, ct).ConfigureAwait(false);
    }

    /// <summary>Stores new tasks (a submit's, a schedule's fire) and counts those stored: every submit goes through here.</summary>
    internal async Task<bool[]> StoreNewAsync(IReadOnlyList<NewTaskRow> rows, CancellationToken ct)
    {
        var stored = await _store.SubmitAsync(rows, ct).ConfigureAwait(false);
        QueueTelemetry.SubmittedCounter.Add(stored.Count(s => s), TableTag);
        return stored;
    }

    private volatile bool _created;

    // With auto_initialize (SQLite), the commands that bring or take work (submit, poll, a worker's start)
    // create a missing queue, once per queue object; reads never do. The (idempotent) schema statement runs
    // even when the table exists, so a queue made by an older version gains what this one added (an index)
    // at its first write, as Initialize-PQQueue gives it on a server.
    private async Task EnsureCreatedAsync(CancellationToken ct)
    {
        if (!_autoInitialize || _created) return;
        await _store.InitializeAsync(force: false, ct).ConfigureAwait(false);
        _created = true;
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
        // Every backend gets the same rules (TaskText): nothing stored here may fail a later acquire or listing.
        if (TaskText.NameProblem("key", s.Key ?? "") is { } badKey) throw new ArgumentException(badKey, "key");
        var key = s.Key!;
        if (string.IsNullOrWhiteSpace(s.Type)) throw new ArgumentException($"Task '{key}' has no type. Give a type such as 'backup'; workers route on it.", "type");
        if (TaskText.NameProblem("type", s.Type) is { } badType) throw new ArgumentException($"Task '{key}': {badType}", "type");
        var o = s.Options ?? new SubmitOptions();
        if (!string.IsNullOrEmpty(o.User) && TaskText.NameProblem("user", o.User) is { } badUser)
            throw new ArgumentException($"Task '{key}': {badUser} Leave the user out (or empty) for a task without one.", "user");
        if (o.RunAt is not null && o.Delay is not null) throw new ArgumentException($"Task '{key}': give RunAt or Delay, not both.", "options");
        if (o.Delay is { } delay && delay < TimeSpan.Zero) throw new ArgumentException($"Task '{key}': Delay must not be negative (got {delay}).", "options");
        if (o.MaxRunning is < 1) throw new ArgumentException($"Task '{key}': MaxRunning must be at least 1 (got {o.MaxRunning}).", "options");
        if (o.Timeout is { } limit && (limit <= TimeSpan.Zero || limit > SubmitOptions.MaxTimeout))
            throw new ArgumentException($"Task '{key}': Timeout (the execution limit) must be more than zero and at most {SubmitOptions.MaxTimeout.TotalDays:0} days (got {limit}). " +
                "Give seconds or a TimeSpan, such as 600 or '00:10:00', or leave it out for no limit.", "options");
        byte[] data;
        try { data = TaskData.Encode(s.Data, o.Compression ?? Config.Compression); }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Task '{key}': {ArgumentText.WithoutParameterName(e)}", "data", e);
        }
        return new NewTaskRow(key, s.Type, string.IsNullOrEmpty(o.User) ? null : o.User, data, o.MaxRunning,
            o.RunAt?.ToUnixTimeMilliseconds(), o.Delay is { } d ? (long)d.TotalMilliseconds : null,
            o.Timeout is { } t ? (long)Math.Ceiling(t.TotalMilliseconds) : null); // whole milliseconds, never rounded down to none
    }

    private void RecordAcquired(IReadOnlyList<TaskRow> rows)
    {
        if (rows.Count == 0) return;
        QueueTelemetry.AcquiredCounter.Add(rows.Count, TableTag);
        if (!QueueTelemetry.QueueWaitHistogram.Enabled) return;
        foreach (var row in rows)
            if (row.Attempts == 1 && row.LeasedAt is { } leasedAt) // the first attempt: submit to start, database clock
                QueueTelemetry.QueueWaitHistogram.Record(Math.Max(0, leasedAt - row.CreatedAt) / 1000.0, TableTag, new(QueueTelemetry.TypeTag, row.Type));
    }

    private static string CheckKey(string key) =>
        TaskText.LookupProblem("key", key) is { } problem ? throw new ArgumentException(problem, nameof(key)) : key;

    /// <summary>Tasks matching the filter, oldest first; finished tasks past their retention are not listed.</summary>
    public IReadOnlyList<TaskInfo> List(TaskFilter? filter = null) => ListAsync(filter).GetAwaiter().GetResult();

    public async Task<IReadOnlyList<TaskInfo>> ListAsync(TaskFilter? filter = null, CancellationToken ct = default) =>
        (await ListRowsAsync(filter, null, ct).ConfigureAwait(false)).Infos;

    /// <summary>
    /// A page of the tasks matching <paramref name="filter"/>, newest first (by id): at most <paramref name="size"/>
    /// tasks below the cursor <paramref name="before"/> (null: the first page), and the cursor of the next page
    /// (null: this was the last). The filter's First and Newest must not be set. Keyset paging: every page costs
    /// the same, however deep (the dashboard's task list).
    /// </summary>
    internal async Task<(IReadOnlyList<TaskInfo> Tasks, long? Next)> ListPageAsync(TaskFilter? filter, long? before, int size, CancellationToken ct = default)
    {
        if (size is < 1 or > MaxBatch) throw new ArgumentOutOfRangeException(nameof(size), size, $"A page holds 1 to {MaxBatch} tasks.");
        if (filter is { First: not null } or { Newest: not null }) throw new ArgumentException("A page is not listed with First or Newest.", nameof(filter));
        // One row more than the page tells whether another page follows, without a count.
        var (infos, ids) = await ListRowsAsync(filter, new TaskPage(size + 1, before), ct).ConfigureAwait(false);
        return infos.Count > size ? (infos.Take(size).ToList(), ids[size - 1]) : (infos, null);
    }

    private async Task<(IReadOnlyList<TaskInfo> Infos, IReadOnlyList<long> Ids)> ListRowsAsync(TaskFilter? filter, TaskPage? page, CancellationToken ct)
    {
        var f = filter ?? new TaskFilter();
        if (f.First is < 0) throw new ArgumentException("First must not be negative.", nameof(filter));
        if (f.Newest is < 0) throw new ArgumentException("Newest must not be negative.", nameof(filter));
        if (f.First is not null && f.Newest is not null)
            throw new ArgumentException("Give First (the oldest tasks) or Newest (the most recently created), not both.", nameof(filter));
        // Parsed before anything is sent, so a malformed pattern is an error that says how to write it.
        var patterns = f.KeyPatterns?.Where(TaskText.IsSendable).Select(KeyPattern.Parse).ToList();
        // A value no backend can take as a parameter (NUL, an unpaired surrogate) matches no task: leave it out
        // of the query, and when nothing of a filter is left, nothing matches.
        var keys = Sendable(f.Keys);
        var types = Sendable(f.Types);
        var users = Sendable(f.Users);
        if (NoneSendable(f.Types) || NoneSendable(f.Users)) return ([], []);
        if (keys is { Count: 0 }) keys = null; // none sendable: only the patterns are left to match
        if ((f.Keys is { Count: > 0 } || f.KeyPatterns is { Count: > 0 }) && keys is null && patterns is not { Count: > 0 }) return ([], []);
        var rows = await _store.ListAsync(new TaskQuery(keys, f.Statuses, types, users, f.First, f.Outcomes,
            patterns is { Count: > 0 } ? patterns : null, f.Newest, page), ct).ConfigureAwait(false);
        var hosts = await HostsOfRunningAsync(rows, ct).ConfigureAwait(false);
        return (rows.Select(r => TaskStates.ToInfo(r, hosts)).ToList(), rows.Select(r => r.Id).ToList());
    }

    /// <summary>
    /// The hosts of the worker sessions that hold the running rows among <paramref name="rows"/>, by session id: one
    /// read of the small sessions table, and only when a listed task runs under a worker.
    /// </summary>
    internal async Task<IReadOnlyDictionary<string, string>?> HostsOfRunningAsync(IReadOnlyList<TaskRow> rows, CancellationToken ct)
    {
        if (!rows.Any(r => r.LeasedBy is not null && TaskStates.IsHeld(r))) return null;
        return (await _store.ListWorkersAsync(ct).ConfigureAwait(false)).ToDictionary(w => w.Id, w => w.Host, StringComparer.Ordinal);
    }

    // ---- re-run and delete finished tasks ----

    /// <summary>
    /// Makes a finished task due again under its key, as a new first attempt (attempts start over at 0), with its
    /// type, user, data and limits: at <paramref name="runAt"/>, after <paramref name="delay"/>, or now. Throws
    /// <see cref="NotFoundException"/> when no task has the key (a finished one past its retention counts as gone,
    /// as in <see cref="List"/>), and <see cref="NotFinishedException"/> for a task that is not finished.
    /// </summary>
    public void Restart(string key, DateTimeOffset? runAt = null, TimeSpan? delay = null) => RestartAsync(key, runAt, delay).GetAwaiter().GetResult();

    public async Task RestartAsync(string key, DateTimeOffset? runAt = null, TimeSpan? delay = null, CancellationToken ct = default)
    {
        CheckKey(key);
        if (runAt is not null && delay is not null) throw new ArgumentException($"Task '{key}': give RunAt or Delay, not both.", nameof(delay));
        if (delay is { } d && d < TimeSpan.Zero) throw new ArgumentException($"Task '{key}': Delay must not be negative (got {d}).", nameof(delay));
        var result = await _store.RestartAsync(key, runAt?.ToUnixTimeMilliseconds(), delay is { } dl ? (long)dl.TotalMilliseconds : null, ct).ConfigureAwait(false);
        ThrowUnlessDone(result, key, "restart", "be run again");
    }

    /// <summary>
    /// Deletes a finished task, so its key is free at once instead of after retention_time. Throws
    /// <see cref="NotFoundException"/> or <see cref="NotFinishedException"/> as <see cref="Restart"/> does.
    /// </summary>
    public void Remove(string key) => RemoveAsync(key).GetAwaiter().GetResult();

    public async Task RemoveAsync(string key, CancellationToken ct = default)
    {
        CheckKey(key);
        ThrowUnlessDone(await _store.RemoveAsync(key, ct).ConfigureAwait(false), key, "remove", "be removed");
    }

    private void ThrowUnlessDone(FinishedTaskResult result, string key, string verb, string passive)
    {
        switch (result)
        {
            case FinishedTaskResult.Done: return;
            case FinishedTaskResult.Live:
                throw new NotFinishedException(
                    $"Task '{key}' is not finished, so it cannot {passive}: only finished tasks can. Stop it first with Request-PQCancel " +
                    $"(or Complete-PQTask to end it at once), or wait for it to finish (Wait-PQTask), then {verb} it.", key);
            default:
                throw new NotFoundException($"No task has the key '{key}' in {Description}.", key);
        }
    }

    private static bool NoneSendable(IReadOnlyCollection<string>? values) => values is { Count: > 0 } && !values.Any(TaskText.IsSendable);

    private static IReadOnlyCollection<string>? Sendable(IReadOnlyCollection<string>? values) =>
        values is null or { Count: 0 } || values.All(TaskText.IsSendable) ? values : values.Where(TaskText.IsSendable).ToList();

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

    public async Task<IReadOnlyList<AcquiredTask>> PollMultiAsync(int max, TimeSpan? aliveTime = null, CancellationToken ct = default) =>
        (await AcquireAsync(max, aliveTime, ct).ConfigureAwait(false)).Tasks;

    /// <summary>
    /// PollMulti for the worker: also says which tasks the acquire finished instead of handing them out, so
    /// they are logged and counted, and a poll that only ended tasks is not taken for an empty queue.
    /// <paramref name="ct"/> cancels only the acquire statement: once it has leased rows, the endings are
    /// written whatever happens to the token (a cancel then would strand their leases). <paramref name="session"/>:
    /// the worker session the rows are leased by, as listings show it (null: a holder that is no worker).
    /// </summary>
    internal async Task<PollResult> AcquireAsync(int max, TimeSpan? aliveTime, CancellationToken ct, string? session = null)
    {
        if (max is < 1 or > MaxBatch) throw new ArgumentOutOfRangeException(nameof(max), max, $"Poll between 1 and {MaxBatch} tasks at a time.");
        var alive = aliveTime ?? Config.AliveTime;
        if (alive <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(aliveTime), aliveTime, "The alive time must be more than zero.");
        await EnsureCreatedAsync(ct).ConfigureAwait(false);
        await CleanupIfDueAsync(ct).ConfigureAwait(false);

        var sentAt = DateTimeOffset.UtcNow;
        var rows = await _store.AcquireAsync(max, (long)alive.TotalMilliseconds, session, ct).ConfigureAwait(false);
        // A span only for an acquire that leased something, made once it is back with the time it was sent: an
        // idle worker polls every poll interval, and a span per empty poll would bury the traces that matter.
        if (rows.Count > 0 && QueueTelemetry.Source.HasListeners())
            QueueTelemetry.Source.StartActivity("perfectqueue acquire", ActivityKind.Client, parentContext: default, startTime: sentAt)?
                .SetTag(QueueTelemetry.TableTag, Config.Table).SetTag("perfectqueue.acquire.max", max).SetTag(QueueTelemetry.CountTag, rows.Count).Dispose();
        RecordAcquired(rows);
        var acquired = new List<AcquiredTask>(rows.Count);
        List<(LeaseWrite Write, AcquireEnding Ending)>? endings = null;
        foreach (var row in rows)
        {
            var lease = new Lease(row.Id, row.LeaseToken!.Value);
            // A task cancelled while held, then given back (or orphaned), is never started again.
            if (row.CancelRequested)
                (endings ??= []).Add((LeaseWrite.CancelledBeforeStart(lease, RetentionMs),
                    new AcquireEnding(row.Key, row.Type, TaskOutcome.Cancelled, LeaseWrite.CancelRequestedMessage, row.Attempts - 1)));
            // Its earlier attempts are spent (their leases expired, or max_attempts was lowered since): this
            // acquisition is not an attempt, so it is not counted and the message says how many ran.
            else if (RetryPolicy.MaxAttempts is { } maxAttempts && row.Attempts > maxAttempts)
            {
                var ran = row.Attempts - 1;
                var text = $"gave up after {ran} attempt{(ran == 1 ? "" : "s")} (max_attempts {maxAttempts}) without running it again" + (row.Message is { } m ? $"; last message: {m}" : "");
                (endings ??= []).Add((new LeaseWrite(lease, LeaseWriteKind.Finish, nameof(TaskOutcome.Failed), text, RetentionMs: RetentionMs, Uncounted: true) { Notice = FailureNotice(row, text, ran) },
                    new AcquireEnding(row.Key, row.Type, TaskOutcome.Failed, text, ran)));
            }
            else
                acquired.Add(new AcquiredTask(this, row, alive));
        }
        if (endings is null) return new PollResult(acquired, []);
        try
        {
            // Not cancellable (see above); a failure leaves them leased: the lease expires and a later acquire ends them.
            var applied = await _store.ApplyAsync(endings.ConvertAll(e => e.Write), CancellationToken.None).ConfigureAwait(false);
            return new PollResult(acquired, endings.Where(e => applied.Contains(e.Write.Lease.Id)).Select(e => e.Ending).ToList());
        }
        catch (Exception) when (acquired.Count > 0)
        {
            return new PollResult(acquired, []); // the tasks handed out must reach their caller, or their leases are stranded
        }
    }

    /// <summary>True when any task is due or running (what a worker's UntilEmpty waits for to end).</summary>
    internal Task<bool> AnyDueOrRunningAsync(CancellationToken ct) => _store.AnyDueOrRunningAsync(ct);

    /// <summary>Extends the leases of many held tasks in one round trip and reports, per task, what the holder must know.</summary>
    public IReadOnlyList<HeartbeatReport> Heartbeat(IEnumerable<AcquiredTask> tasks, TimeSpan? aliveTime = null) =>
        HeartbeatAsync(tasks, aliveTime).GetAwaiter().GetResult();

    public async Task<IReadOnlyList<HeartbeatReport>> HeartbeatAsync(IEnumerable<AcquiredTask> tasks, TimeSpan? aliveTime = null, CancellationToken ct = default)
    {
        var list = tasks.ToList();
        foreach (var t in list)
            if (!ReferenceEquals(t.Queue, this)) throw new ArgumentException($"Task '{t.Key}' was acquired from another queue object.", nameof(tasks));
        var alive = aliveTime ?? Config.AliveTime;
        if (list.Select(t => t.Lease.Id).Distinct().Count() != list.Count)
        {
            // Two leases of one row: an old holder still runs while its key, resubmitted after retention, got the
            // same id and a new lease. The store reports extended leases by id, so each goes in its own round trip.
            var byTask = new Dictionary<AcquiredTask, HeartbeatReport>(ReferenceEqualityComparer.Instance);
            foreach (var round in list.GroupBy(t => t.Lease.Id).SelectMany(g => g.Select((t, i) => (t, i))).GroupBy(x => x.i))
                foreach (var r in await HeartbeatAsync(round.Select(x => x.t), aliveTime, ct).ConfigureAwait(false)) byTask[r.Task] = r;
            return list.Select(t => byTask[t]).ToList();
        }
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
                var error = TaskStates.Preempted(task.Key, task.SameTask(now.GetValueOrDefault(task.Lease.Id)), "heartbeat", task.Lease.Token);
                // A holder that finished, retried or released the task while this beat was in flight did not lose it:
                // the beat found the row as that write left it.
                if (!task.IsCompleted) task.OnLost(error);
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

    public async Task<IReadOnlyList<WorkerSessionInfo>> ListWorkersAsync(CancellationToken ct = default)
    {
        var sessions = await _store.ListWorkersAsync(ct).ConfigureAwait(false);
        if (sessions.Count == 0) return [];
        // Read after the sessions, so a task leased by a session listed here shows under it.
        var running = (await _store.ListRunningAsync(ct).ConfigureAwait(false)).ToLookup(r => r.Session, r => r.Key, StringComparer.Ordinal);
        return sessions.Select(s => WorkerSessionInfo.From(s, running[s.Id].ToList())).ToList();
    }

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
    internal async Task<long?> RegisterWorkerAsync(WorkerBeat session, CancellationToken ct = default)
    {
        await EnsureCreatedAsync(ct).ConfigureAwait(false);
        return await _store.RegisterWorkerAsync(session, ct).ConfigureAwait(false);
    }

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

    // ---- queue tables of the database ----

    /// <summary>
    /// The queue tables of this queue's database (the ones perfectqueue_schema records and the database still has),
    /// sorted, at most 1000: for tab completion of -Table. Empty when the database holds no queue yet.
    /// </summary>
    public async Task<IReadOnlyList<string>> ListQueueTablesAsync(CancellationToken ct = default) =>
        await _store.ListQueueTablesAsync(ct).ConfigureAwait(false);

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
