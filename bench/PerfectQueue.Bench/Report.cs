using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace PerfectQueue.Bench;

internal sealed record Machine(int Cores, string Cpu, string Os, string Runtime, string LoadAtStart)
{
    /// <summary>The load average when the cases had run (the report is made then).</summary>
    public string LoadAtEnd { get; init; } = "unknown";

    private static string Read(string path, Func<string, string> pick)
    {
        try { return pick(File.ReadAllText(path)); } catch (IOException) { return "unknown"; } catch (UnauthorizedAccessException) { return "unknown"; }
    }

    /// <summary>The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.</summary>
    public static string LoadAverage() => Read("/proc/loadavg", t => string.Join(' ', t.Split(' ').Take(3)));

    public static Machine Describe()
    {
        var cpu = Read("/proc/cpuinfo", t => t.Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown");
        return new Machine(Environment.ProcessorCount, cpu, RuntimeInformation.OSDescription, RuntimeInformation.FrameworkDescription, LoadAverage());
    }
}

internal sealed class Report(Options options, Machine machine, IReadOnlyList<BackendFacts> backends, IReadOnlyList<Result> results)
{
    private static readonly string[] CaseOrder = [Cases.SubmitSingle, Cases.SubmitBatch, Cases.DrainCompiled, Cases.DrainPrefetch, Cases.DrainScript, Cases.DrainProcess];
    private static readonly string[] Peers = [Cases.Hf, Graphile.Peer];
    private const string Pg = "PostgreSQL";

    private static string F(double v) => v.ToString("N0", CultureInfo.InvariantCulture);
    private static string R(double? v) => v is { } x ? x.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–";

    private Result? Find(string backend, string @case, string peer) =>
        results.FirstOrDefault(r => r.Backend == backend && r.Case == @case && r.Peer == peer);

    private static double? Ratio(Result? a, Result? b) => a is { Complete: true } && b is not null ? a.Rate / b.Rate : null;
    /// <summary>For the targets: both sides complete, or no figure.</summary>
    private static double? StrictRatio(Result? a, Result? b) => b is { Complete: true } ? Ratio(a, b) : null;

    private IEnumerable<string> Backends => results.Select(r => r.Backend).Distinct();

    /// <summary>
    /// The peer's case a PerfectQueue case is compared with; Repeated: the peer has no such case, and its nearest
    /// (a one-per-call submit, its plain drain) is shown again in parentheses.
    /// </summary>
    private static (string Case, bool Repeated) PeerCase(string peer, string ours) => (peer, ours) switch
    {
        (Cases.Hf, Cases.SubmitSingle) => (Cases.SubmitSingle, false),
        (Cases.Hf, Cases.SubmitBatch) => (Cases.SubmitSingle, true), // open-source Hangfire has no batch submit
        (Cases.Hf, Cases.DrainCompiled) => (Cases.DrainCompiled, false),
        (Cases.Hf, _) => (Cases.DrainCompiled, true),
        (_, Cases.SubmitSingle) => (Graphile.SubmitSingle, false),
        (_, Cases.SubmitBatch) => (Graphile.SubmitBatch, false),
        (_, Cases.DrainCompiled) => (Graphile.DrainDefaults, false),
        (_, Cases.DrainPrefetch) => (Graphile.DrainBatched, false),
        _ => (Graphile.DrainDefaults, true),
    };

    private static string Cell(Result? r, bool repeated = false) =>
        r is null ? "–" : (repeated ? $"({F(r.Rate)})" : F(r.Rate)) + (r.Complete ? "" : " (incomplete)");

    /// <summary>One row per backend and case: PerfectQueue's figure, then each peer's and the ratio to it.</summary>
    private IEnumerable<(string Backend, string Case, string Pq, string[] PeerCells)> Rows()
    {
        foreach (var backend in Backends)
            foreach (var @case in CaseOrder)
            {
                var pq = Find(backend, @case, Cases.Pq);
                var peers = Peers.Select(p =>
                {
                    var (peerCase, repeated) = PeerCase(p, @case);
                    return (Repeated: repeated, Result: Find(backend, peerCase, p));
                }).ToList();
                if (pq is null && peers.All(p => p.Result is null || p.Repeated)) continue;
                var cells = peers.SelectMany(p => new[] { Cell(p.Result, p.Repeated), R(Ratio(pq, p.Result)) }).ToArray();
                yield return (backend, @case, Cell(pq), cells);
            }
    }

