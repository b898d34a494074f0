namespace PerfectQueue.PowerShell;

/// <summary>Completes -Name with the names of the queue's schedules.</summary>
public sealed class ScheduleNameCompleter : QueueValueCompleter
{
    protected override IEnumerable<string> Values(Queue queue, string prefix) =>
        queue.ListSchedules().Select(s => s.Name);
}
