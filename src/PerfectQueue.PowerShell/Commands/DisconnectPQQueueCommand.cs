using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Forgets this session's default queue (and closes it, if Connect-PQQueue opened it).</summary>
[Cmdlet(VerbsCommunications.Disconnect, "PQQueue")]
[OutputType(typeof(void))]
public sealed class DisconnectPQQueueCommand : PSCmdlet
{
    protected override void EndProcessing()
    {
        var current = PQSession.Default;
        PQSession.SetDefault(null, owned: false);
        WriteVerbose(current is null
            ? "This session had no default queue."
            : $"This session no longer uses {current.Description}; commands fall back to $env:{PQSession.UrlVariable}, then the embedded default.");
    }
}
