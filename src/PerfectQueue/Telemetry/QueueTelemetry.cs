using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PerfectQueue.Telemetry;

/// <summary>
/// What the engine reports to .NET's tracing and metrics APIs, under one name, <see cref="Name"/>: an
/// <see cref="ActivitySource"/> (submit, acquire, each handler run, each finish and retry) and a <see cref="Meter"/>
/// (tasks submitted, acquired and ended by outcome, run time, queue wait, tasks running). Nothing is recorded
/// unless a listener (the OpenTelemetry SDK, dotnet-counters, an ActivityListener) subscribes to the name, and
/// no dependency is added: both APIs are part of .NET. docs/telemetry.md lists every span, tag and instrument.
/// </summary>
public static class QueueTelemetry
{
    /// <summary>The ActivitySource's and the Meter's name: add it to an OpenTelemetry tracer and meter provider.</summary>
    public const string Name = "PerfectQueue";

    // Tag names: OpenTelemetry's messaging conventions where one fits, ours (perfectqueue.*) for the rest.
    public const string TableTag = "perfectqueue.table";
    public const string KeyTag = "perfectqueue.task.key";
    public const string TypeTag = "perfectqueue.task.type";
    public const string AttemptTag = "perfectqueue.task.attempt";
    public const string OutcomeTag = "perfectqueue.task.outcome";
    public const string SessionTag = "perfectqueue.worker.session";
    public const string CountTag = "messaging.batch.message_count";

    // Instrument names.
    public const string Submitted = "perfectqueue.tasks.submitted";
    public const string Acquired = "perfectqueue.tasks.acquired";
    public const string Succeeded = "perfectqueue.tasks.succeeded";
    public const string Retried = "perfectqueue.tasks.retried";
    public const string Failed = "perfectqueue.tasks.failed";
    public const string Cancelled = "perfectqueue.tasks.cancelled";
    public const string Running = "perfectqueue.tasks.running";
    public const string RunDuration = "perfectqueue.task.run.duration";
    public const string QueueWait = "perfectqueue.task.queue.wait";

    private static readonly string? Version = typeof(QueueTelemetry).Assembly.GetName().Version?.ToString(3);

    internal static readonly ActivitySource Source = new(Name, Version);
    internal static readonly Meter Meter = new(Name, Version);

    internal static readonly Counter<long> SubmittedCounter = Meter.CreateCounter<long>(Submitted, "{task}", "Tasks stored by submit (duplicates refused are not counted).");
    internal static readonly Counter<long> AcquiredCounter = Meter.CreateCounter<long>(Acquired, "{task}", "Tasks leased by acquire.");
    internal static readonly Counter<long> SucceededCounter = Meter.CreateCounter<long>(Succeeded, "{task}", "Attempts that ended Succeeded.");
    internal static readonly Counter<long> RetriedCounter = Meter.CreateCounter<long>(Retried, "{task}", "Attempts that ended with a retry.");
    internal static readonly Counter<long> FailedCounter = Meter.CreateCounter<long>(Failed, "{task}", "Tasks that ended Failed (out of attempts, or failed by their handler).");
    internal static readonly Counter<long> CancelledCounter = Meter.CreateCounter<long>(Cancelled, "{task}", "Tasks that ended Cancelled.");
    internal static readonly UpDownCounter<long> RunningCounter = Meter.CreateUpDownCounter<long>(Running, "{task}", "Handlers running now in this process.");
    internal static readonly Histogram<double> RunDurationHistogram = Meter.CreateHistogram<double>(RunDuration, "s", "How long a handler ran, by type and outcome.");
    internal static readonly Histogram<double> QueueWaitHistogram = Meter.CreateHistogram<double>(QueueWait, "s", "From submit to the start of the first attempt (a delay or run-at given at submit included).");

    /// <summary>The W3C traceparent of the current activity, stored with a submitted task; null when there is none.</summary>
    internal static string? CurrentTraceParent() =>
        Activity.Current is { IdFormat: ActivityIdFormat.W3C } current ? current.Id : null;

    /// <summary>A link to the submit's trace, when the task was stored with one that parses.</summary>
    internal static ActivityLink[]? LinkTo(string? traceParent) =>
        traceParent is not null && ActivityContext.TryParse(traceParent, null, out var context) ? [new ActivityLink(context)] : null;
}
