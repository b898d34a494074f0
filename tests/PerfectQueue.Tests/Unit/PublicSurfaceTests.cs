using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>
/// The engine's public surface, pinned: scripts reach every public type through a type accelerator, so a type made
/// public becomes de facto API. The storage layer (stores, rows, SQL) is internal; a change here is a decision.
/// </summary>
public sealed class PublicSurfaceTests
{
    private static readonly string[] Expected =
    [
        "PerfectQueue.AcquiredTask", "PerfectQueue.AlreadyExistsException", "PerfectQueue.AlreadyFinishedException",
        "PerfectQueue.CancelRequestedException", "PerfectQueue.ConfigException", "PerfectQueue.DataCompression",
        "PerfectQueue.GracefulProcessStopException", "PerfectQueue.HeartbeatReport", "PerfectQueue.HeartbeatResult",
        "PerfectQueue.IdempotentAlreadyExistsException", "PerfectQueue.IdempotentAlreadyFinishedException",
        "PerfectQueue.IdempotentNotFoundException", "PerfectQueue.IIdempotentError", "PerfectQueue.ImmediateProcessStopException",
        "PerfectQueue.NotFinishedException", "PerfectQueue.NotFoundException", "PerfectQueue.OperationNotSupportedException", "PerfectQueue.PerfectQueueException",
        "PerfectQueue.PreemptedException", "PerfectQueue.PreemptionReason", "PerfectQueue.ProcessStopException", "PerfectQueue.Queue",
        "PerfectQueue.QueueConfig", "PerfectQueue.QueueConfigFile", "PerfectQueue.QueueCount", "PerfectQueue.QueueNotInitializedException", "PerfectQueue.QueuePause",
        "PerfectQueue.QueueSummary", "PerfectQueue.RetryBackoff", "PerfectQueue.RetryPolicy", "PerfectQueue.SubmitOptions",
        "PerfectQueue.TaskDataException", "PerfectQueue.TaskException", "PerfectQueue.TaskFilter", "PerfectQueue.TaskInfo",
        "PerfectQueue.TaskOutcome", "PerfectQueue.TaskReference", "PerfectQueue.TaskState", "PerfectQueue.TaskSubmission",
        "PerfectQueue.WorkerSessionInfo", "PerfectQueue.WorkerState",
        // Schedules (issue 12): the notice builder and the schedule model.
        "PerfectQueue.Notices", "PerfectQueue.Schedules.ScheduleAlreadyExistsException", "PerfectQueue.Schedules.ScheduleChange",
        "PerfectQueue.Schedules.ScheduleCron", "PerfectQueue.Schedules.ScheduleDefinition", "PerfectQueue.Schedules.ScheduleInfo",
        "PerfectQueue.Schedules.ScheduleMissedRuns", "PerfectQueue.Schedules.ScheduleNames", "PerfectQueue.Schedules.ScheduleNotFoundException",
        "PerfectQueue.Schedules.ScheduleOverlap",
        // Attempt history (issue 12): Queue.GetHistory's entries.
        "PerfectQueue.TaskAttempt",
        "PerfectQueue.Application.Base", "PerfectQueue.Application.CompiledProcessor", "PerfectQueue.Application.Dispatch",
        "PerfectQueue.Workers.ChildProcessSettings", "PerfectQueue.Workers.ITaskProcessor", "PerfectQueue.Workers.NoHandlerException",
        "PerfectQueue.Workers.ProcessorFailedException", "PerfectQueue.Workers.ProcessorKilledException", "PerfectQueue.Workers.ProcessorType",
        "PerfectQueue.Workers.Worker", "PerfectQueue.Workers.WorkerEvent", "PerfectQueue.Workers.WorkerOptions",
        // Telemetry (issue 14): the ActivitySource's and Meter's name, tag and instrument names.
        "PerfectQueue.Telemetry.QueueTelemetry",
        // Structured log events (issue 14): their names, levels and the text and JSON line formats.
        "PerfectQueue.Workers.WorkerEventFormat", "PerfectQueue.Workers.WorkerEventLevel", "PerfectQueue.Workers.WorkerEvents", "PerfectQueue.Workers.WorkerLogFormat",
        "PerfectQueue.Workers.WorkerStopReason", "PerfectQueue.Workers.WorkerSummary",
        // The dashboard (issue 15): a .NET host can serve it without PowerShell.
        "PerfectQueue.Dashboard.DashboardOptions", "PerfectQueue.Dashboard.DashboardServer",
    ];

    [Fact]
    public void The_engine_exports_exactly_the_pinned_types()
    {
        var exported = typeof(Queue).Assembly.GetExportedTypes().Select(t => t.FullName!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(Expected.Order(StringComparer.Ordinal).ToList(), exported);
    }

    [Fact]
    public void No_storage_type_is_public()
    {
        Assert.DoesNotContain(typeof(Queue).Assembly.GetExportedTypes(), t => t.Namespace?.StartsWith("PerfectQueue.Storage", StringComparison.Ordinal) == true);
    }
}
