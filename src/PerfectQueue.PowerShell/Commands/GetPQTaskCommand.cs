using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Lists tasks (the original's list and queue[key]), oldest first; with -Newest, the newest first.</summary>
[Cmdlet(VerbsCommon.Get, "PQTask")]
[OutputType(typeof(PQTask))]
public sealed class GetPQTaskCommand : PQCmdlet
{
    /// <summary>
    /// Only these keys; a key that does not exist is a TaskNotFound error. A key with wildcards (*, ?, [a-z]; a
    /// backtick escapes one) lists the tasks it matches, case-sensitively, and matching none is no error.
    /// </summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[]? Key { get; set; }

    [Parameter]
    public TaskState[]? Status { get; set; }

    [Parameter]
    [ArgumentCompleter(typeof(TaskTypeCompleter))]
    public string[]? Type { get; set; }

    [Parameter]
    [ArgumentCompleter(typeof(TaskUserCompleter))]
    public string[]? User { get; set; }

    /// <summary>Only finished tasks with one of these outcomes.</summary>
    [Parameter]
    public TaskOutcome[]? Outcome { get; set; }

    /// <summary>At most this many tasks, the oldest.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? First { get; set; }

    /// <summary>The this many most recently created tasks, newest first.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? Newest { get; set; }

    // A wildcard, or a key whose wildcard characters are escaped (a`[1`]b is the key a[1]b, as in -Path): both are
    // matched as patterns. Any other key, backticks included, is exact.
    private static bool IsPattern(string key) =>
        WildcardPattern.ContainsWildcardCharacters(key) || key.Contains("`*", StringComparison.Ordinal) || key.Contains("`?", StringComparison.Ordinal)
        || key.Contains("`[", StringComparison.Ordinal) || key.Contains("`]", StringComparison.Ordinal);

    protected override void BeginProcessing()
    {
        if (First is not null && Newest is not null)
            ThrowTerminatingError(PQErrors.InvalidArgumentError(new ArgumentException(
                "Give -First (the oldest tasks) or -Newest (the most recently created), not both."), Newest));
    }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        RunItem(queue.Description, () =>
        {
            var exact = Key?.Where(k => !IsPattern(k)).ToArray();
            var patterns = Key?.Where(IsPattern).ToArray();
            var filter = new TaskFilter
            {
                Keys = exact is { Length: > 0 } ? exact : null, KeyPatterns = patterns is { Length: > 0 } ? patterns : null,
                Statuses = Status, Types = Type, Users = User, First = First, Outcomes = Outcome, Newest = Newest,
            };
            var found = queue.ListAsync(filter, StopToken).GetAwaiter().GetResult();
            foreach (var info in found)
            {
                // One unreadable row is its own error; the rest of the listing still comes.
                if (info.DataError is { } why) { WriteError(PQErrors.DataUnreadable(info.Key, why)); continue; }
                PQTask task;
                try { task = new PQTask(info, queue); }
                catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
                {
                    WriteError(PQErrors.DataUnreadable(info.Key, $"its data cannot be converted for PowerShell ({e.Message}).", e));
                    continue;
                }
                WriteObject(task);
            }
            if (exact is not { Length: > 0 } || First is not null || Newest is not null || Status is not null || Type is not null || User is not null || Outcome is not null) return;
            var seen = found.Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
            foreach (var missing in exact.Where(k => !seen.Contains(k)))
                WriteError(PQErrors.For(new NotFoundException($"No task has the key '{missing}' in {queue.Description}.", missing), missing));
        });
    }
}
