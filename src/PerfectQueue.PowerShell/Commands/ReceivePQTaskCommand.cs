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
            var tasks = queue.PollMultiAsync(Count, AliveTime, StopToken).GetAwaiter().GetResult();
            // The acquire has committed: from here a task not handed out would stay leased for -AliveTime, with
            // its attempt counted. So whatever cannot be handed out (its data cannot be converted, or the
            // pipeline stopped before it was written) is released, fenced and uncounted.
            var done = 0; // handed out, or released here
            try
            {
                while (done < tasks.Count)
                {
                    var task = tasks[done++]; // once written it is the caller's, even if the pipeline then stops
                    PQAcquiredTask output;
                    try { output = new PQAcquiredTask(task, queue); }
                    catch (Exception e) when (e is TaskDataException or InvalidOperationException or FormatException or ArgumentException)
                    {
                        var released = Release(task);
                        var why = e is TaskDataException ? e.InnerException?.Message ?? e.Message : $"its data cannot be converted for PowerShell ({e.Message}).";
                        WriteError(PQErrors.DataUnreadable(task.Key, $"{why} {released}", e));
                        continue;
                    }
                    WriteObject(output);
                }
            }
            finally
            {
                for (var i = done; i < tasks.Count; i++) Release(tasks[i]);
            }
        });
    }

    // Gives a task back at once without counting the attempt; returns what happened, for the error text.
    private static string Release(AcquiredTask task)
    {
        try
        {
            task.ReleaseAsync(CancellationToken.None).GetAwaiter().GetResult();
            return "It was released (its attempt not counted).";
        }
        catch (Exception e) when (e is PerfectQueueException or System.Data.Common.DbException or TimeoutException or InvalidOperationException)
        {
            return $"Releasing it failed ({e.Message}): its lease ends after -AliveTime.";
        }
    }
}
