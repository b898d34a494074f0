using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Submits tasks (the original's submit). Piped tasks go to the database in batches, one round trip
/// each, while every duplicate key is still reported as its own TaskAlreadyExists error.
/// </summary>
[Cmdlet(VerbsLifecycle.Submit, "PQTask", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = DelaySet)]
[OutputType(typeof(PQTask))]
public sealed class SubmitPQTaskCommand : PQCmdlet
{
    private const string DelaySet = "Delay";
    private const string RunAtSet = "RunAt";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Key { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskTypeCompleter))]
    public string Type { get; set; } = "";

    /// <summary>A hashtable, an object with properties, or JSON text of an object.</summary>
    [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
    [NullIfBlank]
    public object? Data { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(TaskUserCompleter))]
    public string? User { get; set; }

    [Parameter(ParameterSetName = RunAtSet, ValueFromPipelineByPropertyName = true)]
    [NullIfBlank]
    public DateTime? RunAt { get; set; }

    /// <summary>Run no earlier than this long from now (a TimeSpan, or seconds).</summary>
    [Parameter(ParameterSetName = DelaySet, ValueFromPipelineByPropertyName = true)]
    [DurationTransformation]
    public TimeSpan? Delay { get; set; }

    /// <summary>At most this many tasks of -User run at once (at least 1; checked per item with the rest of the task).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [NullIfBlank]
    public int? MaxRunning { get; set; }

    /// <summary>
    /// The execution limit: how long one attempt may run before the worker stops it and retries the task (a TimeSpan,
    /// or seconds). Stored with the task as its ExecutionTimeout; more than zero, at most 365 days (checked per item).
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ExecutionTimeoutTransformation]
    public TimeSpan? Timeout { get; set; }

    /// <summary>Store the data gzip-compressed (reads detect it by themselves): the same as -Compression Gzip.</summary>
    [Parameter]
    public SwitchParameter Compress { get; set; }

    /// <summary>None or Gzip (the original's compression: 'gzip'). Default: the queue's compression setting.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [NullIfBlank]
    public DataCompression? Compression { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>How many piped tasks go to the database in one round trip.</summary>
    [Parameter]
    [ValidateRange(1, 1000)]
    public int BatchSize { get; set; } = 500;

    private readonly List<TaskSubmission> _batch = [];
    private Queue? _batchQueue;
    private int _submitted;
    private int _flushes;

    protected override void ProcessRecord()
    {
        if (Compress && Compression == DataCompression.None)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("-Compress asks for gzip and -Compression None for none: give one of them."),
                PQErrors.InvalidArgument, ErrorCategory.InvalidArgument, Compression));
        var queue = CurrentQueue();
        if (!ShouldProcess($"task '{Key}' of type '{Type}' on {queue.Description}", "Submit")) return;
        var options = new SubmitOptions
        {
            User = string.IsNullOrEmpty(User) ? null : User,
            RunAt = RunAt is { } at ? new DateTimeOffset(at.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(at, DateTimeKind.Local) : at) : null,
            Delay = Delay,
            MaxRunning = MaxRunning,
            Timeout = Timeout,
            Compression = Compress ? DataCompression.Gzip : Compression,
        };
        var item = new TaskSubmission(Key, Type, Data, options);
        // A bad item is its own error: the rest of the batch must not fail with it.
        try { queue.Validate(item); }
        catch (ArgumentException e) { WriteError(PQErrors.For(e, Key)); return; }

        if (_batchQueue is not null && !ReferenceEquals(_batchQueue, queue)) Flush();
        _batchQueue = queue;
        _batch.Add(item);
        if (_batch.Count >= BatchSize) Flush();
    }

    protected override void EndProcessing()
    {
        Flush();
        if (_flushes > 1) WriteProgress(new ProgressRecord(1, "Submitting tasks", "Done") { RecordType = ProgressRecordType.Completed });
    }

    /// <summary>
    /// A duration, as <see cref="DurationTransformationAttribute"/> reads it, except that a point in time counts as
    /// not given: a task piped from Get-PQTask carries the original's Timeout column (its due time or lease end, a
    /// DateTime) under this parameter's name, and resubmitting such tasks must not fail on it.
    /// </summary>
    [AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
    private sealed class ExecutionTimeoutTransformationAttribute : ArgumentTransformationAttribute
    {
        private static readonly DurationTransformationAttribute Duration = new();

        public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData) =>
            (inputData is PSObject p ? p.BaseObject : inputData) is DateTime or DateTimeOffset ? null : Duration.Transform(engineIntrinsics, inputData);
    }

    private void Flush()
    {
        if (_batch.Count == 0 || _batchQueue is null) return;
        var queue = _batchQueue;
        var items = _batch.ToArray();
        _batch.Clear();
        RunItem(queue.Description, () =>
        {
            var stored = queue.SubmitManyAsync(items, StopToken).GetAwaiter().GetResult();
            var storedKeys = new List<string>();
            for (var i = 0; i < items.Length; i++)
            {
                if (stored[i]) storedKeys.Add(items[i].Key);
                else WriteError(PQErrors.For(PerfectQueue.Queue.Duplicate(items[i].Key), items[i].Key));
            }
            _submitted += storedKeys.Count;
            _flushes++;
            if (_flushes > 1 || items.Length >= BatchSize)
                WriteProgress(new ProgressRecord(1, "Submitting tasks", $"{_submitted} submitted") { PercentComplete = -1 });
            if (PassThru && storedKeys.Count > 0)
            {
                var byKey = queue.ListAsync(new TaskFilter { Keys = storedKeys }, StopToken).GetAwaiter().GetResult().ToDictionary(t => t.Key);
                foreach (var key in storedKeys)
                    if (byKey.TryGetValue(key, out var info)) WriteObject(new PQTask(info, queue));
            }
        });
    }
}
