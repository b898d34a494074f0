using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Deletes finished tasks, so their keys are free at once instead of after retention_time: by key, or every
/// finished task that ended more than -OlderThan ago (optionally only some outcomes). A task that is not
/// finished is refused (TaskNotFinished), per key: cancel or complete it first.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "PQTask", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = KeySet)]
[OutputType(typeof(void))]
public sealed class RemovePQTaskCommand : PQCmdlet
{
    private const string KeySet = "Key";
    private const string AgeSet = "Age";

    /// <summary>Exact keys (no wildcards: a removal names the tasks it deletes).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = KeySet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[] Key { get; set; } = [];

    /// <summary>Every finished task that finished at least this long ago (database clock; a TimeSpan, or seconds).</summary>
    [Parameter(Mandatory = true, ParameterSetName = AgeSet)]
    [DurationTransformation]
    public TimeSpan OlderThan { get; set; }

    /// <summary>With -OlderThan: only finished tasks with these outcomes.</summary>
    [Parameter(ParameterSetName = AgeSet)]
    [ValidateNotNullOrEmpty]
    public TaskOutcome[]? Outcome { get; set; }

    protected override void BeginProcessing()
    {
        if (ParameterSetName == AgeSet && OlderThan < TimeSpan.Zero)
            ThrowTerminatingError(PQErrors.InvalidArgumentError(new ArgumentException(
                $"-OlderThan must not be negative (got {OlderThan}). Give how long ago the tasks finished, such as 7.00:00:00 or 604800 (seconds)."), OlderThan));
    }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        if (ParameterSetName == AgeSet)
        {
            RunItem(queue.Description, () =>
            {
                // The cut-off on the database clock, which stamped FinishedAt; each removal still checks the task is finished.
                var before = queue.Now() - OlderThan;
                var finished = queue.ListAsync(new TaskFilter { Statuses = [TaskState.Finished], Outcomes = Outcome }, StopToken).GetAwaiter().GetResult();
                foreach (var info in finished.Where(t => t.FinishedAt <= before)) Remove(queue, info.Key);
            });
            return;
        }
        foreach (var key in Key) Remove(queue, key);
    }

    private void Remove(Queue queue, string key)
    {
        if (!ShouldProcess($"task '{key}' on {queue.Description}", "Remove (delete the finished task and free its key)")) return;
        RunItem(key, () =>
        {
            queue.RemoveAsync(key, StopToken).GetAwaiter().GetResult();
            WriteVerbose($"Task '{key}' is deleted; its key is free.");
        });
    }
}
