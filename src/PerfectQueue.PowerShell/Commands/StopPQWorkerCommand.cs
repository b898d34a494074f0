using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Asks workers, on any host, to stop gracefully: each sees the request at its next heartbeat, acquires
/// nothing more, lets its running tasks end and exits with its summary.
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "PQWorker", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(PQWorker))]
public sealed class StopPQWorkerCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(WorkerIdCompleter))]
    public string[] Id { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var id in Id)
        {
            if (!ShouldProcess($"worker session '{id}' on {queue.Description}", "Request stop")) continue;
            RunItem(id, () =>
            {
                var session = queue.RequestWorkerStopAsync(id, StopToken).GetAwaiter().GetResult();
                if (session is null)
                {
                    WriteError(PQErrors.WorkerNotFoundError(id, queue.Description));
                    return;
                }
                if (session.State == WorkerState.Dead)
                    WriteWarning($"Worker session '{session.Id}' ({session.Host}, pid {session.Pid}) is dead: no beat since {session.LastBeatAt.LocalDateTime}. No worker will see the request; cleanup deletes the session after retention_time.");
                else
                    WriteVerbose($"Worker session '{session.Id}' ({session.Host}, pid {session.Pid}) stops at its next heartbeat, once its {session.Running} running task(s) end.");
                if (PassThru) WriteObject(new PQWorker(session, queue));
            });
        }
    }
}
