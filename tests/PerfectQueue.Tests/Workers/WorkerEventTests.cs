using System.Collections.Concurrent;
using System.Text.Json;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

/// <summary>The worker's log events carry what a log shipper needs, and the JSON format writes each as one object per line.</summary>
public sealed class WorkerEventTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    private Queue Open(int maxAttempts)
    {
        var config = sqlite.NewConfig();
        config.MaxAttempts = maxAttempts;
        var q = Queue.Open(config);
        q.Initialize();
        return q;
    }

    [Fact]
    public async Task Task_events_name_the_task_attempt_session_outcome_and_duration_and_a_task_out_of_attempts_is_an_error()
    {
        using var q = Open(maxAttempts: 1);
        q.Submit("ok-1", "greet");
        q.Submit("bad-1", "fail");
        var events = new ConcurrentQueue<WorkerEvent>();
        var worker = new Worker(q, new WorkerOptions { PollInterval = TimeSpan.FromMilliseconds(50), UntilEmpty = true },
            _ => new DelegateProcessor((t, _) => t.Type == "fail" ? throw new InvalidOperationException("disk full") : Task.CompletedTask),
            events.Enqueue);
        var summary = await worker.RunAsync(CancellationToken.None, CancellationToken.None);
        Assert.Equal(1, summary.Failed); // and ok-1 and the failure's notice task (docs/notices.md) succeeded

        var all = events.ToList();
        Assert.All(all, e => Assert.Equal(summary.SessionId, e.Session));
        Assert.Equal(WorkerEvents.Started, all[0].Event);
        Assert.Equal(WorkerEvents.Stopped, all[^1].Event);

        var started = all.Single(e => e.Event == WorkerEvents.TaskStarted && e.Key == "ok-1");
        Assert.Equal(("greet", 1), (started.Type, started.Attempt));
        var ok = all.Single(e => e.Event == WorkerEvents.TaskEnded && e.Key == "ok-1");
        Assert.Equal(("greet", 1, "Succeeded", WorkerEventLevel.Information), (ok.Type, ok.Attempt, ok.Outcome, ok.Level));
        Assert.NotNull(ok.Duration);
        var bad = all.Single(e => e.Event == WorkerEvents.TaskEnded && e.Key == "bad-1");
        Assert.Equal(("fail", 1, "Failed", WorkerEventLevel.Error), (bad.Type, bad.Attempt, bad.Outcome, bad.Level));
        Assert.Contains("disk full", bad.Message);
    }

    [Fact]
    public async Task A_retried_task_ends_with_outcome_Retried_at_warning_level()
    {
        using var q = Open(maxAttempts: 3);
        q.Submit("again-1", "flaky");
        var events = new ConcurrentQueue<WorkerEvent>();
        var worker = new Worker(q, new WorkerOptions { PollInterval = TimeSpan.FromMilliseconds(50), MaxTasks = 1 },
            _ => new DelegateProcessor((_, _) => throw new TimeoutException("no answer")), events.Enqueue);
        await worker.RunAsync(CancellationToken.None, CancellationToken.None);
        var ended = events.Single(e => e.Event == WorkerEvents.TaskEnded);
        Assert.Equal(("again-1", "Retried", WorkerEventLevel.Warning), (ended.Key, ended.Outcome, ended.Level));
    }

    [Fact]
    public void Json_format_writes_one_object_per_line_that_reads_back_whatever_the_text_holds()
    {
        var hostile = "line one\nline two \"quoted\" </script> \u0001 tab\t end";
        var e = new WorkerEvent(new DateTimeOffset(2026, 12, 4, 1, 2, 3, 456, TimeSpan.FromHours(2)), hostile)
        {
            Event = WorkerEvents.TaskEnded, Level = WorkerEventLevel.Warning, Session = "host-1:42:abc", Key = "k\n<img>", Type = "t",
            Attempt = 3, Duration = TimeSpan.FromMilliseconds(1234.5678), Outcome = "Retried",
        };
        var line = WorkerEventFormat.Format(e, WorkerLogFormat.Json);
        Assert.DoesNotContain('\n', line);
        Assert.DoesNotContain('\r', line);
        using var doc = JsonDocument.Parse(line);
        var r = doc.RootElement;
        Assert.Equal("2026-12-04T01:02:03.456+02:00", r.GetProperty("time").GetString());
        Assert.Equal("warning", r.GetProperty("level").GetString());
        Assert.Equal("task.ended", r.GetProperty("event").GetString());
        Assert.Equal(hostile, r.GetProperty("message").GetString());
        Assert.Equal("host-1:42:abc", r.GetProperty("session").GetString());
        Assert.Equal("k\n<img>", r.GetProperty("key").GetString());
        Assert.Equal("t", r.GetProperty("type").GetString());
        Assert.Equal(3, r.GetProperty("attempt").GetInt32());
        Assert.Equal(1.235, r.GetProperty("duration").GetDouble());
        Assert.Equal("Retried", r.GetProperty("outcome").GetString());
    }

    [Fact]
    public void Json_format_leaves_out_what_an_event_does_not_have_and_text_format_is_the_time_and_the_message()
    {
        var at = new DateTimeOffset(2026, 12, 4, 1, 2, 3, 456, TimeSpan.Zero);
        var e = new WorkerEvent(at, "routes: greet");
        using var doc = JsonDocument.Parse(WorkerEventFormat.Format(e, WorkerLogFormat.Json));
        Assert.Equal(["time", "level", "event", "message"], doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal("info", doc.RootElement.GetProperty("level").GetString());
        Assert.Equal($"{at.LocalDateTime:yyyy-MM-dd HH:mm:ss.fff} routes: greet", WorkerEventFormat.Format(e, WorkerLogFormat.Text));
    }
}
