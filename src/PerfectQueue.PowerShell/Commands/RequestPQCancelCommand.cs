using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Asks tasks to cancel (the original's cancel_request). A task nobody runs is finished as Cancelled at
/// once and is never handed out; a running one is told at its worker's next heartbeat.
/// </summary>
[Cmdlet(VerbsLifecycle.Request, "PQCancel", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(PQTask))]
public sealed class RequestPQCancelCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[] Key { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var key in Key)
        {
            if (!ShouldProcess($"task '{key}' on {queue.Description}", "Request cancel")) continue;
            RunItem(key, () =>
            {
                var state = queue[key].CancelRequestAsync(StopToken).GetAwaiter().GetResult();
                WriteVerbose(state == TaskState.Finished
                    ? $"Task '{key}' was not running: it is finished as Cancelled."
                    : $"Task '{key}' is running: its worker is told at its next heartbeat.");
                if (PassThru) WriteObject(new PQTask(queue[key].GetInfoAsync(StopToken).GetAwaiter().GetResult(), queue));
            });
        }
    }
}
