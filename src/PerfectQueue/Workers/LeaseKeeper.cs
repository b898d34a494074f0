using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using PerfectQueue.Storage;

namespace PerfectQueue.Workers;

/// <summary>
/// Keeps the leases of a worker's running tasks: one heartbeat round trip extends them all every heartbeat
/// interval (and beats the session row), and the fence stops a handler whose lease went unrenewed for nearly
/// alive_time, before another worker may hold its task.
/// </summary>
internal sealed class LeaseKeeper(Queue queue, WorkerOptions options, ConcurrentDictionary<Lease, RunningTask> running, Action<string> log)
{
    public async Task HeartbeatLoopAsync(Func<Task> alsoEachBeat, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try { await Task.Delay(options.HeartbeatInterval, stop).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            await HeartbeatTasksAsync().ConfigureAwait(false);
            await alsoEachBeat().ConfigureAwait(false);
        }
    }

    private async Task HeartbeatTasksAsync()
    {
        var held = running.Values.Where(r => r.NeedsRenewal).ToList();
        if (held.Count == 0) return;
        var sentAt = RunningTask.Now;
        try
        {
            var reports = await queue.HeartbeatAsync(held.Select(r => r.Task), options.AliveTime).ConfigureAwait(false);
            for (var i = 0; i < reports.Count; i++)
            {
                var report = reports[i];
                if (report.Error is null) held[i].Renewed(sentAt);
                if (report.Result == HeartbeatResult.CancelRequested && !report.Task.IsCompleted)
                    log($"cancel requested for {report.Task.Key}: its handler is told, and stopped after {options.CancelGracePeriod.TotalSeconds:0.###}s");
                else if (report.Error is { } lost && !report.Task.IsCompleted && !held[i].Concluding)
                    log($"{report.Task.Key} was lost ({lost.Reason}): its handler is stopped; nothing more is written to it");
            }
        }
        catch (Exception e)
        {
            log($"heartbeat failed, trying again in {options.HeartbeatInterval.TotalSeconds:0.###}s: {Describe(e)}");
        }
    }

    // Self-fencing. A lease this worker could not renew for alive_time may be another worker's now: before
    // it runs out (a margin of at least one heartbeat interval, or a tenth of alive_time), the handler is
    // stopped at once and nothing more is written to the task. This loop touches no database, so a stalled
    // connection that holds the heartbeat up cannot hold it up too.
    public async Task FenceLoopAsync(CancellationToken stop)
    {
        var period = TimeSpan.FromTicks(Math.Clamp(options.HeartbeatInterval.Ticks / 4, TimeSpan.FromMilliseconds(10).Ticks, TimeSpan.FromSeconds(1).Ticks));
        while (!stop.IsCancellationRequested)
        {
            try { await Task.Delay(period, stop).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            FenceUnrenewed();
        }
    }

    /// <summary>How long a lease may go unrenewed before its handler is stopped: alive_time less the margin.</summary>
    public TimeSpan FenceAfter
    {
        get
        {
            var margin = Math.Max(options.HeartbeatInterval.Ticks, options.AliveTime.Ticks / 10);
            return TimeSpan.FromTicks(Math.Max(options.AliveTime.Ticks - margin, 0));
        }
    }

    private void FenceUnrenewed()
    {
        var limit = FenceAfter;
        foreach (var r in running.Values)
        {
            if (!r.NeedsRenewal) continue;
            var unrenewed = Stopwatch.GetElapsedTime(r.RenewedAt);
            if (unrenewed < limit || !r.TryFence()) continue;
            r.Task.OnLost(new PreemptedException(
                $"This worker no longer holds task '{r.Task.Key}': its lease could not be renewed for {unrenewed.TotalSeconds:0.#}s (alive_time {options.AliveTime.TotalSeconds:0.#}s), so another worker may hold it now.",
                r.Task.Key, PreemptionReason.LeaseExpired));
            log($"{r.Task.Key}: its lease could not be renewed for {unrenewed.TotalSeconds:0.#}s (alive_time {options.AliveTime.TotalSeconds:0.#}s) and another worker may hold it now: its handler is stopped and nothing more is written to it");
            r.StopNow(HandlerStop.Lost);
        }
    }

    public static string Describe(Exception e) => e is QueueNotInitializedException or DbException ? e.Message : $"{e.GetType().Name}: {e.Message}";
}
