using PerfectQueue.Storage;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>When a session reads as dead: three missed beats, at least 10 s, at most the alive time; fixed clocks, no waiting.</summary>
public sealed class WorkerDeadRuleTests
{
    private static WorkerOptions Options(double beatSeconds, double aliveSeconds) => new()
    {
        HeartbeatInterval = TimeSpan.FromSeconds(beatSeconds), AliveTime = TimeSpan.FromSeconds(aliveSeconds),
    };

    [Theory]
    [InlineData(2, 300, 10)]     // the defaults: 3 x 2 s is under the floor
    [InlineData(0.2, 60, 10)]    // a fast beat still gets the floor: one slow round trip is no death
    [InlineData(5, 300, 15)]     // three missed beats
    [InlineData(60, 600, 180)]
    [InlineData(2, 4, 4)]        // never longer than the alive time: by then its leases have run out
    public void A_session_is_dead_after_three_missed_beats_at_least_10s_at_most_the_alive_time(double beat, double alive, double deadAfter) =>
        Assert.Equal(TimeSpan.FromSeconds(deadAfter), WorkerSession.DeadAfter(Options(beat, alive)));

    private static WorkerSessionInfo Read(long lastBeat, long aliveUntil, long now, bool stop = false) => WorkerSessionInfo.From(new WorkerSessionRow
    {
        Id = "0123456789ab", Host = "h", Pid = 1, Processors = 1, StartedAt = lastBeat - 1000, LastBeatAt = lastBeat,
        AliveUntil = aliveUntil, StopRequested = stop, Now = now,
    });

    [Fact]
    public void State_and_LastBeatAge_follow_the_database_clock_of_the_read()
    {
        const long beat = 1_767_225_600_000;
        var fresh = Read(beat, beat + 10_000, beat + 9_999);
        Assert.Equal(WorkerState.Alive, fresh.State);
        Assert.Equal(TimeSpan.FromMilliseconds(9_999), fresh.LastBeatAge);
        Assert.Equal(WorkerState.Stopping, Read(beat, beat + 10_000, beat + 9_999, stop: true).State);
        var dead = Read(beat, beat + 10_000, beat + 10_000, stop: true);
        Assert.Equal(WorkerState.Dead, dead.State);
        Assert.False(dead.IsAlive);
        Assert.Equal(TimeSpan.FromSeconds(10), dead.LastBeatAge);
        Assert.Equal(TimeSpan.Zero, Read(beat, beat + 10_000, beat - 5).LastBeatAge);   // another host's clock read just before the beat landed
    }
}
