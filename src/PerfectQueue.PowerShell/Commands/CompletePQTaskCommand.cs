using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Finishes tasks. By key it force-finishes whatever the state (the original's force_finish; the task's
/// worker learns at its next heartbeat). With a task from Receive-PQTask it finishes that acquired task
/// (the original's finish!), as Succeeded unless -Outcome says otherwise.
/// </summary>
/// <remarks>
/// InputObject is the default set so that piped acquired tasks bind as themselves, not by their Key
/// property (which would force-finish them); tasks from Get-PQTask still bind by Key.
/// </remarks>
[Cmdlet(VerbsLifecycle.Complete, "PQTask", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = InputObjectSet)]
[OutputType(typeof(PQTask))]
public sealed class CompletePQTaskCommand : PQCmdlet
{
    private const string KeySet = "Key";
    private const string InputObjectSet = "InputObject";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = KeySet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[] Key { get; set; } = [];

    /// <summary>A task this session acquired with Receive-PQTask.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = InputObjectSet)]
    public PQAcquiredTask[] InputObject { get; set; } = [];

    /// <summary>How an acquired task ended (Succeeded, Failed or Cancelled).</summary>
    [Parameter(ParameterSetName = InputObjectSet)]
    [ValidateSet(nameof(TaskOutcome.Succeeded), nameof(TaskOutcome.Failed), nameof(TaskOutcome.Cancelled))]
    public TaskOutcome Outcome { get; set; } = TaskOutcome.Succeeded;

    [Parameter]
    public string? Message { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == InputObjectSet)
        {
            foreach (var task in InputObject)
            {
                if (!ShouldProcess($"task '{task.Key}' on {task.Queue.Description}", $"Finish as {Outcome}")) continue;
                RunItem(task.Key, () =>
                {
                    task.Task.FinishAsync(Outcome, Message, StopToken).GetAwaiter().GetResult();
                    PassThruTask(task.Queue, task.Key);
                });
            }
            return;
        }
        var queue = CurrentQueue();
        foreach (var key in Key)
        {
            if (!ShouldProcess($"task '{key}' on {queue.Description}", "Force finish")) continue;
            RunItem(key, () =>
            {
                queue[key].ForceFinishAsync(Message, StopToken).GetAwaiter().GetResult();
                PassThruTask(queue, key);
            });
        }
    }

    private void PassThruTask(Queue queue, string key)
    {
        if (PassThru) WriteObject(new PQTask(queue[key].GetInfoAsync(StopToken).GetAwaiter().GetResult(), queue));
    }
}
