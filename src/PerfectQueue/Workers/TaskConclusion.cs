namespace PerfectQueue.Workers;

/// <summary>What a worker did, counted as it goes (any thread), for its summary and its log.</summary>
internal sealed class WorkerCounters
{
    public int Processed, Succeeded, Retried, Failed, Cancelled, Released, Lost, TimedOut, Killed, ProcessorRestarts;

    public static string Count(ref int counter, string outcome)
    {
        Interlocked.Increment(ref counter);
        return outcome;
    }
}

/// <summary>
/// What a handler's end means, once, for every processor type:
/// <list type="bullet">
/// <item>the handler finished, retried or released it itself: left as it did;</item>
/// <item>the task was lost (re-acquired elsewhere, force-finished, its lease unrenewed): nothing is written to it;</item>
/// <item>cancel was asked: Cancelled;</item>
/// <item>returned normally: Succeeded;</item>
/// <item>ran past its timeout: retried "timed out after N s" (Failed once max_attempts is spent);</item>
/// <item>stopped by the worker's own stop: released, the attempt not counted;</item>
/// <item>threw (or its processor crashed or froze): retried with the error as message (Failed at max_attempts).</item>
/// </list>
/// </summary>
internal sealed class TaskConclusion(Queue queue, WorkerCounters counters)
{
    /// <summary>A no-route task waits at least this long, whatever retry_wait is (0 would be a busy loop).</summary>
    public static readonly TimeSpan UnroutedRetryFloor = TimeSpan.FromSeconds(60);

    public async Task<string> ConcludeAsync(RunningTask run, Exception? failure, string? result)
    {
        var task = run.Task;
        var c = counters;
        // The handler's own write first: it was applied under this holder's lease, so the task was this holder's
        // then. A heartbeat in flight meanwhile finds the row finished by that very write and reports it lost.
        if (task.IsCompleted) return task.FinishedAs switch
        {
            TaskOutcome.Succeeded => WorkerCounters.Count(ref c.Succeeded, "finished by the handler"),
            TaskOutcome.Cancelled => WorkerCounters.Count(ref c.Cancelled, "cancelled by the handler"),
            TaskOutcome.Failed => WorkerCounters.Count(ref c.Failed, "failed by the handler"),
            _ => task.Completion == "retried" ? WorkerCounters.Count(ref c.Retried, "retried by the handler") : WorkerCounters.Count(ref c.Released, "released by the handler"),
        };
        if (task.LostBecause is { } lost) return WorkerCounters.Count(ref c.Lost, $"lost ({lost.Reason}); nothing written");
        if (task.IsCancellationRequested)
        {
            await task.FinishAsync(TaskOutcome.Cancelled, failure is null || run.StoppedBy == HandlerStop.CancelRequested ? "cancelled on request" : $"cancelled on request ({Message(failure)})").ConfigureAwait(false);
            return WorkerCounters.Count(ref c.Cancelled, "cancelled on request");
        }
        if (failure is null)
        {
            await task.FinishAsync(result).ConfigureAwait(false);
            return WorkerCounters.Count(ref c.Succeeded, "succeeded");
        }
        switch (run.StoppedBy)
        {
            case HandlerStop.TimedOut:
                Interlocked.Increment(ref c.TimedOut);
                var text = $"timed out after {Seconds(run.Timeout!.Value)}";
                task.RetriedAs = "TimedOut";
                return await task.RetryAsync(text).ConfigureAwait(false)
                    ? WorkerCounters.Count(ref c.Retried, $"retried: {text}")
                    : WorkerCounters.Count(ref c.Failed, $"failed after {task.Attempt} attempt(s): {text}");
            case HandlerStop.Shutdown when failure is OperationCanceledException:
                // Released only when the worker's stop stopped this handler. A handler's own OperationCanceledException
                // (an HTTP timeout's TaskCanceledException) is a failure like any other: released, it would be due
                // again at once and uncounted, a loop.
                await task.ReleaseAsync().ConfigureAwait(false);
                return WorkerCounters.Count(ref c.Released, "released (worker stopping)");
        }
        var delay = failure is NoHandlerException
            ? (queue.RetryPolicy.Wait > UnroutedRetryFloor ? queue.RetryPolicy.Wait : UnroutedRetryFloor)
            : (TimeSpan?)null;
        return await task.RetryAsync(Message(failure), delay).ConfigureAwait(false)
            ? WorkerCounters.Count(ref c.Retried, $"retried: {Message(failure)}")
            : WorkerCounters.Count(ref c.Failed, $"failed after {task.Attempt} attempt(s): {Message(failure)}");
    }

    public static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.###} s";

    private static string Message(Exception e) => e is AggregateException { InnerException: { } inner } ? inner.Message : e.Message;
}
