using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Xunit;

namespace PerfectQueue.PowerShell.Tests;

/// <summary>
/// Submit-PQTask -BatchSize: piped tasks go to the database in round trips of that many. A count of the stored
/// tasks cannot tell one round trip per item from one per batch, so these tests look at two things that can:
/// the progress the cmdlet reports after each round trip, and the tasks' CreatedAt, which is the database clock
/// of the transaction that stored them (one value per round trip).
/// </summary>
public sealed class SubmitBatchTests(ModuleFixture module) : IClassFixture<ModuleFixture>
{
    private sealed record Result(List<PSObject> Output, List<ErrorRecord> Errors, List<ProgressRecord> Progress);

    private Result Run(string script)
    {
        using var runspace = RunspaceFactory.CreateRunspace(module.State);
        runspace.Open();
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = runspace;
        ps.AddScript(script);
        var output = ps.Invoke().ToList();
        return new Result(output, [.. ps.Streams.Error], [.. ps.Streams.Progress]);
    }

    /// <summary>The "N submitted" progress lines, one per round trip after which the cmdlet reports.</summary>
    private static string[] Submitted(Result r) =>
        r.Progress.Where(p => p.RecordType == ProgressRecordType.Processing).Select(p => p.StatusDescription).ToArray();

    [Fact]
    public void A_piped_submit_makes_one_round_trip_per_batch()
    {
        var r = Run($$"""
            Connect-PQQueue '{{module.NewUrl()}}'
            1..1200 | ForEach-Object { [pscustomobject]@{ Key = 'k{0:D4}' -f $_; Type = 'bulk' } } | Submit-PQTask -BatchSize 500
            # Per task: its number and the database time its round trip stored it.
            Get-PQTask | ForEach-Object { '{0} {1}' -f $_.Key.Substring(1), $_.CreatedAt.Ticks }
            """);
        Assert.Empty(r.Errors);
        Assert.Equal(["500 submitted", "1000 submitted", "1200 submitted"], Submitted(r));
        Assert.Single(r.Progress, p => p.RecordType == ProgressRecordType.Completed);

        // Each batch was one transaction: tasks 1-500, 501-1000 and 1001-1200 each share one CreatedAt.
        var createdAt = r.Output.Select(o => o.ToString().Split(' ')).ToDictionary(p => int.Parse(p[0]), p => long.Parse(p[1]));
        Assert.Equal(1200, createdAt.Count);
        foreach (var (first, last) in new[] { (1, 500), (501, 1000), (1001, 1200) })
            Assert.Single(Enumerable.Range(first, last - first + 1).Select(i => createdAt[i]).Distinct());
    }

    [Fact]
    public void A_batch_size_of_one_stores_each_piped_task_on_its_own()
    {
        var r = Run($$"""
            Connect-PQQueue '{{module.NewUrl()}}'
            1..3 | ForEach-Object { [pscustomobject]@{ Key = "k$_"; Type = 't' } } | Submit-PQTask -BatchSize 1
            (Get-PQTask).Count
            """);
        Assert.Empty(r.Errors);
        Assert.Equal(["1 submitted", "2 submitted", "3 submitted"], Submitted(r));
        Assert.Equal(3, Convert.ToInt32(Assert.Single(r.Output).BaseObject));
    }

    [Fact]
    public void A_pipe_smaller_than_one_batch_goes_in_one_round_trip_without_progress()
    {
        var r = Run($$"""
            Connect-PQQueue '{{module.NewUrl()}}'
            1..40 | ForEach-Object { [pscustomobject]@{ Key = "k$_"; Type = 't' } } | Submit-PQTask -BatchSize 500
            @(Get-PQTask | ForEach-Object { $_.CreatedAt } | Select-Object -Unique).Count
            (Get-PQTask).Count
            """);
        Assert.Empty(r.Errors);
        Assert.Empty(r.Progress);                   // one round trip: nothing to report progress on
        Assert.Equal([1, 40], r.Output.Select(o => Convert.ToInt32(o.BaseObject)).ToArray());
    }
}
