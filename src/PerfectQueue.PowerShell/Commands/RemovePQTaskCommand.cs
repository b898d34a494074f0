using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Deletes finished tasks, so their keys are free at once instead of after retention_time. A task that is not
/// finished is refused (TaskNotFinished), per key: cancel or complete it first.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "PQTask", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemovePQTaskCommand : PQCmdlet
{
    /// <summary>Exact keys (no wildcards: a removal names the tasks it deletes).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[] Key { get; set; } = [];

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var key in Key)
        {
            if (!ShouldProcess($"task '{key}' on {queue.Description}", "Remove (delete the finished task and free its key)")) continue;
            RunItem(key, () =>
            {
                queue.RemoveAsync(key, StopToken).GetAwaiter().GetResult();
                WriteVerbose($"Task '{key}' is deleted; its key is free.");
            });
        }
    }
}
