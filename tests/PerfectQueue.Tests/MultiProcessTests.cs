using System.Diagnostics;
using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests;

/// <summary>Several OS processes share one SQLite file: nothing is lost and nothing finishes twice.</summary>
public sealed class MultiProcessTests : IClassFixture<SqliteTarget>
{
    private readonly SqliteTarget _target;

    public MultiProcessTests(SqliteTarget target) => _target = target;

    [Fact]
    public async Task Three_processes_drain_2000_tasks_from_one_sqlite_file_each_finished_exactly_once()
    {
        const int total = 2000;
        var config = _target.NewConfig();
        using (var q = Queue.Open(config))
        {
            var stored = q.SubmitMany(Enumerable.Range(0, total).Select(i => new TaskSubmission($"task-{i:D5}", "noop", new { i })));
            Assert.All(stored, Assert.True);
        }

        var readyDir = Directory.CreateTempSubdirectory("pq-ready-").FullName;
        var drainer = Path.Combine(AppContext.BaseDirectory, "PerfectQueue.TestDrainer.dll");
        Assert.True(File.Exists(drainer), $"missing {drainer}");
        var processes = Enumerable.Range(0, 3).Select(_ => Process.Start(new ProcessStartInfo("dotnet")
        {
            ArgumentList = { drainer, "--url", config.Url!, "--table", config.Table, "--batch", "10", "--ready-dir", readyDir },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!).ToList();
        try
        {
            var outputs = processes.Select(p => p.StandardOutput.ReadToEndAsync()).ToList();
            var errors = processes.Select(p => p.StandardError.ReadToEndAsync()).ToList();
            // Start all three together, so they really compete for the same rows.
            Eventually.True(() => Directory.GetFiles(readyDir, "ready-*").Length == 3, "the three drainers to start", seconds: 60);
            File.WriteAllText(Path.Combine(readyDir, "go"), "");
            foreach (var p in processes) Assert.True(p.WaitForExit(TimeSpan.FromMinutes(5)), "a drainer did not finish in time");
            var texts = await Task.WhenAll(outputs);
            var errorTexts = await Task.WhenAll(errors);
            for (var i = 0; i < processes.Count; i++)
                Assert.True(processes[i].ExitCode == 0, $"drainer {i} exited {processes[i].ExitCode}: {errorTexts[i]}");

            var perProcess = texts.Select(o => o.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => l.StartsWith("FINISHED ", StringComparison.Ordinal)).Select(l => l["FINISHED ".Length..].Trim()).ToList()).ToList();
            var all = perProcess.SelectMany(k => k).ToList();
            Assert.Equal(total, all.Count);                 // no task finished twice...
            Assert.Equal(total, all.Distinct().Count());    // ...and none was lost
            Assert.True(perProcess.All(keys => keys.Count > 0), "every process should take part; finished per process: " + string.Join(", ", perProcess.Select(k => k.Count)));

            using var check = Queue.Open(config);
            var tasks = check.List();
            Assert.Equal(total, tasks.Count);
            Assert.All(tasks, t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
            Assert.All(tasks, t => Assert.Equal(1, t.Attempts));
        }
        finally
        {
            foreach (var p in processes) { if (!p.HasExited) p.Kill(entireProcessTree: true); p.Dispose(); }
            Directory.Delete(readyDir, recursive: true);
        }
    }
}
