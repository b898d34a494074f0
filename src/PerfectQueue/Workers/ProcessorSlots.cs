using System.Collections.Concurrent;

namespace PerfectQueue.Workers;

/// <summary>One of a worker's processors: its place (for the factory and the log), what fills it now, and how many tasks that ran.</summary>
internal sealed class ProcessorSlot(int index, ITaskProcessor processor)
{
    public int Index { get; } = index;
    /// <summary>Null while it is being replaced, or after a replacement gave up.</summary>
    public ITaskProcessor? Processor { get; set; } = processor;
    public int TasksRun { get; set; }
    public string Name => $"processor {Index + 1}";
}

/// <summary>
/// A worker's processors, one per slot, each made by the factory. A processor that cannot go on (it says so through
/// <see cref="ITaskProcessor.IsUsable"/>, its handler had to be abandoned, or it ran MaxTasksPerProcessor tasks) is
/// disposed and its slot filled by a new one; new ones that keep failing to start, with backoff between tries, end
/// the worker with <see cref="Fatal"/>.
/// </summary>
internal sealed class ProcessorSlots(Func<int, ITaskProcessor> create, WorkerOptions options, WorkerCounters counters, Action<string> log)
{
    /// <summary>Tries to start a new processor for a slot before the worker gives up (waits 1, 2, 4, 8 s between them).</summary>
    public const int StartTries = 5;

    private readonly List<ProcessorSlot> _all = [];
    private readonly ConcurrentStack<ProcessorSlot> _idle = new();

    /// <summary>The first wait between tries to start a replacement; each next one doubles.</summary>
    public TimeSpan StartBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Set when a slot could not be filled again: the worker stops, and throws it.</summary>
    public Exception? Fatal { get; private set; }

    /// <summary>Completed when <see cref="Fatal"/> is set.</summary>
    public CancellationTokenSource Failed { get; } = new();

    public int IdleCount => _idle.Count;

    /// <summary>Makes every processor; one that cannot start ends the run here (the ones made are disposed).</summary>
    public async Task StartAsync()
    {
        try
        {
            for (var i = 0; i < options.Processors; i++) _all.Add(new ProcessorSlot(i, create(i)));
        }
        catch
        {
            foreach (var s in _all) await DisposeQuietlyAsync(s.Processor!).ConfigureAwait(false);
            _all.Clear();
            throw;
        }
        for (var i = _all.Count - 1; i >= 0; i--) _idle.Push(_all[i]);
    }

    public bool TryTake(out ProcessorSlot slot) => _idle.TryPop(out slot!);

    /// <summary>
    /// Gives a slot back after its task ended. <paramref name="abandoned"/>: its handler did not stop, so its processor
    /// is left to it and disposed apart. A processor that cannot go on is replaced first (not when the worker stops).
    /// </summary>
    public async Task ReturnAsync(ProcessorSlot slot, bool abandoned, Exception? failure, CancellationToken stopping)
    {
        var processor = slot.Processor!;
        slot.TasksRun++;
        string? why = abandoned ? "its handler did not stop and was abandoned"
            : !processor.IsUsable ? (failure is ProcessorFailedException f ? f.Message : "it cannot run another task")
            : options.MaxTasksPerProcessor is { } max && slot.TasksRun >= max ? $"recycled after {slot.TasksRun} task(s) (MaxTasksPerProcessor)"
            : null;
        if (why is null)
        {
            _idle.Push(slot);
            return;
        }
        slot.Processor = null;
        // An abandoned handler may never return: its processor is disposed on the side, never awaited.
        if (abandoned) _ = Task.Run(() => DisposeQuietlyAsync(processor));
        else await DisposeQuietlyAsync(processor).ConfigureAwait(false);
        if (stopping.IsCancellationRequested || Fatal is not null)
        {
            log($"{slot.Name} ended ({why})");
            return;
        }
        log($"{slot.Name} is replaced: {why}");
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                // Made without the ending task's context: a new processor's threads (a runspace's, a child's pipe
                // readers) would otherwise keep that task's run span as their current activity for their whole life.
                Task<ITaskProcessor> creating;
                using (ExecutionContext.SuppressFlow()) creating = Task.Run(() => create(slot.Index));
                slot.Processor = await creating.ConfigureAwait(false);
                slot.TasksRun = 0;
                Interlocked.Increment(ref counters.ProcessorRestarts);
                _idle.Push(slot);
                return;
            }
            catch (Exception e)
            {
                if (attempt >= StartTries)
                {
                    Fatal = new InvalidOperationException($"{slot.Name} could not be started again ({attempt} tries), so the worker stops: {e.Message}", e);
                    log(Fatal.Message);
                    Failed.Cancel();
                    return;
                }
                var wait = StartBackoff * (1 << (attempt - 1));
                log($"{slot.Name} could not be started ({attempt} of {StartTries} tries), trying again in {wait.TotalSeconds:0.###}s: {e.Message}");
                try { await Task.Delay(wait, stopping).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>Disposes every processor still in a slot (none runs a handler by then).</summary>
    public async Task DisposeAsync()
    {
        foreach (var s in _all)
            if (s.Processor is { } p) await DisposeQuietlyAsync(p).ConfigureAwait(false);
    }

    private async Task DisposeQuietlyAsync(ITaskProcessor processor)
    {
        try { await processor.DisposeAsync().ConfigureAwait(false); }
        catch (Exception e) { log($"a processor could not be disposed cleanly: {e.Message}"); }
    }
}
