using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// What every PerfectQueue cmdlet shares: -Queue (by property name too, so piped tasks stay on their
/// queue) with the session fallbacks of <see cref="PQSession"/>, a cancellation token that Ctrl+C
/// (StopProcessing) signals, and the mapping of engine errors to stable error records.
/// </summary>
public abstract class PQCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private Queue? _resolved;

    /// <summary>The queue to use. Default: the session's (Connect-PQQueue), then $env:PERFECTQUEUE_URL, then the embedded default.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public Queue? Queue { get; set; }

    /// <summary>Signalled when the user presses Ctrl+C (or the pipeline stops).</summary>
    protected CancellationToken StopToken => _stopping.Token;

    protected override void StopProcessing() => _stopping.Cancel();

    /// <summary>The queue for the current record; a failure to open it ends the command.</summary>
    protected Queue CurrentQueue()
    {
        try
        {
            return _resolved = PQSession.Resolve(Queue);
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            ThrowTerminatingError(PQErrors.For(e, PQSession.Source(Queue)));
            throw; // not reached
        }
    }

    /// <summary>
    /// Runs one item's work. Engine errors become error records (per item, or terminating when the
    /// queue itself is unusable); Ctrl+C stops quietly, never as an error record.
    /// </summary>
    protected void RunItem(object? target, Action work)
    {
        try
        {
            work();
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
        catch (Exception e) when (e is PerfectQueueException or ArgumentException or TimeoutException or System.Data.Common.DbException)
        {
            var queue = (Queue ?? _resolved)?.Description;
            if (PQErrors.IsTerminating(e)) ThrowTerminatingError(PQErrors.For(e, target, queue));
            else WriteError(PQErrors.For(e, target, queue));
        }
    }

    public void Dispose()
    {
        _stopping.Dispose();
        GC.SuppressFinalize(this);
    }
}
