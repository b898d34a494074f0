namespace PerfectQueue;

/// <summary>The one place that decides how long a retried task waits and when it gives up.</summary>
public sealed class RetryPolicy
{
    public RetryPolicy(QueueConfig config)
    {
        Wait = config.RetryWait;
        Backoff = config.RetryBackoff;
        MaxWait = config.RetryMaxWait;
        Jitter = config.RetryJitter;
        MaxAttempts = config.MaxAttempts;
    }

    public TimeSpan Wait { get; }
    public RetryBackoff Backoff { get; }
    public TimeSpan MaxWait { get; }
    public double Jitter { get; }
    public int? MaxAttempts { get; }

    /// <summary>True when the attempt that just failed was the last one allowed.</summary>
    public bool IsLastAttempt(int attempt) => MaxAttempts is { } max && attempt >= max;

    /// <summary>The delay before the next attempt after <paramref name="attempt"/> (1-based) failed.</summary>
    public TimeSpan DelayAfter(int attempt, Random? random = null)
    {
        if (Backoff == RetryBackoff.Fixed) return Wait;
        var exponent = Math.Clamp(attempt - 1, 0, 62);
        var seconds = Math.Min(Wait.TotalSeconds * Math.Pow(2, exponent), MaxWait.TotalSeconds);
        var spread = (((random ?? Random.Shared).NextDouble() * 2) - 1) * Jitter;
        return TimeSpan.FromSeconds(Math.Max(0, seconds * (1 + spread)));
    }
}
