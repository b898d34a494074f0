using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Pauses the queue, or some task types or users of it, for maintenance: workers acquire no waiting task of a
/// paused scope (running tasks finish), and submits are still accepted. Pausing what is paused already keeps that pause.
/// </summary>
[Cmdlet(VerbsLifecycle.Suspend, "PQQueue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(PQPause))]
public sealed class SuspendPQQueueCommand : PQCmdlet
{
    /// <summary>Pause only these task types (each with each -User); none: every type.</summary>
    [Parameter(Position = 0)]
    [ArgumentCompleter(typeof(TaskTypeCompleter))]
    public string[]? Type { get; set; }

    /// <summary>Pause only these users' tasks (each with each -Type); none: every user.</summary>
    [Parameter]
    public string[]? User { get; set; }

    /// <summary>Why, shown by Get-PQQueuePause, Measure-PQQueue and the workers' log.</summary>
    [Parameter]
    public string? Reason { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        var scopes = PauseScopes.CombineOrStop(this, Type, User);
        foreach (var (type, user) in scopes)
        {
            var scope = QueuePause.Describe(type, user);
            if (!ShouldProcess($"{scope} of {queue.Description}", "Pause (workers acquire none of its waiting tasks until Resume-PQQueue)")) continue;
            RunItem(scope, () =>
            {
                var pause = queue.PauseAsync(type, user, Reason, StopToken).GetAwaiter().GetResult();
                if (!pause.Created)
                    WriteVerbose($"{pause.Scope} was paused already, since {pause.Since.LocalDateTime}{(pause.PausedBy is null ? "" : $" by {pause.PausedBy}")}: that pause is kept as it was.");
                WriteObject(new PQPause(pause, queue));
            });
        }
    }
}
