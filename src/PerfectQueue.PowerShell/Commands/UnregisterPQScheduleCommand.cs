using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Deletes schedules. The tasks they fired stay; a fire already submitted still runs.</summary>
[Cmdlet(VerbsLifecycle.Unregister, "PQSchedule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class UnregisterPQScheduleCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ScheduleNameCompleter))]
    public string[] Name { get; set; } = [];

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var name in Name)
        {
            if (!ShouldProcess($"schedule '{name}' on {queue.Description}", "Unregister")) continue;
            RunItem(name, () =>
            {
                if (!queue.UnregisterScheduleAsync(name, StopToken).GetAwaiter().GetResult())
                    WriteError(PQErrors.For(new Schedules.ScheduleNotFoundException(name), name, queue.Description));
            });
        }
    }
}
