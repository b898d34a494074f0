using System.Management.Automation;
using PerfectQueue.Schedules;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Registers a recurring schedule: every running worker fires it when due, each fire a task keyed
/// &lt;name&gt;@&lt;UTC fire time&gt; (docs/schedules.md). A taken name is a ScheduleAlreadyExists error (Set-PQSchedule, or -Force).
/// </summary>
[Cmdlet(VerbsLifecycle.Register, "PQSchedule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(PQSchedule))]
public sealed class RegisterPQScheduleCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    /// <summary>5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first).</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Cron { get; set; } = "";

    [Parameter(Mandatory = true, Position = 2, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskTypeCompleter))]
    public string Type { get; set; } = "";

    /// <summary>Each fire's task data: a hashtable, an object with properties, or JSON text of an object.</summary>
    [Parameter(Position = 3, ValueFromPipelineByPropertyName = true)]
    [NullIfBlank]
    public object? Data { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? User { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [NullIfBlank]
    public int? MaxRunning { get; set; }

    /// <summary>An IANA (Europe/Berlin) or Windows (W. Europe Standard Time) time zone id. Default: UTC.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? TimeZone { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    public ScheduleOverlap Overlap { get; set; } = ScheduleOverlap.Skip;

    [Parameter(ValueFromPipelineByPropertyName = true)]
    public ScheduleMissedRuns MissedRuns { get; set; } = ScheduleMissedRuns.RunOnce;

    /// <summary>Register it suspended: it fires nothing until Resume-PQSchedule.</summary>
    [Parameter]
    public SwitchParameter Suspended { get; set; }

    /// <summary>Replace a schedule of the same name (its counters and last fire stay).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        if (!ShouldProcess($"schedule '{Name}' ({Cron}{(string.IsNullOrEmpty(TimeZone) ? "" : " " + TimeZone)}, type {Type}) on {queue.Description}",
            Force ? "Register or replace" : "Register")) return;
        RunItem(Name, () =>
        {
            var schedule = queue.RegisterScheduleAsync(new ScheduleDefinition
            {
                Name = Name, Cron = Cron, Type = Type, Data = Data, User = User, MaxRunning = MaxRunning, TimeZone = TimeZone,
                Overlap = Overlap, MissedRuns = MissedRuns, Paused = Suspended,
            }, Force, StopToken).GetAwaiter().GetResult();
            WriteVerbose($"Schedule '{schedule.Name}' fires next at {schedule.NextFireAt.LocalDateTime} (key {ScheduleNames.FireKey(schedule.Name, schedule.NextFireAt)}).");
            if (PassThru) WriteObject(new PQSchedule(schedule, queue));
        });
    }
}
