using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Lifts pauses made by Suspend-PQQueue: exactly the scopes named (-Type, -User, each combination; none of either:
/// the whole-queue pause), or every pause (-All). A scope that is not paused is a warning, and nothing changes.
/// </summary>
[Cmdlet(VerbsLifecycle.Resume, "PQQueue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = ScopeSet)]
[OutputType(typeof(PQPause))]
public sealed class ResumePQQueueCommand : PQCmdlet
{
    private const string ScopeSet = "Scope";
    private const string AllSet = "All";

    /// <summary>Resume the pauses of these task types (each with each -User).</summary>
    [Parameter(Position = 0, ParameterSetName = ScopeSet, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(TaskTypeCompleter))]
    public string[]? Type { get; set; }

    /// <summary>Resume the pauses of these users (each with each -Type).</summary>
    [Parameter(ParameterSetName = ScopeSet, ValueFromPipelineByPropertyName = true)]
    public string[]? User { get; set; }

    /// <summary>Resume every pause of the queue.</summary>
    [Parameter(Mandatory = true, ParameterSetName = AllSet)]
    public SwitchParameter All { get; set; }

    /// <summary>Write each pause removed.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        List<(string? Type, string? User)> scopes = [];
        if (All)
            RunItem(queue.Description, () => scopes = queue.ListPausesAsync(false, StopToken).GetAwaiter().GetResult().Select(p => (p.Type, p.User)).ToList());
        else scopes = PauseScopes.CombineOrStop(this, Type, User);
        foreach (var (type, user) in scopes)
        {
            var scope = QueuePause.Describe(type, user);
            if (!ShouldProcess($"{scope} of {queue.Description}", "Resume (workers acquire its waiting tasks again)")) continue;
            RunItem(scope, () =>
            {
                var removed = queue.ResumeAsync(type, user, StopToken).GetAwaiter().GetResult();
                if (removed is null)
                {
                    WriteWarning($"{char.ToUpperInvariant(scope[0])}{scope[1..]} is not paused in {queue.Description}: nothing to resume. Get-PQQueuePause lists the pauses; a pause is lifted only by its own scope (or -All).");
                    return;
                }
                WriteVerbose($"{removed.Scope} resumed (paused since {removed.Since.LocalDateTime}).");
                if (PassThru) WriteObject(new PQPause(removed, queue));
            });
        }
    }
}
