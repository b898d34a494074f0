using System.Diagnostics;
using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Waits until tasks are finished, then writes them. A task still unfinished after -Timeout is a
/// WaitTimeout error; a key that does not exist is TaskNotFound. Ctrl+C stops the wait.
/// </summary>
[Cmdlet(VerbsLifecycle.Wait, "PQTask")]
[OutputType(typeof(PQTask))]
public sealed class WaitPQTaskCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[] Key { get; set; } = [];

    /// <summary>The longest to wait (a TimeSpan, or seconds). Default: no limit.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? Timeout { get; set; }

    /// <summary>How often to look (a TimeSpan, or seconds). Default: 0.5 s.</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    private readonly List<(string Key, Queue Queue)> _keys = [];

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var key in Key)
            if (!_keys.Contains((key, queue))) _keys.Add((key, queue)); // each task is written once
    }

    protected override void EndProcessing()
    {
        var clock = Stopwatch.StartNew();
        var pending = new List<(string Key, Queue Queue)>(_keys);
        var progress = new ProgressRecord(2, "Waiting for tasks", "starting");
        while (pending.Count > 0)
        {
            foreach (var group in pending.GroupBy(p => p.Queue).ToList())
            {
                var keys = group.Select(p => p.Key).ToList();
                RunItem(group.Key.Description, () =>
                {
                    var found = group.Key.ListAsync(new TaskFilter { Keys = keys }, StopToken).GetAwaiter().GetResult().ToDictionary(t => t.Key);
                    foreach (var key in keys)
                    {
                        if (!found.TryGetValue(key, out var info))
                        {
                            pending.Remove((key, group.Key));
                            WriteError(PQErrors.For(new NotFoundException($"No task has the key '{key}' in {group.Key.Description}.", key), key));
                        }
                        else if (info.Status == TaskState.Finished)
                        {
                            pending.Remove((key, group.Key));
                            WriteObject(new PQTask(info, group.Key));
                        }
                    }
                });
            }
            if (pending.Count == 0) break;
            if (Timeout is { } limit && clock.Elapsed >= limit)
            {
                foreach (var (key, _) in pending)
                    WriteError(PQErrors.For(new TimeoutException($"Task '{key}' did not finish within {limit}."), key));
                break;
            }
            progress.StatusDescription = $"{_keys.Count - pending.Count} of {_keys.Count} finished; waiting for {pending[0].Key}{(pending.Count > 1 ? $" and {pending.Count - 1} more" : "")}";
            progress.PercentComplete = _keys.Count == 0 ? 0 : 100 * (_keys.Count - pending.Count) / _keys.Count;
            WriteProgress(progress);
            try { Task.Delay(PollInterval, StopToken).GetAwaiter().GetResult(); }
            catch (OperationCanceledException) { throw new PipelineStoppedException(); }
        }
        progress.RecordType = ProgressRecordType.Completed;
        WriteProgress(progress);
    }
}
