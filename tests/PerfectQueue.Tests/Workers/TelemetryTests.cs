using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using PerfectQueue.Telemetry;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>
/// What an OpenTelemetry SDK would see, seen through .NET's own listeners (the SDK is built on them): a submit's
/// span, the run's span linked to it, the finish as the run's child, and the Meter's counters. Listeners are
/// process-wide and other tests run beside these, so every assertion picks this test's table or keys.
/// </summary>
public sealed class TelemetryTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    private static readonly ActivitySource Caller = new("PerfectQueue.Tests.Caller");

    private static ActivityListener Listen(ConcurrentQueue<Activity> stopped)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is QueueTelemetry.Name or "PerfectQueue.Tests.Caller",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    private static WorkerOptions Fast => new() { PollInterval = TimeSpan.FromMilliseconds(50), UntilEmpty = true };

    [Fact]
    public async Task A_run_is_linked_to_the_trace_that_submitted_its_task_and_its_finish_is_the_runs_child()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = Listen(stopped);
        using var q = Queue.Open(sqlite.NewConfig());
        q.Initialize();
        var key = $"traced-{Guid.NewGuid():N}";

        string? submitTraceId;
        using (var caller = Caller.StartActivity("nightly script"))
        {
            submitTraceId = caller!.TraceId.ToString();
            q.Submit(key, "report");
        }
        Activity? seenByHandler = null;
        string? traceParentSeen = null;
        var worker = new Worker(q, Fast, _ => new DelegateProcessor((t, _) =>
        {
            seenByHandler = Activity.Current;
            traceParentSeen = t.TraceParent;
            return Task.CompletedTask;
        }));
        await worker.RunAsync(CancellationToken.None, CancellationToken.None);

        var mine = stopped.Where(a => Equals(a.GetTagItem(QueueTelemetry.KeyTag), key)).ToList();
        var submit = Assert.Single(mine, a => a.OperationName == "perfectqueue submit");
        Assert.Equal(ActivityKind.Producer, submit.Kind);
        Assert.Equal(submitTraceId, submit.TraceId.ToString());          // a child of the caller's span
        Assert.Equal(q.Config.Table, submit.GetTagItem(QueueTelemetry.TableTag));

        var run = Assert.Single(mine, a => a.OperationName == "perfectqueue run report");
        Assert.Equal(ActivityKind.Consumer, run.Kind);
        var link = Assert.Single(run.Links);
        Assert.Equal(submit.TraceId, link.Context.TraceId);                // linked to the submit, in the caller's trace
        Assert.Equal(submit.SpanId, link.Context.SpanId);
        Assert.NotEqual(submit.TraceId, run.TraceId);                       // a trace of its own: a worker has no caller
        Assert.Equal(submit.Id, traceParentSeen);                           // stored with the task, as W3C traceparent
        Assert.Same(run, seenByHandler);                                    // the handler runs inside the run's span
        Assert.Equal(("report", 1, "Succeeded"), ((string?)run.GetTagItem(QueueTelemetry.TypeTag), (int?)run.GetTagItem(QueueTelemetry.AttemptTag), (string?)run.GetTagItem(QueueTelemetry.OutcomeTag)));
        Assert.Equal(ActivityStatusCode.Ok, run.Status);
        Assert.Equal(worker.SessionId, run.GetTagItem(QueueTelemetry.SessionTag));

        var finish = Assert.Single(mine, a => a.OperationName == "perfectqueue finish");
        Assert.Equal(run.SpanId, finish.ParentSpanId);
        Assert.Equal("Succeeded", finish.GetTagItem(QueueTelemetry.OutcomeTag));
        var acquires = stopped.Where(a => a.OperationName == "perfectqueue acquire" && Equals(a.GetTagItem(QueueTelemetry.TableTag), q.Config.Table)).ToList();
        var acquire = Assert.Single(acquires); // the worker's last, empty poll makes no span
        Assert.Equal(1, acquire.GetTagItem(QueueTelemetry.CountTag));
        Assert.True(acquire.StartTimeUtc < run.StartTimeUtc && acquire.Duration > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_retried_run_is_an_error_span_with_a_retry_child_and_a_task_submitted_outside_any_trace_has_no_link()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = Listen(stopped);
        var config = sqlite.NewConfig();
        config.MaxAttempts = 3;
        using var q = Queue.Open(config);
        q.Initialize();
        var key = $"untraced-{Guid.NewGuid():N}";
        q.Submit(key, "flaky"); // no caller span: the submit span is a root, so the task still has a trace to link to
        var worker = new Worker(q, new WorkerOptions { PollInterval = TimeSpan.FromMilliseconds(50), MaxTasks = 1 }, _ => new DelegateProcessor((_, _) => throw new TimeoutException("no answer")));
        await worker.RunAsync(CancellationToken.None, CancellationToken.None);
        var mine = stopped.Where(a => Equals(a.GetTagItem(QueueTelemetry.KeyTag), key)).ToList();
        var run = Assert.Single(mine, a => a.OperationName == "perfectqueue run flaky");
        Assert.Equal(ActivityStatusCode.Error, run.Status);
        Assert.Equal("Retried", run.GetTagItem(QueueTelemetry.OutcomeTag));
        var retry = Assert.Single(mine, a => a.OperationName == "perfectqueue retry");
        Assert.Equal(run.SpanId, retry.ParentSpanId);
        var submit = Assert.Single(mine, a => a.OperationName == "perfectqueue submit");
        Assert.Equal(submit.SpanId, Assert.Single(run.Links).Context.SpanId);

        // With no listener at all, nothing is current at submit and nothing is stored: the run has no link.
        listener.Dispose();
        var quiet = $"quiet-{Guid.NewGuid():N}";
        q.Submit(quiet, "plain");
        Assert.Null((await q.PollMultiAsync(1)).Single().TraceParent);
    }

    [Fact]
    public async Task The_meter_counts_submitted_acquired_and_each_outcome_and_records_run_time_queue_wait_and_running()
    {
        var config = sqlite.NewConfig();
        config.MaxAttempts = 2;
        config.RetryWait = TimeSpan.Zero;
        config.NoticeType = ""; // no notice tasks: only this test's four tasks run
        using var q = Queue.Open(config);
        q.Initialize();
        var sums = new ConcurrentDictionary<string, double>();
        var counts = new ConcurrentDictionary<string, int>();
        var running = 0L;
        var peakRunning = 0L;
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, l) => { if (instrument.Meter.Name == QueueTelemetry.Name) l.EnableMeasurementEvents(instrument); },
        };
        void OnMeasurement(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var ours = false;
            foreach (var tag in tags) if (tag.Key == QueueTelemetry.TableTag && Equals(tag.Value, config.Table)) ours = true;
            if (!ours) return;
            sums.AddOrUpdate(instrument.Name, value, (_, v) => v + value);
            counts.AddOrUpdate(instrument.Name, 1, (_, n) => n + 1);
            if (instrument.Name == QueueTelemetry.Running)
            {
                var now = Interlocked.Add(ref running, (long)value);
                long peak;
                while (now > (peak = Interlocked.Read(ref peakRunning)) && Interlocked.CompareExchange(ref peakRunning, now, peak) != peak) { }
            }
        }
        meters.SetMeasurementEventCallback<long>((i, v, t, _) => OnMeasurement(i, v, t));
        meters.SetMeasurementEventCallback<double>((i, v, t, _) => OnMeasurement(i, v, t));
        meters.Start();

        Assert.Equal([true, true, true, true, false], q.SubmitMany([new("ok", "ok"), new("flaky", "flaky"), new("bad", "bad"), new("no", "cancel"), new("ok", "ok")]));
        var worker = new Worker(q, Fast, _ => new DelegateProcessor(async (t, _) =>
        {
            switch (t.Type)
            {
                case "flaky" when t.Attempt == 1: throw new TimeoutException("try again");
                case "bad": throw new InvalidOperationException("broken");
                case "cancel": await t.FinishAsync(TaskOutcome.Cancelled, "not today"); break;
            }
        }));
        var summary = await worker.RunAsync(CancellationToken.None, CancellationToken.None);
        Assert.Equal((2, 2, 1, 1), (summary.Succeeded, summary.Retried, summary.Failed, summary.Cancelled));

        Assert.Equal(4, sums[QueueTelemetry.Submitted]);           // the duplicate is not counted
        Assert.Equal(6, sums[QueueTelemetry.Acquired]);            // ok, flaky twice, bad twice, no
        Assert.Equal(2, sums[QueueTelemetry.Succeeded]);
        Assert.Equal(2, sums[QueueTelemetry.Retried]);
        Assert.Equal(1, sums[QueueTelemetry.Failed]);
        Assert.Equal(1, sums[QueueTelemetry.Cancelled]);
        Assert.Equal(6, counts[QueueTelemetry.RunDuration]);       // one per run
        Assert.Equal(4, counts[QueueTelemetry.QueueWait]);         // one per task: its first attempt
        Assert.Equal(0, Interlocked.Read(ref running));            // every run that started ended
        Assert.True(Interlocked.Read(ref peakRunning) >= 1);
    }
}
