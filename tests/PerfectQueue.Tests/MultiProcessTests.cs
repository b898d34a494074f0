using System.Collections.Concurrent;
using System.Diagnostics;
using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests;

/// <summary>Several OS processes share one SQLite file: nothing is lost, nothing finishes twice.</summary>
public sealed class SqliteMultiProcessTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    [Fact]
    public async Task Three_processes_drain_2000_tasks_from_one_sqlite_file_each_finished_exactly_once()
    {
        var config = sqlite.NewConfig();
        var total = MultiProcess.Submit(config, 2000, _ => null);
        var perProcess = await MultiProcess.RunDrainers(config, processes: 3, threads: 1, workMs: 2, sampler: null);
        MultiProcess.AssertEachFinishedOnce(config, total, perProcess);
    }
}

/// <summary>
/// Many processes and connections on one database server: nothing lost, nothing twice, every max_running held.
/// Run through each server backend's Suites file.
/// </summary>
public abstract class MultiProcessSuite(IBackendTarget target)
{
    [BackendFact]
    public async Task Four_processes_with_four_connections_each_drain_20000_tasks_within_every_max_running()
    {
        var config = target.NewConfig();
        var limits = new Dictionary<string, int> { ["u1"] = 2, ["u2"] = 3, ["u3"] = 5, ["u4"] = 8 };
        // 40% no user, 20% a user without a limit, 40% spread over the limited users.
        var total = MultiProcess.Submit(config, 20_000, i => (i % 10) switch
        {
            < 4 => null,
            < 6 => new SubmitOptions { User = "free" },
            var n => new SubmitOptions { User = $"u{n - 5}", MaxRunning = limits[$"u{n - 5}"] },
        });

        var violations = new ConcurrentQueue<string>();
        var samples = 0;
        void Sample(Queue reader)
        {
            foreach (var g in reader.List(new TaskFilter { Statuses = [TaskState.Running] }).Where(t => t.User is not null).GroupBy(t => t.User!))
                if (limits.TryGetValue(g.Key, out var max) && g.Count() > max) violations.Enqueue($"{g.Count()} running for {g.Key} (max {max})");
            samples++;
        }
        var perProcess = await MultiProcess.RunDrainers(config, processes: 4, threads: 4, workMs: 1, sampler: Sample);

        Assert.Empty(violations);
        Assert.True(samples >= 20, $"the sampler should read the running tasks throughout the run (took {samples} samples)");
        MultiProcess.AssertEachFinishedOnce(config, total, perProcess);
    }
}

/// <summary>Starts drainer processes (tests/PerfectQueue.TestDrainer) and checks what they finished.</summary>
internal static class MultiProcess
{
    public static int Submit(QueueConfig config, int count, Func<int, SubmitOptions?> options)
    {
        using var q = Queue.Open(config);
        q.Initialize();
        for (var start = 0; start < count; start += 1000)
        {
            var stored = q.SubmitMany(Enumerable.Range(start, Math.Min(1000, count - start)).Select(i => new TaskSubmission($"task-{i:D5}", "noop", new { i }, options(i))));
            Assert.All(stored, Assert.True);
        }
        return count;
    }

    public static void AssertEachFinishedOnce(QueueConfig config, int total, List<List<string>> perProcess)
    {
        var all = perProcess.SelectMany(k => k).ToList();
        Assert.Equal(total, all.Count);              // no task finished twice...
        Assert.Equal(total, all.Distinct().Count()); // ...and none was lost
        Assert.True(perProcess.All(keys => keys.Count > 0), "every process should take part; finished per process: " + string.Join(", ", perProcess.Select(k => k.Count)));
        using var check = Queue.Open(config);
        var tasks = check.List();
        Assert.Equal(total, tasks.Count);
        Assert.All(tasks, t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
        Assert.All(tasks, t => Assert.Equal(1, t.Attempts));
    }

    /// <summary>Starts the drainers together and, while they run, calls <paramref name="sampler"/> in a loop.</summary>
    public static async Task<List<List<string>>> RunDrainers(QueueConfig config, int processes, int threads, int workMs, Action<Queue>? sampler)
    {
        var readyDir = Directory.CreateTempSubdirectory("pq-ready-").FullName;
        var drainer = Path.Combine(AppContext.BaseDirectory, "PerfectQueue.TestDrainer.dll");
        Assert.True(File.Exists(drainer), $"missing {drainer}");
        var list = Enumerable.Range(0, processes).Select(_ =>
        {
            var info = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            foreach (var a in new[] { drainer, "--url", config.Url ?? config.ConnectionString!, "--table", config.Table, "--batch", "10",
                         "--threads", $"{threads}", "--work-ms", $"{workMs}", "--ready-dir", readyDir })
                info.ArgumentList.Add(a);
            if (config.Provider is { } provider) { info.ArgumentList.Add("--provider"); info.ArgumentList.Add(provider); }
            return Process.Start(info)!;
        }).ToList();
        try
        {
            var outputs = list.Select(p => p.StandardOutput.ReadToEndAsync()).ToList();
            var errors = list.Select(p => p.StandardError.ReadToEndAsync()).ToList();
            Eventually.True(() => Directory.GetFiles(readyDir, "ready-*").Length == processes, "the drainers to start", seconds: 120);
            File.WriteAllText(Path.Combine(readyDir, "go"), "");
            if (sampler is not null)
            {
                using var reader = Queue.Open(config);
                while (!list.All(p => p.HasExited)) sampler(reader);
            }
            foreach (var p in list) Assert.True(p.WaitForExit(TimeSpan.FromMinutes(10)), "a drainer did not finish in time");
            var texts = await Task.WhenAll(outputs);
            var errorTexts = await Task.WhenAll(errors);
            for (var i = 0; i < list.Count; i++)
                Assert.True(list[i].ExitCode == 0, $"drainer {i} exited {list[i].ExitCode}: {errorTexts[i]}");
            return texts.Select(o => o.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => l.StartsWith("FINISHED ", StringComparison.Ordinal)).Select(l => l["FINISHED ".Length..].Trim()).ToList()).ToList();
        }
        finally
        {
            foreach (var p in list) { if (!p.HasExited) p.Kill(entireProcessTree: true); p.Dispose(); }
            Directory.Delete(readyDir, recursive: true);
        }
    }
}
