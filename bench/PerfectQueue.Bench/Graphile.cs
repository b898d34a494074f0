using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace PerfectQueue.Bench;

/// <summary>
/// graphile-worker (Node.js) on the PostgreSQL server PerfectQueue is measured on: build.ps1 installs it into a
/// temporary folder beside bench/graphile/graphile-bench.mjs; this runs that driver with node and reads its cases.
/// </summary>
internal static class Graphile
{
    public const string Driver = "graphile-bench.mjs";
    public const string Peer = "graphile-worker";
    public const string SubmitSingle = "submit, addJob";
    public const string SubmitBatch = "submit, addJobs";
    public const string DrainDefaults = "drain, defaults";
    public const string DrainBatched = "drain, batched preset";

    /// <summary>The driver's case names (its GWBENCH lines) and ours for them.</summary>
    private static readonly Dictionary<string, string> CaseNames = new(StringComparer.Ordinal)
    {
        ["submit-single"] = SubmitSingle,
        ["submit-batch"] = SubmitBatch,
        ["drain-defaults"] = DrainDefaults,
        ["drain-batched"] = DrainBatched,
    };

    /// <summary>The graphile-worker and node versions the driver reported and the node its package asks for, for the report (null until it ran).</summary>
    public static (string GraphileWorker, string Node, string? NodeRequired)? Versions { get; private set; }

    /// <summary>Why the graphile-worker cases did not run or did not finish, for the report (null when they did).</summary>
    public static string? Failure { get; private set; }

    public static async Task RunAsync(PostgresTarget target, Options o, Func<Result, Task> add)
    {
        if (o.GraphileDir is not { } dir)
        {
            Console.WriteLine($"  {Peer}: skipped ({o.GraphileMissing ?? "no --graphile folder given"})");
            return;
        }
        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(dir, Driver));
        string Text(int v) => v.ToString(CultureInfo.InvariantCulture);
        start.Environment["PQBENCH_GW_URL"] = target.Url;
        start.Environment["PQBENCH_GW_SCHEMA"] = target.GraphileSchema;
        start.Environment["PQBENCH_COUNT"] = Text(o.Count);
        start.Environment["PQBENCH_BATCH"] = Text(o.Batch);
        start.Environment["PQBENCH_WARMUP"] = Text(o.Warmup);
        start.Environment["PQBENCH_CONCURRENCY"] = Text(Options.Workers);
        start.Environment["PQBENCH_TIMEOUT"] = Text((int)o.DrainTimeout.TotalSeconds);

        using var child = Process.Start(start)!;
        var stderr = child.StandardError.ReadToEndAsync();
        // Two submits and two drains, each drain bounded by the driver itself; this only catches a hung node.
        using var timeout = new CancellationTokenSource(4 * o.DrainTimeout + TimeSpan.FromMinutes(2));
        try
        {
            while (await child.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                if (!line.StartsWith("GWBENCH ", StringComparison.Ordinal)) continue;
                await add(Parse(target.Name, line["GWBENCH ".Length..]));
            }
            await child.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            Fail($"node {Driver} did not end within {(4 * o.DrainTimeout + TimeSpan.FromMinutes(2)).TotalMinutes:F0} minutes", await stderr);
            return;
        }
        if (child.ExitCode != 0) Fail($"node {Driver} exited with code {child.ExitCode}", await stderr);
    }

    private static void Fail(string what, string stderr)
    {
        // Node's error and message lines, without its stack frames.
        var tail = string.Join('\n', stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.TrimStart().StartsWith("at ", StringComparison.Ordinal)).TakeLast(8));
        Failure = what;
        Console.WriteLine($"  {Peer}: {what}; its last error lines:\n{tail}");
    }

    private static Result Parse(string backend, string json)
    {
        using var doc = JsonDocument.Parse(json);
        var r = doc.RootElement;
        Versions = (r.GetProperty("version").GetString()!, r.GetProperty("node").GetString()!,
            r.TryGetProperty("nodeRequired", out var required) && required.ValueKind == JsonValueKind.String ? required.GetString() : null);
        var name = CaseNames[r.GetProperty("case").GetString()!];
        var count = r.GetProperty("count").GetInt32();
        var complete = r.GetProperty("complete").GetBoolean();
        var note = name switch
        {
            SubmitSingle => "WorkerUtils.addJob in a loop",
            SubmitBatch => "WorkerUtils.addJobs, batches per call as ours",
            DrainDefaults => "concurrency 4, otherwise defaults",
            _ => "concurrency 4, localQueue.size 100, completeJobBatchDelay 0",
        };
        if (!complete) note += $"; {r.GetProperty("succeeded").GetInt32()} of {count} succeeded, {r.GetProperty("rowsLeft").GetInt32()} job rows left";
        return new Result(backend, name, Peer, count, TimeSpan.FromSeconds(r.GetProperty("seconds").GetDouble()), complete, note)
        {
            WalPerTask = long.Parse(r.GetProperty("walBytes").GetString()!, CultureInfo.InvariantCulture) / count,
        };
    }
}
