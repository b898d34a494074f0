using System.Management.Automation;
using PerfectQueue.Schedules;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// What Suspend-PQSchedule and Resume-PQSchedule share: schedules by name (from the pipeline too), one
/// ShouldProcess and one per-item error each, the changed schedule with -PassThru. Each says only what it does.
/// </summary>
public abstract class ScheduleStateCmdlet : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ScheduleNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>The verb ShouldProcess shows ("Suspend", "Resume").</summary>
    private protected abstract string Action { get; }

    /// <summary>Changes one schedule; returns it as stored after the change.</summary>
    private protected abstract Task<ScheduleInfo> ApplyAsync(Queue queue, string name, CancellationToken ct);

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var name in Name)
        {
            if (!ShouldProcess($"schedule '{name}' on {queue.Description}", Action)) continue;
            RunItem(name, () =>
            {
                var schedule = ApplyAsync(queue, name, StopToken).GetAwaiter().GetResult();
                if (PassThru) WriteObject(new PQSchedule(schedule, queue));
            });
        }
    }
}
