using Xunit;

namespace PerfectQueue.Tests.Unit;

public sealed class RetryPolicyTests
{
    [Fact]
    public void Fixed_waits_retry_wait_every_time()
    {
        var p = new RetryPolicy(new QueueConfig { RetryWait = TimeSpan.FromSeconds(7) });
        Assert.All(Enumerable.Range(1, 10), a => Assert.Equal(TimeSpan.FromSeconds(7), p.DelayAfter(a)));
    }

    [Fact]
    public void Exponential_doubles_up_to_the_cap()
    {
        var p = new RetryPolicy(new QueueConfig { RetryWait = TimeSpan.FromSeconds(2), RetryBackoff = RetryBackoff.Exponential, RetryJitter = 0, RetryMaxWait = TimeSpan.FromSeconds(30) });
        Assert.Equal([2, 4, 8, 16, 30, 30], Enumerable.Range(1, 6).Select(a => p.DelayAfter(a).TotalSeconds).ToArray());
        Assert.Equal(30, p.DelayAfter(1000).TotalSeconds); // no overflow for huge attempt counts
    }

    [Fact]
    public void Jitter_spreads_delays_within_its_fraction()
    {
        var p = new RetryPolicy(new QueueConfig { RetryWait = TimeSpan.FromSeconds(100), RetryBackoff = RetryBackoff.Exponential, RetryJitter = 0.25 });
        var random = new Random(42);
        var delays = Enumerable.Range(0, 500).Select(_ => p.DelayAfter(1, random).TotalSeconds).ToList();
        Assert.All(delays, d => Assert.InRange(d, 75, 125));
        Assert.True(delays.Distinct().Count() > 400, "jitter should spread the delays");
        Assert.InRange(delays.Average(), 95, 105);
    }

    [Fact]
    public void The_last_attempt_is_known_only_when_max_attempts_is_set()
    {
        Assert.False(new RetryPolicy(new QueueConfig()).IsLastAttempt(1_000_000));
        var p = new RetryPolicy(new QueueConfig { MaxAttempts = 3 });
        Assert.False(p.IsLastAttempt(2));
        Assert.True(p.IsLastAttempt(3));
    }
}
