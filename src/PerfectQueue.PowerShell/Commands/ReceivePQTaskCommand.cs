using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Acquires due tasks for this session to process (the original's poll and poll_multi): each is leased
/// for -AliveTime. Finish them with Complete-PQTask or $task.Finish(), or give them back with
/// $task.Retry() or $task.Release(). Returns nothing when no task is due.
/// </summary>
[Cmdlet(VerbsCommunications.Receive, "PQTask", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(PQAcquiredTask))]
public sealed class ReceivePQTaskCommand : PQCmdlet
{
    /// <summary>At most this many tasks (one statement acquires them all).</summary>
    [Parameter(Position = 0)]
    [ValidateRange(1, PerfectQueue.Queue.MaxBatch)]
    public int Count { get; set; } = 1;

    /// <summary>The lease (a TimeSpan, or seconds). Default: the queue's alive_time (300 s).</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? AliveTime { get; set; }

    protected override void ProcessRecord()
    {
        if (AliveTime is { } alive && alive <= TimeSpan.Zero)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("-AliveTime must be more than zero."), PQErrors.InvalidArgument, ErrorCategory.InvalidArgument, AliveTime));
        var queue = CurrentQueue();
        if (!ShouldProcess(queue.Description, $"Acquire up to {Count} task{(Count == 1 ? "" : "s")}")) return;
        RunItem(queue.Description, () =>
        {
            foreach (var task in queue.PollMultiAsync(Count, AliveTime, StopToken).GetAwaiter().GetResult())
                WriteObject(new PQAcquiredTask(task, queue));
        });
    }
}