    /// <summary>Issue 13's targets, each from this run: what, this run's figure, the goal, whether it is met, and the peer's figure where one helps.</summary>
    private IEnumerable<(string What, string Value, string Goal, string Met, string? Note)> Targets()
    {
        static string Met(double? v, Func<double, bool> ok) => v is { } x ? (ok(x) ? "yes" : "no") : "–";
        (string, string, string, string, string?) AtLeast(string what, double? v, double goal) =>
            (what, R(v), "≥ " + goal.ToString("0.0#", CultureInfo.InvariantCulture), Met(v, x => x >= goal), null);

        var compiled = Find(Pg, Cases.DrainCompiled, Cases.Pq);
        var script = Find(Pg, Cases.DrainScript, Cases.Pq);
        yield return AtLeast("compiled drain ÷ graphile-worker defaults (PostgreSQL)", StrictRatio(compiled, Find(Pg, Graphile.DrainDefaults, Graphile.Peer)), 1.2);
        yield return AtLeast($"batched mode (prefetch {Cases.Prefetch}) ÷ graphile-worker batched (PostgreSQL)",
            StrictRatio(Find(Pg, Cases.DrainPrefetch, Cases.Pq), Find(Pg, Graphile.DrainBatched, Graphile.Peer)), 1.0);
        yield return AtLeast("scriptblock ÷ compiled drain (PostgreSQL)", StrictRatio(script, compiled), 0.75);
        yield return AtLeast("process-mode ÷ thread-mode scriptblock drain (PostgreSQL)", StrictRatio(Find(Pg, Cases.DrainProcess, Cases.Pq), script), 0.5);

        double? wal = compiled is { Complete: true, WalPerTask: { } w } ? w : null;
        var peerWal = string.Join(", ", new[] { (Case: Graphile.DrainDefaults, Label: "defaults"), (Case: Graphile.DrainBatched, Label: "batched") }
            .Select(c => (c.Label, Find(Pg, c.Case, Graphile.Peer)?.WalPerTask)).Where(c => c.WalPerTask is not null)
            .Select(c => $"{c.Label} {F(c.WalPerTask!.Value)} B"));
        yield return ("WAL per drained task (PostgreSQL, compiled drain)", wal is { } b ? $"{F(b)} B" : "–", "≤ 1,500 B", Met(wal, x => x <= 1500),
            peerWal.Length > 0 ? $"graphile-worker: {peerWal}" : null);

        var sqlite = Find("SQLite", Cases.DrainCompiled, Cases.Pq);
        double? sqliteRate = sqlite is { Complete: true } ? sqlite.Rate : null;
        yield return ("SQLite compiled drain", sqliteRate is { } s ? $"{F(s)}/s" : "–", "≥ 3,000/s", Met(sqliteRate, x => x >= 3000), null);
        yield return AtLeast("single submit ÷ graphile-worker addJob (PostgreSQL)",
            StrictRatio(Find(Pg, Cases.SubmitSingle, Cases.Pq), Find(Pg, Graphile.SubmitSingle, Graphile.Peer)), 2.0);
    }

    private string GraphileStatus() =>
        Graphile.Failure is { } failure ? $"graphile-worker did not finish its cases ({failure}); any figures it gave before that are shown"
        : Graphile.Versions is { } v ? $"graphile-worker {v.GraphileWorker} on Node.js {v.Node}" + (v.NodeRequired is { } n ? $" (its package asks for Node.js {n})" : "")
        : $"graphile-worker cases skipped: {options.GraphileMissing ?? (options.PostgresUrl is null ? "no PostgreSQL server" : "no --graphile folder given")}";

