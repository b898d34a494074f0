using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace PerfectQueue.Bench;

internal sealed record Machine(int Cores, string Cpu, string Os, string Runtime, string LoadAtStart)
{
    public static Machine Describe()
    {
        string Read(string path, Func<string, string> pick)
        {
            try { return pick(File.ReadAllText(path)); } catch (IOException) { return "unknown"; } catch (UnauthorizedAccessException) { return "unknown"; }
        }
        var cpu = Read("/proc/cpuinfo", t => t.Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown");
        var load = Read("/proc/loadavg", t => string.Join(' ', t.Split(' ').Take(3)));
        return new Machine(Environment.ProcessorCount, cpu, RuntimeInformation.OSDescription, RuntimeInformation.FrameworkDescription, load);
    }
}

internal sealed class Report(Options options, Machine machine, IReadOnlyList<BackendFacts> backends, IReadOnlyList<Result> results)
{
    private static readonly string[] CaseOrder = [Cases.SubmitSingle, Cases.SubmitBatch, Cases.DrainCompiled, Cases.DrainScript, Cases.DrainProcess];

    private static string F(double v) => v.ToString("N0", CultureInfo.InvariantCulture);
    private static string R(double? v) => v is { } x ? x.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–";

    private Result? Find(string backend, string @case, string peer) =>
        results.FirstOrDefault(r => r.Backend == backend && r.Case == @case && r.Peer == peer);

    private static double? Ratio(Result? a, Result? b) => a is { Complete: true } && b is not null ? a.Rate / b.Rate : null;

    private IEnumerable<string> Backends => results.Select(r => r.Backend).Distinct();

    /// <summary>One row per backend and case: PerfectQueue's figure, Hangfire's, and the ratio.</summary>
    private IEnumerable<(string Backend, string Case, string Pq, string Hf, string Ratio)> Rows()
    {
        foreach (var backend in Backends)
            foreach (var @case in CaseOrder)
            {
                var pq = Find(backend, @case, Cases.Pq);
                // Hangfire has neither batches nor scriptblocks: those rows compare with its one-per-call submit and its drain.
                var hf = @case switch
                {
                    Cases.SubmitBatch => Find(backend, Cases.SubmitSingle, Cases.Hf),
                    Cases.DrainScript or Cases.DrainProcess => Find(backend, Cases.DrainCompiled, Cases.Hf),
                    _ => Find(backend, @case, Cases.Hf),
                };
                if (pq is null && hf is null) continue;
                var hfText = hf is null ? "–" : (@case is Cases.SubmitBatch or Cases.DrainScript or Cases.DrainProcess ? $"({F(hf.Rate)})" : F(hf.Rate)) + (hf.Complete ? "" : " (incomplete)");
                yield return (backend, @case, pq is null ? "–" : F(pq.Rate) + (pq.Complete ? "" : " (incomplete)"), hfText, R(Ratio(pq, hf)));
            }
    }

