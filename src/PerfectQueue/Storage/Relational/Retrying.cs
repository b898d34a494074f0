namespace PerfectQueue.Storage;

// The transient-error policy every server store shares: which operations may run again after a failure, and how
// long to wait between tries. Each store's errors class says which failures are transient (docs/backends.md).

/// <summary>Which failures an operation may be run again after.</summary>
internal enum RetrySafety
{
    /// <summary>Running it again is always safe (reads, acquire, heartbeat, idempotent writes).</summary>
    Always,
    /// <summary>Only when the failure shows nothing was done (the connection never opened, or the server rolled back).</summary>
    BeforeSent,
}

/// <summary>Bounded, jittered exponential backoff between tries of a transient failure.</summary>
internal static class TransientBackoff
{
    public static TimeSpan Delay(int attempt) =>
        TimeSpan.FromMilliseconds(Math.Min(2000, 50 * Math.Pow(2, attempt - 1)) * (0.5 + Random.Shared.NextDouble()));
}

/// <summary>
/// How a server store runs one operation: on a fresh pooled connection, tried again after a transient failure
/// when <see cref="RetrySafety"/> allows it, at most <see cref="MaxTries"/> times with <see cref="TransientBackoff"/>
/// between tries. What differs per database is given by the store: how to open, which failures are transient,
/// how a missing table is explained, and what to clean up on a connection after a failure.
/// </summary>
internal sealed class StoreRunner<TConnection>(
    Func<CancellationToken, Task<TConnection>> open,
    Func<Exception, bool, RetrySafety, bool> isTransient,
    Func<Exception, bool> isMissingTable,
    Func<Exception, Task<Exception?>> explainMissingTable,
    Func<TConnection, Task>? afterFailure = null)
    where TConnection : System.Data.Common.DbConnection
{
    public const int MaxTries = 5;

    /// <param name="work">The operation on an open connection.</param>
    /// <param name="safety">Which failures it may run again after.</param>
    /// <param name="ct">Cancels the operation and the waits between tries.</param>
    /// <param name="checkTable">
    /// Whether a missing-table failure is explained by <c>explainMissingTable</c> (it returns the error to throw
    /// instead, for example <see cref="QueueNotInitializedException"/>, or null to keep the original). False for
    /// operations that read the catalog themselves.
    /// </param>
    public async Task<T> RunAsync<T>(Func<TConnection, Task<T>> work, RetrySafety safety, CancellationToken ct, bool checkTable = true)
    {
        for (var attempt = 1; ; attempt++)
        {
            ct.ThrowIfCancellationRequested();
            var opened = false;
            try
            {
                await using var c = await open(ct).ConfigureAwait(false);
                opened = true;
                try
                {
                    return await work(c).ConfigureAwait(false);
                }
                catch when (afterFailure is not null)
                {
                    await afterFailure(c).ConfigureAwait(false);
                    throw;
                }
            }
            catch (Exception e) when (checkTable && isMissingTable(e))
            {
                if (await explainMissingTable(e).ConfigureAwait(false) is { } explained) throw explained;
                throw;
            }
            catch (Exception e) when (isTransient(e, opened, safety) && attempt < MaxTries) // first: it may also drop broken pooled connections
            {
                await Task.Delay(TransientBackoff.Delay(attempt), ct).ConfigureAwait(false);
            }
        }
    }
}
