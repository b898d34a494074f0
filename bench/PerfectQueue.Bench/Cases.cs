using System.Diagnostics;
using System.Text.Json;
using Hangfire;
using PerfectQueue.Workers;

namespace PerfectQueue.Bench;

/// <summary>The measured cases for one backend, PerfectQueue's and its peers', one after the other.</summary>
internal static class Cases
{
    public const string NoopType = "noop";
    public const string Pq = "PerfectQueue";
    public const string Hf = "Hangfire";
    public const string SubmitSingle = "submit, one per call";
    public const string SubmitBatch = "submit, batches";
    public const string DrainCompiled = "drain, compiled handler";
    public const int Prefetch = 100;
    public const string DrainPrefetch = "drain, compiled handler, prefetch 100";
    public const string DrainScript = "drain, scriptblock handler";
    public const string DrainProcess = "drain, scriptblock, process";

    public static async Task<IReadOnlyList<Result>> RunAsync(ITarget target, Options o)
    {
        var results = new List<Result>();
        long? wal = null;
        async Task Mark() => wal = await target.WalPositionAsync();
        async Task Add(Result r)
        {
            // A peer that measures its own WAL (graphile-worker's driver, around each case) brings it along.
            if (r.WalPerTask is null && wal is { } before && await target.WalPositionAsync() is { } after) r = r with { WalPerTask = (after - before) / r.Count };
            results.Add(r);
            Console.WriteLine($"  {r.Backend,-10} {r.Peer,-15} {r.Case,-37} {r.Rate,9:F0} tasks/s ({r.Count} in {r.Elapsed.TotalSeconds:F2} s){(r.Complete ? "" : " INCOMPLETE")}" +
                $"{(r.WalPerTask is { } w ? $", WAL {w} B/task" : "")}{(r.Note is null ? "" : "  " + r.Note)}");
            await Mark();
        }
        Console.WriteLine($"{target.Name}:");

        // Warm-up, not measured: JIT, connection pools, the schema's first pages.
        if (o.Warmup > 0)
        {
            await using var warm = await target.OpenQueueAsync("warmup");
            for (var i = 0; i < o.Warmup; i++) await warm.SubmitAsync($"w{i}", NoopType);
            await warm.SubmitManyAsync(Enumerable.Range(0, o.Warmup).Select(i => new TaskSubmission($"wb{i}", NoopType)));
            await DrainCompiledAsync(warm, 2 * o.Warmup);
        }

        // Submit one per call, then drain those with the engine's worker and a compiled no-op processor.
        await using (var queue = await target.OpenQueueAsync("single"))
        {
            await Mark();
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < o.Count; i++) queue.Submit($"t{i}", NoopType);
            await Add(new Result(target.Name, SubmitSingle, Pq, o.Count, clock.Elapsed, true, "Queue.Submit in a loop"));
            await Add(await DrainCompiledAsync(queue, o.Count, target.Name));
        }

        // The same compiled drain with leased tasks kept ready beyond the free processors (the batched mode).
        await using (var queue = await target.OpenQueueAsync("prefetch"))
        {
            for (var start = 0; start < o.Count; start += o.Batch)
                await queue.SubmitManyAsync(Enumerable.Range(start, Math.Min(o.Batch, o.Count - start)).Select(i => new TaskSubmission($"f{i}", NoopType)));
            await Mark();
            await Add(await DrainCompiledAsync(queue, o.Count, target.Name, Prefetch));
        }

        // graphile-worker right after the compiled drains it is compared with, on the same server (PostgreSQL only).
        if (target is PostgresTarget postgres) await Graphile.RunAsync(postgres, o, Add);

        // Submit in batches, then drain those with Start-PQWorker and a scriptblock no-op in a child pwsh.
        await using (var queue = await target.OpenQueueAsync("batch"))
        {
            await Mark();
            var clock = Stopwatch.StartNew();
            for (var start = 0; start < o.Count; start += o.Batch)
                queue.SubmitMany(Enumerable.Range(start, Math.Min(o.Batch, o.Count - start)).Select(i => new TaskSubmission($"t{i}", NoopType)));
            await Add(new Result(target.Name, SubmitBatch, Pq, o.Count, clock.Elapsed, true, $"Queue.SubmitMany, {o.Batch} per call"));
            if (o.ModulePath is { } module)
                await Add(await DrainScriptAsync(target, queue, "batch", module, o, "Thread"));
            else Console.WriteLine("  no module given (--module): scriptblock drain skipped");
        }

