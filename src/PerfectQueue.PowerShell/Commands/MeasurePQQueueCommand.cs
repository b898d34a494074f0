using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Counts the queue's tasks per status, type and user, and ages the oldest waiting one.</summary>
[Cmdlet(VerbsDiagnostic.Measure, "PQQueue")]
[OutputType(typeof(PQQueueMeasure))]
public sealed class MeasurePQQueueCommand : PQCmdlet
{
    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        RunItem(queue.Description, () => WriteObject(new PQQueueMeasure(queue.SummarizeAsync(StopToken).GetAwaiter().GetResult())));
    }
}
