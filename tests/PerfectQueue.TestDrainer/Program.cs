// A worker process for the multi-process tests: waits for a start signal, drains the queue with
// PollMulti + Finish, and prints "FINISHED <key>" for every finish that succeeded, so the test can
// prove every task finished exactly once across processes.
using PerfectQueue;

var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => p.i + 1 < args.Length ? args[p.i + 1] : "");
var config = new QueueConfig { Url = options["url"], Table = options["table"], AliveTime = TimeSpan.FromMinutes(5), CleanupInterval = TimeSpan.Zero };
var batch = int.Parse(options.GetValueOrDefault("batch", "10"), System.Globalization.CultureInfo.InvariantCulture);

using var queue = Queue.Open(config);
var finished = 0;
var live = new TaskFilter { Statuses = [TaskState.Waiting, TaskState.Running, TaskState.Scheduled, TaskState.CancelRequested], First = 1 };
queue.List(live); // warm up (JIT, connection) before the start signal, so all drainers start level

if (options.TryGetValue("ready-dir", out var readyDir))
{
    File.WriteAllText(Path.Combine(readyDir, $"ready-{Environment.ProcessId}"), "");
    while (!File.Exists(Path.Combine(readyDir, "go"))) Thread.Sleep(10);
}
while (true)
{
    var tasks = queue.PollMulti(batch);
    if (tasks.Count == 0)
    {
        if (queue.List(live).Count == 0) break;
        Thread.Sleep(5);
        continue;
    }
    // Stand-in for handler work: real handlers leave the write lock free while they run. Without it a
    // no-op drainer can hold SQLite's one write lock back to back and starve the others (see docs/backends-sqlite.md).
    Thread.Sleep(2);
    foreach (var task in tasks)
    {
        try
        {
            task.Finish();
            Console.Out.WriteLine($"FINISHED {task.Key}");
            finished++;
        }
        catch (PreemptedException e)
        {
            Console.Out.WriteLine($"PREEMPTED {task.Key} {e.Reason}");
        }
    }
}
Console.Out.WriteLine($"DONE {finished}");
return 0;