    public string Table()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"backend",-11}{"case",-29}{"PerfectQueue",14}{"Hangfire",14}{"PQ ÷ HF",10}   (tasks/s, N = {options.Count})");
        foreach (var (backend, @case, pq, hf, ratio) in Rows())
            sb.AppendLine(CultureInfo.InvariantCulture, $"{backend,-11}{@case,-29}{pq,14}{hf,14}{ratio,10}");
        return sb.ToString();
    }

    public string Ratios()
    {
        var sb = new StringBuilder();
        foreach (var backend in Backends)
        {
            var compiled = Find(backend, Cases.DrainCompiled, Cases.Pq);
            var script = Find(backend, Cases.DrainScript, Cases.Pq);
            var single = Find(backend, Cases.SubmitSingle, Cases.Pq);
            var batch = Find(backend, Cases.SubmitBatch, Cases.Pq);
            var process = Find(backend, Cases.DrainProcess, Cases.Pq);
            sb.AppendLine(CultureInfo.InvariantCulture, $"{backend}: scriptblock ÷ compiled drain {R(Ratio(script, compiled))}; process ÷ thread scriptblock drain {R(Ratio(process, script))}; batched ÷ single submit {R(Ratio(batch, single))}");
        }
        return sb.ToString();
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        void L(string line = "") => sb.Append(line).Append('\n');
        L("# Benchmarks");
        L();
        L("Written by `build.ps1 bench` (the `bench/PerfectQueue.Bench` program): do not edit by hand, run it again.");
        L("PerfectQueue is measured against a peer, [Hangfire](https://www.hangfire.io/), in the same run, on the same");
        L("database server and disk, with the same number of no-op jobs and 4 workers; figures are tasks per second,");
        L("and what matters is the ratio, not the absolute number (see *Reading the figures*).");
        L();
        L("## This run");
        L();
        L($"- Command: `{options.Command}`");
        L($"- N = {options.Count} tasks per case (`-Count` changes it), {Options.Workers} workers (processors), no-op handlers; " +
          $"a warm-up of {options.Warmup} submits and drains per peer and backend before the measured cases, not counted.");
        L($"- Machine: {machine.Cores} cores ({machine.Cpu}), {machine.Os}, {machine.Runtime}; load average at start {machine.LoadAtStart} " +
          "(other work shares these cores: figures vary from run to run).");
        foreach (var b in backends) L($"- {b.Version}: {string.Join("; ", b.Settings)}.");
        L($"- Hangfire {typeof(Hangfire.BackgroundJob).Assembly.GetName().Version?.ToString(3)} with Hangfire.PostgreSql and Hangfire.Storage.SQLite; " +
          $"`WorkerCount = {Options.Workers}`, `QueuePollInterval = {ITarget.HangfirePollInterval.TotalMilliseconds:F0} ms` (default 15 s), " +
          "`SchedulePollingInterval = 1 s`, otherwise defaults.");
        L();
        L("| backend | case | PerfectQueue (tasks/s) | Hangfire (tasks/s) | PerfectQueue ÷ Hangfire |");
        L("|---|---|---:|---:|---:|");
        foreach (var (backend, @case, pq, hf, ratio) in Rows()) L($"| {backend} | {@case} | {pq} | {hf} | {ratio} |");
        L();
        L("Hangfire figures in parentheses are its one-per-call submit and its drain, repeated for comparison: open-source Hangfire has");
        L("no batch submit and no scriptblock handlers. MariaDB rows have no Hangfire figures: no Hangfire storage for MySQL is served");
        L("to these machines, so PerfectQueue's MariaDB figures compare with its own PostgreSQL ones from the same run.");
        L();
        foreach (var backend in Backends)
        {
            var compiled = Find(backend, Cases.DrainCompiled, Cases.Pq);
            var script = Find(backend, Cases.DrainScript, Cases.Pq);
            var single = Find(backend, Cases.SubmitSingle, Cases.Pq);
            var batch = Find(backend, Cases.SubmitBatch, Cases.Pq);
            var process = Find(backend, Cases.DrainProcess, Cases.Pq);
            L($"- {backend}: scriptblock ÷ compiled drain **{R(Ratio(script, compiled))}**; process ÷ thread scriptblock drain **{R(Ratio(process, script))}**; batched ÷ one-per-call submit {R(Ratio(batch, single))}." +
              (script?.Note is { } n ? $" Scriptblock drain, {n}." : "") + (process?.Note is { } pn ? $" Process drain, {pn}." : ""));
        }
        L();
        var wal = results.Where(r => r.WalPerTask is not null).ToList();
        if (wal.Count > 0)
        {
            L("Write-ahead log the PostgreSQL server wrote per task during each case (`pg_current_wal_lsn()` before and after;");
            L("Hangfire's figure includes what its server's background processes wrote meanwhile):");
            L();
            L("| case | PerfectQueue (bytes/task) | Hangfire (bytes/task) |");
            L("|---|---:|---:|");
            foreach (var @case in CaseOrder)
            {
                var pq = wal.FirstOrDefault(r => r.Case == @case && r.Peer == Cases.Pq);
                var hf = wal.FirstOrDefault(r => r.Case == @case && r.Peer == Cases.Hf);
                if (pq is null && hf is null) continue;
                L($"| {@case} | {(pq is null ? "–" : F(pq.WalPerTask!.Value))} | {(hf is null ? "–" : F(hf.WalPerTask!.Value))} |");
            }
            L();
        }
        L("## What each case measures");
        L();
        L("- **submit, one per call**: PerfectQueue `Queue.Submit(key, \"noop\")` in a loop (one statement and one commit per");
        L("  task); Hangfire `BackgroundJob.Enqueue(() => NoopJob.Run())` in a loop. Time from the first call to the last return.");
        L($"- **submit, batches**: PerfectQueue `Queue.SubmitMany` with {options.Batch} tasks per call (one round trip and one commit");
        L("  per batch; `Submit-PQTask` batches piped input the same way).");
        L("- **drain, compiled handler**: N tasks submitted beforehand (the one-per-call submit's). PerfectQueue: the engine's");
        L("  `PerfectQueue.Workers.Worker` with `Processors = 4`, `UntilEmpty = true` and a no-op `ITaskProcessor`; time from");
        L("  `RunAsync` to its return, which includes the last, empty poll. Hangfire: a `BackgroundJobServer` with");
        L("  `WorkerCount = 4` over N enqueued no-op jobs; time from creating the server to the moment the monitoring API");
        L("  counts N more succeeded jobs (polled every 20 ms). Both then check that all N ended succeeded.");
        L("- **drain, scriptblock handler**: N tasks (the batched submit's) drained by");
        L("  `Start-PQWorker -Processors 4 -UntilEmpty -Handler @{ noop = { param($Task) } }` from the assembled module");
        L("  (`out/PerfectQueue`) in a child `dotnet pwsh`. The figure is the drain alone, from the worker's \"worker started\"");
        L("  log line (its 4 runspaces are open) to its \"worker stopped\" line; the child's start, the module import, a");
        L("  warm-up drain in the same child (as many tasks as the compiled warm-up, on a table of their own: a cold pwsh");
        L("  ran the first thousands of tasks at about 60% of its warm speed) and opening the runspaces are reported beside");
        L("  it and not counted. The worker's log lines (two per task) are");
        L("  formatted as always but collected (`-InformationVariable lines 6>$null`) rather than printed to a console.");
        L();
        L("## Reading the figures");
        L();
        L("- Same database, same disk, same N, same worker count, same machine and run: the ratio is the comparison. The");
        L("  absolute figures depend on the disk's commit latency and on whatever else runs on the machine.");
        L("- PostgreSQL runs with `fsync = on` (a throwaway cluster that `build.ps1 bench` starts, or the server in");
        L("  `PQ_BENCH_POSTGRES`); the test suite's cluster runs with fsync off and is never used for figures.");
        L("- MariaDB runs durable as well: `innodb_flush_log_at_trx_commit = 1` and the doublewrite buffer on (a throwaway server");
        L("  that `build.ps1 bench` starts, or the server in `PQ_BENCH_MYSQL`); the test suite's server flushes once a second.");
        L("- Not the same work. Hangfire serializes a method call (type, method, arguments) per job, writes a job row, its");
        L("  parameters, a state-history row per state (Enqueued, Processing, Succeeded) and a queue row, and keeps counters;");
        L("  PerfectQueue writes one row per task and updates it in place (submit, acquire, finish). Hangfire's retries and");
        L("  state history are features PerfectQueue does not have in that form; its per-job cost is the price of them.");
        L("- Hangfire's workers fetch one job per query; PerfectQueue's one fetcher leases up to one task per free");
        L("  processor per statement. Hangfire commits each job's state changes on their own; PerfectQueue's finishes that");
        L("  arrive together share one transaction (group commit), and on PostgreSQL its statements are auto-prepared.");
        L("- Hangfire's drain time starts with its server's start-up (a few background processes besides the workers);");
        L("  PerfectQueue's compiled drain includes its worker's start (opening the processors, the first poll).");
        L("- On SQLite every writer of a file takes the same write lock, so throughput is bounded by that lock and the");
        L("  disk's sync, not by the number of workers.");
        L("- 2 cores run the peer, its database server and the benchmark itself: CPU, not only the disk, limits these runs.");
        L("  On a shared machine consecutive runs can differ several-fold in a single row; compare within one run, and run");
        L("  it again before drawing conclusions from one figure.");
        return sb.ToString();
    }
}
