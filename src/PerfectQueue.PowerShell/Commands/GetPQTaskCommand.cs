using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Lists tasks (the original's list and queue[key]), oldest first.</summary>
[Cmdlet(VerbsCommon.Get, "PQTask")]
[OutputType(typeof(PQTask))]
public sealed class GetPQTaskCommand : PQCmdlet
{
    /// <summary>Only these keys; a key that does not exist is a TaskNotFound error.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[]? Key { get; set; }

    [Parameter]
    public TaskState[]? Status { get; set; }

    [Parameter]
    [ArgumentCompleter(typeof(TaskTypeCompleter))]
    public string[]? Type { get; set; }

    [Parameter]
    [ArgumentCompleter(typeof(TaskUserCompleter))]
    public string[]? User { get; set; }

    /// <summary>At most this many tasks.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? First { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        RunItem(queue.Description, () =>
        {
            var filter = new TaskFilter { Keys = Key, Statuses = Status, Types = Type, Users = User, First = First };
            var found = queue.ListAsync(filter, StopToken).GetAwaiter().GetResult();
            foreach (var info in found)
            {
                // One unreadable row is its own error; the rest of the listing still comes.
                if (info.DataError is { } why) { WriteError(PQErrors.DataUnreadable(info.Key, why)); continue; }
                PQTask task;
                try { task = new PQTask(info, queue); }
                catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
                {
                    WriteError(PQErrors.DataUnreadable(info.Key, $"its data cannot be converted for PowerShell ({e.Message}).", e));
                    continue;
                }
                WriteObject(task);
            }
            if (Key is null || First is not null || Status is not null || Type is not null || User is not null) return;
            var seen = found.Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
            foreach (var missing in Key.Where(k => !seen.Contains(k)))
                WriteError(PQErrors.For(new NotFoundException($"No task has the key '{missing}' in {queue.Description}.", missing), missing));
        });
    }
}
