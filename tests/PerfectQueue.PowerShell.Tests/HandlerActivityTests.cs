using System.Collections.Concurrent;
using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Xunit;

namespace PerfectQueue.PowerShell.Tests;

/// <summary>
/// A scriptblock handler runs on its runspace's own thread: the run's span must be current there, so a handler's
/// own instrumented calls are that run's children, and a replaced runspace must not keep an earlier task's span.
/// </summary>
public sealed class HandlerActivityTests(ModuleFixture module) : IClassFixture<ModuleFixture>
{
    [Fact]
    public void A_scriptblock_handler_runs_inside_its_own_runs_span_also_in_a_runspace_made_to_replace_a_recycled_one()
    {
        var runs = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "PerfectQueue",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { if (a.OperationName.StartsWith("perfectqueue run", StringComparison.Ordinal)) runs.Enqueue(a); },
        };
        ActivitySource.AddActivityListener(listener);
        var keys = Enumerable.Range(1, 3).Select(i => $"span-{i}-{Guid.NewGuid():N}").ToArray();

        using var runspace = RunspaceFactory.CreateRunspace(module.State);
        runspace.Open();
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = runspace;
        ps.AddScript("""
            param($url, $keys)
            Connect-PQQueue $url
            foreach ($k in $keys) { Submit-PQTask $k traced }
            $null = Start-PQWorker -UntilEmpty -PollInterval 0.1 -MaxTasksPerProcessor 1 -Handler @{
                traced = { $a = [System.Diagnostics.Activity]::Current; if ($a) { "$($a.TraceId) $($a.SpanId)" } else { 'none' } }
            } 6>$null
            Get-PQTask | ForEach-Object { "$($_.Key)=$($_.Message)" }
            """).AddArgument(module.NewUrl()).AddArgument(keys);
        var lines = ps.Invoke().Select(o => o.ToString()).ToList();
        Assert.False(ps.HadErrors, string.Join("\n", ps.Streams.Error));

        var seen = lines.Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        foreach (var key in keys)
        {
            var run = Assert.Single(runs, a => Equals(a.GetTagItem("perfectqueue.task.key"), key));
            Assert.Equal($"{run.TraceId} {run.SpanId}", seen[key]);
        }
    }
}
