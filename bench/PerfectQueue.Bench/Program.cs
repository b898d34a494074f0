// build.ps1 bench: PerfectQueue's submit and drain throughput next to Hangfire's and (on PostgreSQL) graphile-worker's,
// measured in the same run on the same database server and disk, with the same job count, no-op jobs and 4 workers.
// Prints a table and the issue-13 targets and writes docs/benchmarks.md. Usage (build.ps1 passes all of it):
//   PerfectQueue.Bench --count 20000 [--postgres postgresql://user@host:port/db] [--mysql mysql://user@host:port/db] [--module out/PerfectQueue]
//                      [--graphile <folder with graphile-bench.mjs and node_modules> | --graphile-missing <why>]
//                      [--repo <root>] [--output docs/benchmarks.md] [--command "dotnet pwsh ./build.ps1 bench"]
using System.Globalization;
using PerfectQueue.Bench;

var options = Options.Parse(args);
var machine = Machine.Describe();
Console.WriteLine($"PerfectQueue bench: N = {options.Count} per case, {Options.Workers} workers, batches of {options.Batch}; {machine.Cores} cores, {machine.Os}; load average {machine.LoadAtStart}");
if (options.GraphileDir is null) Console.WriteLine($"graphile-worker cases skipped: {options.GraphileMissing ?? "no --graphile folder given"}.");

var results = new List<Result>();
var backends = new List<BackendFacts>();
var temp = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"pq-bench-{Environment.ProcessId}")).FullName;
try
{
    var sqlite = new SqliteTarget(temp);
    backends.Add(await sqlite.DescribeAsync());
    results.AddRange(await Cases.RunAsync(sqlite, options));

    if (options.PostgresUrl is { } url)
    {
        var postgres = new PostgresTarget(url);
        try
        {
            backends.Add(await postgres.DescribeAsync());
            results.AddRange(await Cases.RunAsync(postgres, options));
        }
        finally { await postgres.DropAsync(); }
    }
    else Console.WriteLine("No PostgreSQL server given (--postgres): PostgreSQL cases skipped.");

    if (options.MySqlUrl is { } mysqlUrl)
    {
        var mysql = new PerfectQueue.Bench.MySqlTarget(mysqlUrl);
        try
        {
            backends.Add(await mysql.DescribeAsync());
            results.AddRange(await Cases.RunAsync(mysql, options));
        }
        finally { await mysql.DropAsync(); }
    }
    else Console.WriteLine("No MySQL/MariaDB server given (--mysql): MariaDB cases skipped.");
}
finally
{
    try { Directory.Delete(temp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
}

var report = new Report(options, machine with { LoadAtEnd = Machine.LoadAverage() }, backends, results);
Console.WriteLine();
Console.WriteLine(report.Table());
Console.WriteLine(report.Ratios());
if (options.Output is { } output)
{
    File.WriteAllText(output, report.Markdown());
    Console.WriteLine($"Wrote {output}");
}
return results.Any(r => !r.Complete) || Graphile.Failure is not null ? 1 : 0;

namespace PerfectQueue.Bench
{
    internal sealed class Options
    {
        public const int Workers = 4;
        public const int DefaultCount = 20000;
        public int Count { get; private init; } = DefaultCount;
        public int Batch { get; private init; } = 100;
        public int Warmup { get; private init; } = 100;
        public string? PostgresUrl { get; private init; }
        public string? MySqlUrl { get; private init; }
        public string? ModulePath { get; private init; }
        /// <summary>A folder holding graphile-bench.mjs beside an installed graphile-worker (build.ps1 makes it); null: no graphile-worker cases.</summary>
        public string? GraphileDir { get; private init; }
        /// <summary>Why there is no graphile-worker folder (no node, no npm, the install failed), for the report.</summary>
        public string? GraphileMissing { get; private init; }
        public string RepoRoot { get; private init; } = Directory.GetCurrentDirectory();
        public string? Output { get; private init; }
        public string Command { get; private init; } = "dotnet pwsh ./build.ps1 bench";
        public TimeSpan DrainTimeout { get; private init; } = DefaultTimeout(DefaultCount);

        // At least 5 minutes, and room for 25 tasks/s (the slowest peer on a loaded machine) at large N.
        private static TimeSpan DefaultTimeout(int count) => TimeSpan.FromSeconds(Math.Max(300, count / 25));

        public static Options Parse(string[] args)
        {
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                    throw new ArgumentException($"Expected --name value pairs, got '{args[i]}'.");
                map[args[i][2..]] = args[++i];
            }
            string? Get(string name) => map.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v : null;
            int Int(string name, int fallback) => Get(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
            var count = Int("count", DefaultCount);
            var o = new Options
            {
                Count = count,
                Batch = Int("batch", 100),
                Warmup = Int("warmup", 100),
                PostgresUrl = Get("postgres"),
                MySqlUrl = Get("mysql"),
                ModulePath = Get("module"),
                GraphileDir = Get("graphile"),
                GraphileMissing = Get("graphile-missing"),
                RepoRoot = Get("repo") ?? Directory.GetCurrentDirectory(),
                Output = Get("output"),
                Command = Get("command") ?? "dotnet pwsh ./build.ps1 bench",
                DrainTimeout = Get("timeout") is null ? DefaultTimeout(count) : TimeSpan.FromSeconds(Int("timeout", 300)),
            };
            if (o.Count < 1 || o.Batch < 1 || o.Warmup < 0) throw new ArgumentException("--count and --batch must be at least 1, --warmup at least 0.");
            if (o.GraphileDir is { } g && !File.Exists(Path.Combine(g, Graphile.Driver)))
                throw new ArgumentException($"--graphile {g}: no {Graphile.Driver} there; build.ps1 bench copies bench/graphile/{Graphile.Driver} beside the graphile-worker it installs.");
            return o;
        }
    }

    /// <summary>One measured case. Rate is tasks per second over the measured part only.</summary>
    internal sealed record Result(string Backend, string Case, string Peer, int Count, TimeSpan Elapsed, bool Complete, string? Note = null)
    {
        /// <summary>Write-ahead log the server wrote during the case, per task (PostgreSQL only).</summary>
        public long? WalPerTask { get; init; }
        public double Rate => Count / Elapsed.TotalSeconds;
    }

    internal sealed record BackendFacts(string Name, string Version, IReadOnlyList<string> Settings);
}
