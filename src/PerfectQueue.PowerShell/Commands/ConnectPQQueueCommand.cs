using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Chooses the queue this session's PerfectQueue commands use (the original's PerfectQueue.open). For a queue
/// object that leaves the session's default alone, Open-PQQueue takes the same parameters.
/// </summary>
[Cmdlet(VerbsCommunications.Connect, "PQQueue", DefaultParameterSetName = UrlSet)]
[OutputType(typeof(Queue))]
public sealed class ConnectPQQueueCommand : QueueSelectionCmdlet
{
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void EndProcessing()
    {
        var queue = OpenSelectedQueue();
        PQSession.SetDefault(queue);
        WriteVerbose($"This session's PerfectQueue commands now use {queue.Description}.");
        if (PassThru) WriteObject(queue);
    }
}
