using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Returns a queue object for -Queue without changing the session's default (Connect-PQQueue changes it). Opening
/// reads or creates nothing: the first command that uses the queue connects.
/// </summary>
[Cmdlet(VerbsCommon.Open, "PQQueue", DefaultParameterSetName = UrlSet)]
[OutputType(typeof(Queue))]
public sealed class OpenPQQueueCommand : QueueSelectionCmdlet
{
    protected override void EndProcessing()
    {
        var queue = OpenSelectedQueue();
        WriteVerbose($"Opened {queue.Description}; this session's default queue is unchanged.");
        WriteObject(queue);
    }
}
