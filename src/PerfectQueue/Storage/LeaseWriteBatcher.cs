namespace PerfectQueue.Storage;

/// <summary>
/// Group commit for holders' writes (finish, retry, release). A write that arrives while another batch is in
/// flight waits for the next one, so concurrent finishes share one transaction and one commit instead of
/// one each; a lone write goes at once, as before. Each write keeps its own fence: the store applies only
/// those whose lease is current and says which, and each caller learns its own answer.
/// </summary>
internal sealed class LeaseWriteBatcher(IQueueStore store)
{
    private readonly object _gate = new();
    private List<(LeaseWrite Write, TaskCompletionSource<bool> Done)> _pending = [];
    private bool _flushing;

    /// <summary>True when the write was applied (its lease was current); false when the task was lost.</summary>
    public Task<bool> WriteAsync(LeaseWrite write, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested(); // once queued, a write is not cancelled: it is short, and its outcome must be known
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        bool start;
        lock (_gate)
        {
            _pending.Add((write, done));
            start = !_flushing;
            _flushing = true;
        }
        if (start) _ = FlushAsync();
        return done.Task;
    }

    private async Task FlushAsync()
    {
        for (var round = 0; ; round++)
        {
            // The caller that started flushing gets its own write done in the first batch; later batches are
            // other callers' and go on a pool thread, not on it (SQLite completes synchronously: without this
            // one busy caller could keep flushing for everyone).
            if (round > 0) await Task.Yield();
            List<(LeaseWrite Write, TaskCompletionSource<bool> Done)> batch;
            lock (_gate)
            {
                if (_pending.Count == 0) { _flushing = false; return; }
                // One write per lease in a batch: the store reports applied leases by id, so a second write of
                // the same lease (a holder racing itself) waits for the next batch and is fenced there.
                batch = [];
                var ids = new HashSet<long>();
                var rest = new List<(LeaseWrite Write, TaskCompletionSource<bool> Done)>();
                foreach (var item in _pending)
                {
                    if (batch.Count < Queue.MaxBatch && ids.Add(item.Write.Lease.Id)) batch.Add(item);
                    else rest.Add(item);
                }
                _pending = rest;
            }
            if (batch.Count == 1 || !await TryApplyAsync(batch).ConfigureAwait(false))
            {
                // A failed batch is one transaction: a deadlock victim, or one row's error, wrote nothing, and
                // must not fail its neighbours, so each write goes again on its own. But a connection lost at
                // commit may have committed it all: a write refused then is checked against the row, so a
                // holder is not told its own committed finish was somebody else's.
                var ambiguous = batch.Count > 1;
                foreach (var item in batch) await TryApplyAsync([item], reportErrors: true, checkRefused: ambiguous).ConfigureAwait(false);
            }
        }
    }

    private async Task<bool> TryApplyAsync(List<(LeaseWrite Write, TaskCompletionSource<bool> Done)> batch, bool reportErrors = false, bool checkRefused = false)
    {
        try
        {
            var applied = await store.ApplyAsync(batch.ConvertAll(b => b.Write), CancellationToken.None).ConfigureAwait(false);
            foreach (var (write, done) in batch)
                done.TrySetResult(applied.Contains(write.Lease.Id) || (checkRefused && await LandedAsync(write).ConfigureAwait(false)));
            return true;
        }
        catch (Exception e) when (reportErrors)
        {
            // The caller sees the error; its lease expires as for any failed write, and the task runs again.
            foreach (var (_, done) in batch) done.TrySetException(e);
            return true;
        }
        catch (Exception)
        {
            return false;
        }
    }

    // Whether the row looks as this write leaves it: finished with its outcome (a holder never finishes as
    // ForceFinished), or given back and held by nobody. Only asked after a batch failed ambiguously; a wrong
    // yes would only miscount a task whose lease was lost in those same moments, and nothing more is written.
    private async Task<bool> LandedAsync(LeaseWrite write)
    {
        try
        {
            var rows = await store.GetByIdsAsync([write.Lease.Id], CancellationToken.None).ConfigureAwait(false);
            if (rows.Count != 1) return false;
            var row = rows[0];
            return write.Kind == LeaseWriteKind.Finish
                ? row.FinishedAt is not null && row.Outcome == write.Outcome
                : row.FinishedAt is null && row.LeaseToken is null;
        }
        catch (Exception)
        {
            return false; // as before: reported lost; its lease expires and the task runs again if it did not land
        }
    }
}
