using PerfectQueue.Storage;

namespace PerfectQueue;

/// <summary>
/// One attempt of a task, as its history shows it (docs/history.md). Outcomes: Succeeded, Failed, Cancelled, Retried,
/// TimedOut, Released (stored with the write that ended the attempt), and Lost (never stored: an attempt that has no
/// row because its worker died, shown from the gap in the attempt numbers).
/// </summary>
public sealed record TaskAttempt
{
    public required string Key { get; init; }
    /// <summary>The attempt number as the task had it (a released attempt is not counted, so the next one has the same number).</summary>
    public required int Attempt { get; init; }
    /// <summary>When it was acquired (database clock); null for a Lost attempt.</summary>
    public DateTimeOffset? StartedAt { get; init; }
    /// <summary>When its write was applied (database clock); null for a Lost attempt.</summary>
    public DateTimeOffset? EndedAt { get; init; }
    public TimeSpan? Duration => EndedAt - StartedAt;
    public string? Host { get; init; }
    public string? WorkerSession { get; init; }
    /// <summary>thread, process, compiled, or client (a holder that is no worker: Receive-PQTask, .NET code).</summary>
    public string? Processor { get; init; }
    public required string Outcome { get; init; }
    public string? Message { get; init; }
    /// <summary>The handler's streams as lines tagged [output], [error], [warning], [information], [verbose]; at most 64 KB.</summary>
    public string? Output { get; init; }

    /// <summary>The outcome of an attempt that has no row.</summary>
    public const string Lost = "Lost";

    /// <summary>
    /// The stored rows in write order, and a Lost entry for every attempt number below the task's current one that no
    /// row has (its holder never wrote: it died, or its lease expired). The task's current attempt is not Lost while
    /// it runs; a task waiting again after an expired lease shows it Lost. A restart (attempts back to 0) starts a new
    /// run of numbers: a row whose number is below the previous row's, or equal to it after anything but a release,
    /// begins it. An earlier run's gaps between its rows are Lost; its trailing attempts without a row are not known.
    /// </summary>
    internal static IReadOnlyList<TaskAttempt> FromRows(TaskRow task, IReadOnlyList<AttemptRow> rows)
    {
        var list = new List<TaskAttempt>(rows.Count + 1);
        var running = task.FinishedAt is null && task.LeaseToken is not null && task.DueAt > task.Now;
        // A finish at acquire (cancel before start, attempts already spent) takes the acquisition off the count.
        var current = running ? task.Attempts - 1 : task.Attempts;
        var runStarts = new List<int> { 0 };
        for (var i = 1; i < rows.Count; i++)
            if (rows[i].Attempt < rows[i - 1].Attempt || (rows[i].Attempt == rows[i - 1].Attempt && rows[i - 1].Outcome != "Released"))
                runStarts.Add(i);
        for (var run = 0; run < runStarts.Count; run++)
        {
            var from = runStarts[run];
            var to = run + 1 < runStarts.Count ? runStarts[run + 1] : rows.Count;
            var isLast = run == runStarts.Count - 1;
            var seen = new HashSet<int>();
            for (var i = from; i < to; i++) seen.Add(rows[i].Attempt);
            var last = isLast ? current : rows.Count > 0 ? rows[to - 1].Attempt : 0;
            var next = 1;
            void LostUpTo(int below)
            {
                for (; next < below; next++)
                    if (!seen.Contains(next)) list.Add(new TaskAttempt { Key = task.Key, Attempt = next, Outcome = Lost });
            }
            for (var i = from; i < to; i++)
            {
                var r = rows[i];
                LostUpTo(Math.Min(r.Attempt, last + 1));
                if (r.Attempt >= next) next = r.Attempt + 1;
                list.Add(new TaskAttempt
                {
                    Key = r.TaskKey, Attempt = r.Attempt, StartedAt = TaskStates.Time(r.StartedAt), EndedAt = TaskStates.Time(r.EndedAt),
                    Host = r.Host, WorkerSession = r.Session, Processor = r.Processor, Outcome = r.Outcome, Message = r.Message, Output = r.Output,
                });
            }
            LostUpTo(last + 1);
        }
        return list;
    }
}
