using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Lists the queue's pauses (Suspend-PQQueue), oldest first, each with how many waiting tasks it holds back.</summary>
[Cmdlet(VerbsCommon.Get, "PQQueuePause")]
[OutputType(typeof(PQPause))]
public sealed class GetPQQueuePauseCommand : PQCmdlet
{
    /// <summary>Only pauses of these task types (a pause of every type is not one of them).</summary>
    [Parameter(Position = 0)]
    [ArgumentCompleter(typeof(TaskTypeCompleter))]
    public string[]? Type { get; set; }

    /// <summary>Only pauses of these users.</summary>
    [Parameter]
    public string[]? User { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        RunItem(queue.Description, () =>
        {
            foreach (var pause in queue.ListPausesAsync(true, StopToken).GetAwaiter().GetResult())
            {
                if (Type is { Length: > 0 } && !Type.Contains(pause.Type, StringComparer.Ordinal)) continue;
                if (User is { Length: > 0 } && !User.Contains(pause.User, StringComparer.Ordinal)) continue;
                WriteObject(new PQPause(pause, queue));
            }
        });
    }
}
