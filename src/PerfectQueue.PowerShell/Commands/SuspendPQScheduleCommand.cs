using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Suspends schedules: a suspended schedule fires nothing until Resume-PQSchedule.</summary>
[Cmdlet(VerbsLifecycle.Suspend, "PQSchedule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(PQSchedule))]
public sealed class SuspendPQScheduleCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ScheduleNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var name in Name)
        {
            if (!ShouldProcess($"schedule '{name}' on {queue.Description}", "Suspend")) continue;
            RunItem(name, () =>
            {
                var schedule = queue.SuspendScheduleAsync(name, StopToken).GetAwaiter().GetResult();
                if (PassThru) WriteObject(new PQSchedule(schedule, queue));
            });
        }
    }
}
