using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Resumes suspended schedules; the next fire is the first cron time after now (the suspended times are not missed runs).</summary>
[Cmdlet(VerbsLifecycle.Resume, "PQSchedule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(PQSchedule))]
public sealed class ResumePQScheduleCommand : PQCmdlet
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
            if (!ShouldProcess($"schedule '{name}' on {queue.Description}", "Resume")) continue;
            RunItem(name, () =>
            {
                var schedule = queue.ResumeScheduleAsync(name, StopToken).GetAwaiter().GetResult();
                if (PassThru) WriteObject(new PQSchedule(schedule, queue));
            });
        }
    }
}