    public string Table()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"backend",-11}{"case",-38}{"PerfectQueue",14}{"Hangfire",14}{"PQ ÷ HF",10}{"graphile-worker",17}{"PQ ÷ GW",10}   (tasks/s, N = {options.Count})");
        foreach (var (backend, @case, pq, c) in Rows())
            sb.AppendLine(CultureInfo.InvariantCulture, $"{backend,-11}{@case,-38}{pq,14}{c[0],14}{c[1],10}{c[2],17}{c[3],10}");
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
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Targets (issue 13), this run; {GraphileStatus()}:");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  {"target",-68}{"this run",12}  {"goal",-11}{"met",-5}");
        foreach (var (what, value, goal, met, note) in Targets())
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {what,-68}{value,12}  {goal,-11}{met,-5}{(note is null ? "" : "(" + note + ")")}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Load average at start {machine.LoadAtStart}, at end {machine.LoadAtEnd}");
        return sb.ToString();
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        void L(string line = "") => sb.Append(line).Append('\n');
        L("# Benchmarks");
        L();
        L("Written by `build.ps1 bench` (the `bench/PerfectQueue.Bench` program): do not edit by hand, run it again.");
        L("PerfectQueue is measured against peers in the same run, on the same database server and disk, with the same");
        L("number of no-op jobs and 4 workers: [Hangfire](https://www.hangfire.io/) (.NET; SQLite and PostgreSQL) and");
        L("[graphile-worker](https://worker.graphile.org/) (Node.js; PostgreSQL). Figures are tasks per second, and what");
        L("matters is the ratio, not the absolute number (see *Reading the figures*).");
        L();
        L("## This run");
        L();
        L($"- Command: `{options.Command}`");
        L($"- N = {options.Count} tasks per case (`-Count` changes it), {Options.Workers} workers (processors), no-op handlers; " +
          $"a warm-up of {options.Warmup} submits and drains per peer and backend before the measured cases, not counted.");
        L($"- Machine: {machine.Cores} cores ({machine.Cpu}), {machine.Os}, {machine.Runtime}; load average at start {machine.LoadAtStart}, " +
          $"at end {machine.LoadAtEnd} (other work shares these cores: figures vary from run to run).");
        foreach (var b in backends) L($"- {b.Version}: {string.Join("; ", b.Settings)}.");
        L($"- Hangfire {typeof(Hangfire.BackgroundJob).Assembly.GetName().Version?.ToString(3)} with Hangfire.PostgreSql and Hangfire.Storage.SQLite; " +
          $"`WorkerCount = {Options.Workers}`, `QueuePollInterval = {ITarget.HangfirePollInterval.TotalMilliseconds:F0} ms` (default 15 s), " +
          "`SchedulePollingInterval = 1 s`, otherwise defaults.");
        L(Graphile.Versions is not null && Graphile.Failure is null
            ? $"- {GraphileStatus()}, installed by `build.ps1 bench` into a temporary folder (nothing of it is in the repository or the module); " +
              $"`concurrency: {Options.Workers}`, a schema of its own in the same database, otherwise defaults, or the batched preset where said; " +
              "a logger that keeps warnings and errors (its default prints a line per job)."
            : $"- {GraphileStatus()}.");
        L();
        L("## Targets (issue 13)");
        L();
        L("| target | this run | goal | met |");
        L("|---|---:|---:|:---:|");
        foreach (var (what, value, goal, met, note) in Targets()) L($"| {what} | {value}{(note is null ? "" : $" ({note})")} | {goal} | {met} |");
        L();
        L($"Each from the table below (N = {options.Count}); \"–\": a side did not run or did not finish. Load average (1, 5, 15 minutes)");
        L($"at start {machine.LoadAtStart}, at end {machine.LoadAtEnd}.");
        L();
        L("## All cases");
        L();
        L("| backend | case | PerfectQueue (tasks/s) | Hangfire (tasks/s) | PerfectQueue ÷ Hangfire | graphile-worker (tasks/s) | PerfectQueue ÷ graphile-worker |");
        L("|---|---|---:|---:|---:|---:|---:|");
        foreach (var (backend, @case, pq, c) in Rows()) L($"| {backend} | {@case} | {pq} | {c[0]} | {c[1]} | {c[2]} | {c[3]} |");
        L();
        L("A peer's figure in parentheses is its nearest case, repeated for comparison: open-source Hangfire has no batch submit,");
        L("neither peer has scriptblock handlers, and Hangfire has no batched drain. graphile-worker's figures, row by row, are");
        L("`addJob` in a loop, `addJobs`, its drain with defaults and its drain with the batched preset. graphile-worker runs on");
        L("PostgreSQL only; MariaDB rows have no peer figures: no Hangfire storage for MySQL is served to these machines, so");
        L("PerfectQueue's MariaDB figures compare with its own PostgreSQL ones from the same run.");
        L();
        foreach (var backend in Backends)
        {
            var compiled = Find(backend, Cases.DrainCompiled, Cases.Pq);
            var script = Find(backend, Cases.DrainScript, Cases.Pq);
            var single = Find(backend, Cases.SubmitSingle, Cases.Pq);
            var batch = Find(backend, Cases.SubmitBatch, Cases.Pq);
            var process = Find(backend, Cases.DrainProcess, Cases.Pq);
            if (compiled is null && script is null && single is null) continue; // a backend with peer rows only
            L($"- {backend}: scriptblock ÷ compiled drain **{R(Ratio(script, compiled))}**; process ÷ thread scriptblock drain **{R(Ratio(process, script))}**; batched ÷ one-per-call submit {R(Ratio(batch, single))}." +
              (script?.Note is { } n ? $" Scriptblock drain, {n}." : "") + (process?.Note is { } pn ? $" Process drain, {pn}." : ""));
        }
        L();
        var wal = results.Where(r => r.WalPerTask is not null).ToList();
        if (wal.Count > 0)
        {
            L("Write-ahead log the PostgreSQL server wrote per task during each case (`pg_current_wal_lsn()` before and after;");
            L("a peer's figure includes what its background processes wrote meanwhile):");
            L();
            L("| case | PerfectQueue (bytes/task) | Hangfire (bytes/task) | graphile-worker (bytes/task) |");
            L("|---|---:|---:|---:|");
            foreach (var @case in CaseOrder)
            {
                var pq = wal.FirstOrDefault(r => r.Case == @case && r.Peer == Cases.Pq);
                var peers = Peers.Select(p => PeerCase(p, @case) is { Repeated: false } pc ? wal.FirstOrDefault(r => r.Case == pc.Case && r.Peer == p) : null).ToList();
                if (pq is null && peers.All(r => r is null)) continue;
                string B(Result? r) => r is null ? "–" : F(r.WalPerTask!.Value);
                L($"| {@case} | {B(pq)} | {B(peers[0])} | {B(peers[1])} |");
            }
            L();
        }
        L("## What each case measures");
        L();
        L("- **submit, one per call**: PerfectQueue `Queue.Submit(key, \"noop\")` in a loop (one statement and one commit per");
        L("  task); Hangfire `BackgroundJob.Enqueue(() => NoopJob.Run())` in a loop; graphile-worker `addJob(\"noop\", {})` of");
        L("  `makeWorkerUtils` in a loop, each awaited (one statement and one commit per job). Time from the first call to the");
        L("  last return.");
        L($"- **submit, batches**: PerfectQueue `Queue.SubmitMany` with {options.Batch} tasks per call (one round trip and one commit");
        L($"  per batch; `Submit-PQTask` batches piped input the same way); graphile-worker `addJobs` with {options.Batch} jobs per call.");
        L("- **drain, compiled handler**: N tasks submitted beforehand (the one-per-call submit's). PerfectQueue: the engine's");
        L("  `PerfectQueue.Workers.Worker` with `Processors = 4`, `UntilEmpty = true` and a no-op `ITaskProcessor`; time from");
        L("  `RunAsync` to its return, which includes the last, empty poll. Hangfire: a `BackgroundJobServer` with");
        L("  `WorkerCount = 4` over N enqueued no-op jobs; time from creating the server to the moment the monitoring API");
        L("  counts N more succeeded jobs (polled every 20 ms). Both then check that all N ended succeeded.");
        L($"- **drain, compiled handler, prefetch {Cases.Prefetch}**: the same compiled drain with `WorkerOptions.Prefetch = {Cases.Prefetch}`");
        L($"  (`Start-PQWorker -Prefetch {Cases.Prefetch}`): the worker keeps up to {Cases.Prefetch} leased tasks ready beyond its free");
        L("  processors, PerfectQueue's batched mode. Its N tasks are submitted in batches beforehand, not timed.");
        L("- **graphile-worker, drain with defaults** (beside the compiled drain): `run({ concurrency: 4, taskList: { noop: async () => {} } })`");
        L("  over the N jobs its `addJob` loop added. graphile-worker deletes a job's row when the job succeeds, so the time is");
        L("  from calling `run()` to the moment no row is left in its jobs table (`_private_jobs`): once its `job:complete`");
        L("  event has fired N times the driver counts the rows every 5 ms until none is left (the drain is not slowed by");
        L("  polls before that). It then checks that N `job:success` events fired and stops the runner.");
        L("- **graphile-worker, drain with the batched preset** (beside the prefetch drain): the same over the N jobs `addJobs`");
        L("  added, with `preset: { worker: { localQueue: { size: 100 }, completeJobBatchDelay: 0 } }`: one query fetches and");
        L("  locks up to 100 jobs for the local queue, and completions that arrive together are deleted by one statement.");
        L("  graphile-worker's own warm-up (as many jobs as PerfectQueue's, drained with defaults) and its migrations run");
        L("  before, in its own schema, and are not counted. Its WAL figures are taken around each case by its driver");
        L("  (`bench/graphile/graphile-bench.mjs`, run by `node` from the temporary folder).");
        L("- **drain, scriptblock handler**: N tasks (the batched submit's) drained by");
        L("  `Start-PQWorker -Processors 4 -UntilEmpty -Handler @{ noop = { param($Task) } }` from the assembled module");
        L("  (`out/PerfectQueue`) in a child `dotnet pwsh`. The figure is the drain alone, from the worker's \"worker started\"");
        L("  log line (its 4 runspaces are open) to its \"worker stopped\" line; the child's start, the module import, a");
        L("  warm-up drain in the same child (as many tasks as the compiled warm-up, on a table of their own: a cold pwsh");
        L("  ran the first thousands of tasks at about 60% of its warm speed) and opening the runspaces are reported beside");
        L("  it and not counted. The worker's log lines (two per task) are");
        L("  formatted as always but collected (`-InformationVariable lines 6>$null`) rather than printed to a console.");
        L("- **drain, scriptblock, process**: the same with `-ProcessorType Process` (a child pwsh per processor).");
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
        L("- graphile-worker writes one row per job and deletes it on success; PerfectQueue keeps a finished task's row (its");
        L("  outcome and result, for `Get-PQTask` and for its retention time) and every task has a unique key. graphile-worker");
        L("  runs its no-op handlers on Node.js's one event loop, PerfectQueue's compiled ones on .NET threads.");
        L("- Hangfire's workers fetch one job per query; PerfectQueue's one fetcher leases up to one task per free");
        L("  processor per statement. Hangfire commits each job's state changes on their own; PerfectQueue's finishes that");
        L("  arrive together share one transaction (group commit), and on PostgreSQL its statements are auto-prepared.");
        L("- Hangfire's drain time starts with its server's start-up (a few background processes besides the workers);");
        L("  graphile-worker's with `run()` (its pool's connections, its first queries); PerfectQueue's compiled drain");
        L("  includes its worker's start (opening the processors, the first poll).");
        L("- On SQLite every writer of a file takes the same write lock, so throughput is bounded by that lock and the");
        L("  disk's sync, not by the number of workers.");
        L("- 2 cores run the peer, its database server and the benchmark itself: CPU, not only the disk, limits these runs.");
        L("  On a shared machine consecutive runs can differ several-fold in a single row; compare within one run, and run");
        L("  it again before drawing conclusions from one figure.");
        return sb.ToString();
    }
}
