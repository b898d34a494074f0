using System.Management.Automation;
using PerfectQueue.Schedules;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Resumes suspended schedules; the next fire is the first cron time after now (the suspended times are not missed runs).</summary>
[Cmdlet(VerbsLifecycle.Resume, "PQSchedule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(PQSchedule))]
public sealed class ResumePQScheduleCommand : ScheduleStateCmdlet
{
    private protected override string Action => "Resume";

    private protected override Task<ScheduleInfo> ApplyAsync(Queue queue, string name, CancellationToken ct) => queue.ResumeScheduleAsync(name, ct);
}
