using System.Management.Automation;
using PerfectQueue.Schedules;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Suspends schedules: a suspended schedule fires nothing until Resume-PQSchedule.</summary>
[Cmdlet(VerbsLifecycle.Suspend, "PQSchedule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(PQSchedule))]
public sealed class SuspendPQScheduleCommand : ScheduleStateCmdlet
{
    private protected override string Action => "Suspend";

    private protected override Task<ScheduleInfo> ApplyAsync(Queue queue, string name, CancellationToken ct) => queue.SuspendScheduleAsync(name, ct);
}
