using System.Data.Common;
using System.Diagnostics;
using PerfectQueue.Storage;

namespace PerfectQueue.Workers;

/// <summary>
/// Keeps the leases of a worker's tasks, running and prefetched: one heartbeat round trip extends them all every
/// heartbeat interval (and beats the session row), and the fence stops a handler whose lease went unrenewed for
/// nearly alive_time, before another worker may hold its task (a prefetched one is then never started).
/// <c>held</c> gives every task the worker holds now: the running ones and the prefetched ones.
/// </summary>
internal sealed class LeaseKeeper(Queue queue, WorkerOptions options, Func<IEnumerable<RunningTask>> held, Action<string> log)
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
        var renew = held().Where(r => r.NeedsRenewal).ToList();
        if (renew.Count == 0) return;
        var sentAt = RunningTask.Now;
        try
        {
            var reports = await queue.HeartbeatAsync(renew.Select(r => r.Task), options.AliveTime).ConfigureAwait(false);
            for (var i = 0; i < reports.Count; i++)
            {
                var report = reports[i];
                var prefetched = renew[i].Prefetched;
                if (report.Error is null) renew[i].Renewed(sentAt);
                if (report.Result == HeartbeatResult.CancelRequested && !report.Task.IsCompleted)
                    log(prefetched
                        ? $"cancel requested for {report.Task.Key}, prefetched and not started: it ends Cancelled without running"
                        : $"cancel requested for {report.Task.Key}: its handler is told, and stopped after {options.CancelGracePeriod.TotalSeconds:0.###}s");
                else if (report.Error is { } lost && !report.Task.IsCompleted && !renew[i].Concluding)
                    log(prefetched
                        ? $"{report.Task.Key} was lost ({lost.Reason}) before it started: it is dropped, never run; nothing is written to it"
                        : $"{report.Task.Key} was lost ({lost.Reason}): its handler is stopped; nothing more is written to it");
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
        foreach (var r in held())
        {
            if (!r.NeedsRenewal) continue;
            var unrenewed = Stopwatch.GetElapsedTime(r.RenewedAt);
            if (unrenewed < limit) continue;
            var prefetched = r.Prefetched;
            if (!Fence(r, unrenewed)) continue;
            log($"{r.Task.Key}: its lease could not be renewed for {unrenewed.TotalSeconds:0.#}s (alive_time {options.AliveTime.TotalSeconds:0.#}s) and another worker may hold it now: " +
                (prefetched ? "prefetched and not started, it is dropped, never run" : "its handler is stopped and nothing more is written to it"));
            r.StopNow(HandlerStop.Lost); // a prefetched one too: the worker may be starting it this moment
        }
    }

    /// <summary>Marks a task whose lease went unrenewed for <paramref name="unrenewed"/> as lost (once); false when it was already.</summary>
    public bool Fence(RunningTask r, TimeSpan unrenewed)
    {
        if (!r.TryFence()) return false;
        r.Task.OnLost(new PreemptedException(
            $"This worker no longer holds task '{r.Task.Key}': its lease could not be renewed for {unrenewed.TotalSeconds:0.#}s (alive_time {options.AliveTime.TotalSeconds:0.#}s), so another worker may hold it now.",
            r.Task.Key, PreemptionReason.LeaseExpired));
        return true;
    }

    public static string Describe(Exception e) => e is QueueNotInitializedException or DbException ? e.Message : $"{e.GetType().Name}: {e.Message}";
}
