using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Lists worker sessions, live and dead (until cleanup deletes them), oldest first.</summary>
[Cmdlet(VerbsCommon.Get, "PQWorker")]
[OutputType(typeof(PQWorker))]
public sealed class GetPQWorkerCommand : PQCmdlet
{
    /// <summary>Only these sessions; an id no session has is a WorkerNotFound error.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(WorkerIdCompleter))]
    public string[]? Id { get; set; }

    /// <summary>Only sessions in these states.</summary>
    [Parameter]
    public WorkerState[]? State { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        RunItem(queue.Description, () =>
        {
            var sessions = queue.ListWorkersAsync(StopToken).GetAwaiter().GetResult();
            var wanted = Id?.Select(WorkerIds.Normalize).ToHashSet(StringComparer.Ordinal);
            // Pauses are the queue's, so every worker shows the same ones (docs/pause.md); one small read per command.
            var paused = sessions.Count == 0 ? [] : queue.ListPausesAsync(false, StopToken).GetAwaiter().GetResult().Select(p => p.Scope).ToArray();
            var shown = 0;
            foreach (var session in sessions)
            {
                if (wanted is not null && !wanted.Contains(session.Id)) continue;
                if (State is not null && !State.Contains(session.State)) continue;
                WriteObject(new PQWorker(session, queue) { Paused = paused });
                shown++;
            }
            if (shown > 0 && paused.Length > 0)
                WriteWarning($"The queue is paused for {string.Join("; ", paused)}: workers acquire none of its waiting tasks until Resume-PQQueue (Get-PQQueuePause lists the pauses).");
            if (Id is null) return;
            var seen = sessions.Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
            foreach (var missing in Id.Where(id => !seen.Contains(WorkerIds.Normalize(id))))
                WriteError(PQErrors.WorkerNotFoundError(missing, queue.Description));
        });
    }
}

/// <summary>Session ids as the engine stores them: lowercase, without surrounding blanks.</summary>
internal static class WorkerIds
{
    public static string Normalize(string id) => id.Trim().ToLowerInvariant();
}
