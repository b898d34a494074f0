using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// The attempts of tasks by key, oldest first (docs/history.md): when each ran, where, how it ended, and what its handler
/// wrote. Attempts whose worker died without writing show as Lost. A missing key is a TaskNotFound error for that key.
/// </summary>
[Cmdlet(VerbsCommon.Get, "PQTaskHistory")]
[OutputType(typeof(PQTaskAttempt))]
public sealed class GetPQTaskHistoryCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[] Key { get; set; } = [];

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var key in Key)
            RunItem(key, () =>
            {
                var history = queue.GetHistoryAsync(key, StopToken).GetAwaiter().GetResult()
                    ?? throw new NotFoundException($"No task has the key '{key}' in {queue.Description} (finished tasks are kept for retention_time). Check the key with Get-PQTask.", key);
                foreach (var attempt in history) WriteObject(new PQTaskAttempt(attempt, queue));
            });
    }
}
