namespace PerfectQueue.Workers;

/// <summary>How a task's run ended: the worker's counters, its log's outcome and its telemetry.</summary>
internal enum RunOutcome { Succeeded, Retried, Failed, Cancelled, Released, Lost, NotRecorded }

/// <summary>A run's outcome and the text the log says about it.</summary>
internal readonly record struct Concluded(RunOutcome Outcome, string Text);

/// <summary>What a worker did, counted as it goes (any thread), for its summary and its log.</summary>
internal sealed class WorkerCounters
{
    public int Processed, Succeeded, Retried, Failed, Cancelled, Released, Lost, TimedOut, Killed, ProcessorRestarts;

    public Concluded Count(RunOutcome outcome, string text)
    {
        switch (outcome)
        {
            case RunOutcome.Succeeded: Interlocked.Increment(ref Succeeded); break;
            case RunOutcome.Retried: Interlocked.Increment(ref Retried); break;
            case RunOutcome.Failed: Interlocked.Increment(ref Failed); break;
            case RunOutcome.Cancelled: Interlocked.Increment(ref Cancelled); break;
            case RunOutcome.Released: Interlocked.Increment(ref Released); break;
            case RunOutcome.Lost: Interlocked.Increment(ref Lost); break;
        }
        return new Concluded(outcome, text);
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

    public async Task<Concluded> ConcludeAsync(RunningTask run, Exception? failure, string? result)
    {
        var task = run.Task;
        var c = counters;
        // The handler's own write first: it was applied under this holder's lease, so the task was this holder's
        // then. A heartbeat in flight meanwhile finds the row finished by that very write and reports it lost.
        if (task.IsCompleted) return task.FinishedAs switch
        {
            TaskOutcome.Succeeded => c.Count(RunOutcome.Succeeded, "finished by the handler"),
            TaskOutcome.Cancelled => c.Count(RunOutcome.Cancelled, "cancelled by the handler"),
            TaskOutcome.Failed => c.Count(RunOutcome.Failed, "failed by the handler"),
            _ => task.Completion == "retried" ? c.Count(RunOutcome.Retried, "retried by the handler") : c.Count(RunOutcome.Released, "released by the handler"),
        };
        if (task.LostBecause is { } lost) return c.Count(RunOutcome.Lost, $"lost ({lost.Reason}); nothing written");
        if (task.IsCancellationRequested)
        {
            await task.FinishAsync(TaskOutcome.Cancelled, failure is null || run.StoppedBy == HandlerStop.CancelRequested ? "cancelled on request" : $"cancelled on request ({Message(failure)})").ConfigureAwait(false);
            return c.Count(RunOutcome.Cancelled, "cancelled on request");
        }
        if (failure is null)
        {
            await task.FinishAsync(result).ConfigureAwait(false);
            return c.Count(RunOutcome.Succeeded, "succeeded");
        }
        switch (run.StoppedBy)
        {
            case HandlerStop.TimedOut:
                Interlocked.Increment(ref c.TimedOut);
                var text = $"timed out after {Seconds(run.Timeout!.Value)}";
                task.RetriedAs = "TimedOut";
                return await task.RetryAsync(text).ConfigureAwait(false)
                    ? c.Count(RunOutcome.Retried, $"retried: {text}")
                    : c.Count(RunOutcome.Failed, $"failed after {task.Attempt} attempt(s): {text}");
            case HandlerStop.Shutdown when failure is OperationCanceledException:
                // Released only when the worker's stop stopped this handler. A handler's own OperationCanceledException
                // (an HTTP timeout's TaskCanceledException) is a failure like any other: released, it would be due
                // again at once and uncounted, a loop.
                await task.ReleaseAsync().ConfigureAwait(false);
                return c.Count(RunOutcome.Released, "released (worker stopping)");
        }
        var delay = failure is NoHandlerException
            ? (queue.RetryPolicy.Wait > UnroutedRetryFloor ? queue.RetryPolicy.Wait : UnroutedRetryFloor)
            : (TimeSpan?)null;
        return await task.RetryAsync(Message(failure), delay).ConfigureAwait(false)
            ? c.Count(RunOutcome.Retried, $"retried: {Message(failure)}")
            : c.Count(RunOutcome.Failed, $"failed after {task.Attempt} attempt(s): {Message(failure)}");
    }

    public static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.###} s";

    private static string Message(Exception e) => e is AggregateException { InnerException: { } inner } ? inner.Message : e.Message;
}