        // The same scriptblock drain with process processors (a child pwsh per processor): the cost of isolation.
        if (o.ModulePath is { } isolated)
        {
            await using var queue = await target.OpenQueueAsync("process");
            for (var start = 0; start < o.Count; start += o.Batch)
                await queue.SubmitManyAsync(Enumerable.Range(start, Math.Min(o.Batch, o.Count - start)).Select(i => new TaskSubmission($"p{i}", NoopType)));
            await Mark();
            await Add(await DrainScriptAsync(target, queue, "process", isolated, o, "Process"));
        }

        await HangfireAsync(target, o, Mark, Add);
        return results;
    }

    private static async Task<Result> DrainCompiledAsync(Queue queue, int count, string? backend = null, int prefetch = 0)
    {
        var worker = new Worker(queue, new WorkerOptions { Processors = Options.Workers, UntilEmpty = true, Prefetch = prefetch }, _ => new NoopProcessor());
        var clock = Stopwatch.StartNew();
        var summary = await worker.RunAsync(CancellationToken.None, CancellationToken.None);
        var elapsed = clock.Elapsed;
        var succeeded = await CountSucceededAsync(queue);
        var complete = summary.Succeeded == count && succeeded == count;
        if (!complete && backend is null) throw new InvalidOperationException($"Warm-up drain: {summary.Succeeded} of {count} succeeded.");
        return new Result(backend ?? "", prefetch > 0 ? DrainPrefetch : DrainCompiled, Pq, count, elapsed, complete,
            complete ? null : $"worker summary: {summary.Succeeded} succeeded; the table holds {succeeded} succeeded");
    }

    private static async Task<int> CountSucceededAsync(Queue queue) =>
        (await queue.ListAsync(new TaskFilter { Statuses = [TaskState.Finished] })).Count(t => t.Outcome == TaskOutcome.Succeeded);

    private sealed class NoopProcessor : ITaskProcessor
    {
        public Task<string?> RunAsync(AcquiredTask task, CancellationToken stop) => Task.FromResult<string?>(null);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    // The child times Start-PQWorker itself and, from the worker's own log lines ("worker started" once its
    // runspaces are open, "worker stopped" at the end), the drain alone: the figure is the drain; process start,
    // module import and runspace opening are reported beside it.
    private const string ChildScript = """
        $ErrorActionPreference = 'Stop'
        $clock = [Diagnostics.Stopwatch]::StartNew()
        Import-Module $env:PQBENCH_MODULE
        Connect-PQQueue -Url $env:PQBENCH_URL -Table $env:PQBENCH_TABLE
        $import = $clock.Elapsed.TotalSeconds
        # Warm-up, not measured, as the compiled drain's: the same number of no-op tasks on a table of their own.
        $warm = [int]$env:PQBENCH_WARMUP
        if ($warm -gt 0) {
            $w = Connect-PQQueue -Url $env:PQBENCH_URL -Table ($env:PQBENCH_TABLE + '_warm') -PassThru
            Initialize-PQQueue -Queue $w
            1..$warm | ForEach-Object { [pscustomobject]@{ Key = "w$_"; Type = 'noop' } } | Submit-PQTask -Queue $w
            $null = Start-PQWorker -Queue $w -ProcessorType $env:PQBENCH_PROCESSOR_TYPE -Processors ([int]$env:PQBENCH_PROCESSORS) -UntilEmpty -Handler @{ noop = { param($Task) } } -InformationVariable ignored 6>$null
            Connect-PQQueue -Url $env:PQBENCH_URL -Table $env:PQBENCH_TABLE   # back to the measured table
        }
        $clock.Restart()
        $summary = Start-PQWorker -ProcessorType $env:PQBENCH_PROCESSOR_TYPE -Processors ([int]$env:PQBENCH_PROCESSORS) -UntilEmpty -Handler @{ noop = { param($Task) } } -InformationVariable lines 6>$null
        $call = $clock.Elapsed.TotalSeconds
        function At([string] $pattern) {
            $line = @($lines | ForEach-Object { "$_" } | Where-Object { $_ -match $pattern })[0]
            [datetime]::ParseExact($line.Substring(0, 23), 'yyyy-MM-dd HH:mm:ss.fff', [Globalization.CultureInfo]::InvariantCulture)
        }
        $drain = ((At '^\S+ \S+ worker stopped') - (At '^\S+ \S+ worker started')).TotalSeconds
        'PQBENCH ' + (@{ import = $import; call = $call; drain = $drain; succeeded = $summary.Succeeded; processed = $summary.Processed } | ConvertTo-Json -Compress)
        """;

    private static async Task<Result> DrainScriptAsync(ITarget target, Queue queue, string name, string module, Options o, string processorType)
    {
        var (url, table) = target.ModuleQueue(name);
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = o.RepoRoot, // `dotnet pwsh` finds the local tool manifest from here
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { "pwsh", "-NoProfile", "-NonInteractive", "-Command", ChildScript }) start.ArgumentList.Add(a);
        start.Environment["PQBENCH_MODULE"] = module;
        start.Environment["PQBENCH_URL"] = url;
        start.Environment["PQBENCH_TABLE"] = table;
        start.Environment["PQBENCH_PROCESSOR_TYPE"] = processorType;
        start.Environment["PQBENCH_PROCESSORS"] = Options.Workers.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["PQBENCH_WARMUP"] = (2 * o.Warmup).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var clock = Stopwatch.StartNew();
        using var child = Process.Start(start)!;
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(o.DrainTimeout);
        try { await child.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { child.Kill(entireProcessTree: true); throw new TimeoutException($"The scriptblock drain did not end within {o.DrainTimeout}."); }
        var wall = clock.Elapsed;
        var line = (await stdout).Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("PQBENCH ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"The child pwsh (exit code {child.ExitCode}) printed no result.\n{await stdout}\n{await stderr}");
        using var json = JsonDocument.Parse(line["PQBENCH ".Length..]);
        double Number(string p) => json.RootElement.GetProperty(p).GetDouble();
        var drain = TimeSpan.FromSeconds(Number("drain"));
        var succeeded = await CountSucceededAsync(queue);
        var complete = (int)Number("succeeded") == o.Count && succeeded == o.Count;
        return new Result(target.Name, processorType == "Process" ? DrainProcess : DrainScript, Pq, o.Count, drain, complete,
            $"not counted: pwsh start, import and warm-up {Number("import") + (wall.TotalSeconds - Number("import") - Number("call")):F1} s, {(processorType == "Process" ? "child processes" : "runspaces")} {Number("call") - Number("drain"):F1} s" +
            (complete ? "" : $"; {succeeded} of {o.Count} succeeded"));
    }

    private static async Task HangfireAsync(ITarget target, Options o, Func<Task> mark, Func<Result, Task> add)
    {
        if (target.HangfireStorage() is not { } storage) return; // no peer storage for this database here
        GlobalConfiguration.Configuration.UseStorage(storage); // BackgroundJob.Enqueue uses JobStorage.Current
        var monitoring = storage.GetMonitoringApi();
        var serverOptions = new BackgroundJobServerOptions
        {
            WorkerCount = Options.Workers,
            ServerName = $"pqbench-{target.Name}",
            SchedulePollingInterval = TimeSpan.FromSeconds(1),
        };
        if (o.Warmup > 0)
        {
            for (var i = 0; i < o.Warmup; i++) BackgroundJob.Enqueue(() => NoopJob.Run());
            await HangfireDrainAsync(storage, serverOptions, monitoring, o.Warmup, o.DrainTimeout);
        }

        await mark();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < o.Count; i++) BackgroundJob.Enqueue(() => NoopJob.Run());
        await add(new Result(target.Name, SubmitSingle, Hf, o.Count, clock.Elapsed, true, "BackgroundJob.Enqueue in a loop"));

        var (elapsed, done, failed) = await HangfireDrainAsync(storage, serverOptions, monitoring, o.Count, o.DrainTimeout);
        var complete = done == o.Count && failed == 0;
        await add(new Result(target.Name, DrainCompiled, Hf, complete ? o.Count : (int)done, elapsed, complete,
            complete ? null : $"{done} of {o.Count} succeeded, {failed} failed before the {o.DrainTimeout.TotalSeconds:F0} s limit"));
    }

    // Starts a server, waits until `count` more jobs have succeeded (polling the monitoring API every 20 ms), and
    // stops it; the time is from starting the server to the last success seen.
    private static async Task<(TimeSpan Elapsed, long Done, long Failed)> HangfireDrainAsync(
        JobStorage storage, BackgroundJobServerOptions serverOptions, Hangfire.Storage.IMonitoringApi monitoring, int count, TimeSpan timeout)
    {
        var before = monitoring.SucceededListCount();
        var failedBefore = monitoring.FailedCount();
        var clock = Stopwatch.StartNew();
        long done;
        using (new BackgroundJobServer(serverOptions, storage))
        {
            while ((done = monitoring.SucceededListCount() - before) < count && monitoring.FailedCount() == failedBefore && clock.Elapsed < timeout)
                await Task.Delay(20);
            var elapsed = clock.Elapsed;
            return (elapsed, done, monitoring.FailedCount() - failedBefore);
        }
    }
}

/// <summary>Hangfire's no-op job.</summary>
public static class NoopJob
{
    public static void Run() { }
}
