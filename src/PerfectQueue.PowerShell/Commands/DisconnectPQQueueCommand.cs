using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Forgets this session's default queue; commands fall back to $env:PERFECTQUEUE_URL, then the embedded
/// default. The queue itself stays usable by anyone who holds it (with -Queue, or through task objects).
/// </summary>
[Cmdlet(VerbsCommunications.Disconnect, "PQQueue")]
[OutputType(typeof(void))]
public sealed class DisconnectPQQueueCommand : PSCmdlet
{
    protected override void EndProcessing()
    {
        var current = PQSession.Default;
        PQSession.SetDefault(null);
        WriteVerbose(current is null
            ? "This session had no default queue."
            : $"This session no longer uses {current.Description}; commands fall back to $env:{PQSession.UrlVariable}, then the embedded default.");
    }
}
