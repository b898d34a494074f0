using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Runs finished tasks again under their keys: each becomes due (now, at -RunAt or after -Delay) as a new first
/// attempt, with its type, user and data. A task that is not finished is refused (TaskNotFinished), per key.
/// </summary>
[Cmdlet(VerbsLifecycle.Restart, "PQTask", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = NowSet)]
[OutputType(typeof(PQTask))]
public sealed class RestartPQTaskCommand : PQCmdlet
{
    private const string NowSet = "Now";
    private const string RunAtSet = "RunAt";
    private const string DelaySet = "Delay";

    /// <summary>Exact keys (no wildcards: a restart names the tasks it changes).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[] Key { get; set; } = [];

    /// <summary>Run no earlier than this time (local time unless it says otherwise).</summary>
    [Parameter(Mandatory = true, ParameterSetName = RunAtSet)]
    public DateTime RunAt { get; set; }

    /// <summary>Run no earlier than this long from now (a TimeSpan, or seconds).</summary>
    [Parameter(Mandatory = true, ParameterSetName = DelaySet)]
    [DurationTransformation]
    public TimeSpan Delay { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void BeginProcessing()
    {
        if (ParameterSetName == DelaySet && Delay < TimeSpan.Zero)
            ThrowTerminatingError(PQErrors.InvalidArgumentError(new ArgumentException(
                $"-Delay must not be negative (got {Delay}). Give how long from now, such as 300 or '00:05:00', or leave it out to run the task now."), Delay));
    }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        DateTimeOffset? runAt = ParameterSetName == RunAtSet
            ? new DateTimeOffset(RunAt.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(RunAt, DateTimeKind.Local) : RunAt)
            : null;
        TimeSpan? delay = ParameterSetName == DelaySet ? Delay : null;
        var when = runAt is { } at ? $" at {at.LocalDateTime:yyyy-MM-dd HH:mm:ss}" : delay is { } d ? $" after {d}" : "";
        foreach (var key in Key)
        {
            if (!ShouldProcess($"task '{key}' on {queue.Description}", $"Restart (run again{when}, attempts from 0)")) continue;
            RunItem(key, () =>
            {
                queue.RestartAsync(key, runAt, delay, StopToken).GetAwaiter().GetResult();
                WriteVerbose($"Task '{key}' is due again{(when.Length == 0 ? " now" : when)}, as a new first attempt.");
                if (PassThru) WriteObject(new PQTask(queue[key].GetInfoAsync(StopToken).GetAwaiter().GetResult(), queue));
            });
        }
    }
}
