using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>
/// A heartbeat in flight while the handler finishes its task itself finds the row finished by that very write:
/// seen once in a full run as a drain that counted 7 of 8 self-finished tasks as succeeded (one as lost).
/// </summary>
public sealed class ConclusionRaceTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    [Fact]
    public async Task A_heartbeat_after_the_holder_finished_its_task_does_not_mark_it_lost()
    {
        using var q = Queue.Open(sqlite.NewConfig());
        q.Initialize();
        q.Submit("k", "t");
        var task = (await q.AcquireAsync(1, TimeSpan.FromSeconds(30), CancellationToken.None)).Tasks.Single();
        await task.FinishAsync("done by the handler");
        var report = (await q.HeartbeatAsync([task])).Single();   // the beat that was in flight
        Assert.NotNull(report.Error);                            // the row is finished: it is not extended
        Assert.Null(task.LostBecause);                           // but this holder did not lose it
        Assert.False(task.IsCancellationRequested);
    }

    [Fact]
    public async Task A_task_the_handler_finished_is_concluded_as_finished_by_the_handler_even_if_a_beat_then_reported_it_lost()
    {
        using var q = Queue.Open(sqlite.NewConfig());
        q.Initialize();
        q.Submit("k", "t");
        var task = (await q.AcquireAsync(1, TimeSpan.FromSeconds(30), CancellationToken.None)).Tasks.Single();
        await task.FinishAsync("done by the handler");
        task.OnLost(new PreemptedException("the beat saw the row finished", "k", PreemptionReason.Finished));
        var counters = new WorkerCounters();
        var outcome = await new TaskConclusion(q, counters).ConcludeAsync(new RunningTask(task, 0, TimeSpan.FromSeconds(1)), null, null);
        Assert.Equal(new Concluded(RunOutcome.Succeeded, "finished by the handler"), outcome);
        Assert.Equal(1, counters.Succeeded);
        Assert.Equal(0, counters.Lost);
    }
}
