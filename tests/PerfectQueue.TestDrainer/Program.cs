// A worker process for the multi-process tests: opens --threads queue clients (each with its own
// connections), waits for a common start signal, drains the queue with PollMulti + Finish, and prints
// "FINISHED <key>" for every finish that succeeded, so the test can prove every task finished exactly once.
using System.Globalization;
using PerfectQueue;

var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => p.i + 1 < args.Length ? args[p.i + 1] : "");
int Option(string name, int fallback) => options.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
var batch = Option("batch", 10);
var threads = Option("threads", 1);
var workMs = Option("work-ms", 2);

QueueConfig Config() => options.TryGetValue("provider", out var provider)
    ? new QueueConfig { ConnectionString = options["url"], Provider = provider, Table = options["table"], AliveTime = TimeSpan.FromMinutes(5), CleanupInterval = TimeSpan.Zero }
    : new QueueConfig { Url = options["url"], Table = options["table"], AliveTime = TimeSpan.FromMinutes(5), CleanupInterval = TimeSpan.Zero };

var live = new TaskFilter { Statuses = [TaskState.Waiting, TaskState.Running, TaskState.Scheduled, TaskState.CancelRequested], First = 1 };
var queues = Enumerable.Range(0, threads).Select(_ => Queue.Open(Config())).ToList();
foreach (var q in queues) q.List(live); // warm up (JIT, connections) before the start signal, so all drainers start level

if (options.TryGetValue("ready-dir", out var readyDir))
{
    File.WriteAllText(Path.Combine(readyDir, $"ready-{Environment.ProcessId}"), "");
    while (!File.Exists(Path.Combine(readyDir, "go"))) Thread.Sleep(10);
}

var output = new object();
var finished = 0;
var workers = queues.Select(queue => new Thread(() =>
{
    while (true)
    {
        var tasks = queue.PollMulti(batch);
        if (tasks.Count == 0)
        {
            if (queue.List(live).Count == 0) break;
            Thread.Sleep(5);
            continue;
        }
        // Stand-in for handler work: real handlers leave the database alone while they run. Without it a
        // no-op drainer can hold SQLite's one write lock back to back and starve the others (docs/backends-sqlite.md).
        if (workMs > 0) Thread.Sleep(workMs);
        foreach (var task in tasks)
        {
            string line;
            try
            {
                task.Finish();
                line = $"FINISHED {task.Key}";
                Interlocked.Increment(ref finished);
            }
            catch (PreemptedException e)
            {
                line = $"PREEMPTED {task.Key} {e.Reason}";
            }
            lock (output) Console.Out.WriteLine(line);
        }
    }
})).ToList();
workers.ForEach(w => w.Start());
workers.ForEach(w => w.Join());
foreach (var q in queues) q.Dispose();
Console.Out.WriteLine($"DONE {finished}");
return 0;
