using System.Diagnostics;

namespace PerfectQueue.Tests;

/// <summary>Waits for a condition that a short lease or delay makes true, polling briefly; never a fixed sleep.</summary>
internal static class Eventually
{
    public static T Get<T>(Func<T?> probe, string what, double seconds = 15) where T : class
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (probe() is { } value) return value;
            if (clock.Elapsed.TotalSeconds > seconds) throw new TimeoutException($"Timed out after {seconds}s waiting for {what}.");
            Thread.Sleep(20);
        }
    }

    public static void True(Func<bool> probe, string what, double seconds = 15) =>
        Get(() => probe() ? "ok" : null, what, seconds);
}
