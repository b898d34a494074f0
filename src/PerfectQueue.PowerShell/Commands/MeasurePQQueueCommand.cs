using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Counts the queue's tasks per status, type and user, ages the oldest waiting one, and says what is paused.</summary>
[Cmdlet(VerbsDiagnostic.Measure, "PQQueue")]
[OutputType(typeof(PQQueueMeasure))]
public sealed class MeasurePQQueueCommand : PQCmdlet
{
    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        RunItem(queue.Description, () =>
        {
            var measure = new PQQueueMeasure(queue.SummarizeAsync(StopToken).GetAwaiter().GetResult());
            // What is paused, and how much of the waiting work that holds back (docs/pause.md).
            measure.Paused = queue.ListPausesAsync(false, StopToken).GetAwaiter().GetResult().Select(p => p.Scope).ToArray();
            if (measure.Paused.Length > 0) measure.PausedWaiting = queue.CountPausedAsync(StopToken).GetAwaiter().GetResult();
            WriteObject(measure);
        });
    }
}
