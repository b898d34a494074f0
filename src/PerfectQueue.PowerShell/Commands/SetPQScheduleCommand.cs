using System.Management.Automation;
using PerfectQueue.Schedules;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Changes registered schedules; what is not given stays. A new -Cron or -TimeZone sets the next fire from now.</summary>
[Cmdlet(VerbsCommon.Set, "PQSchedule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(PQSchedule))]
public sealed class SetPQScheduleCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ScheduleNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cron { get; set; }

    /// <summary>An IANA or Windows time zone id; 'UTC' for UTC.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? TimeZone { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskTypeCompleter))]
    public string? Type { get; set; }

    /// <summary>Replaces each fire's data; an empty hashtable clears it.</summary>
    [Parameter]
    public object? Data { get; set; }

    /// <summary>The user of each fire's task; an empty string removes it.</summary>
    [Parameter]
    public string? User { get; set; }

    /// <summary>The max_running of each fire's task; 0 removes the limit.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? MaxRunning { get; set; }

    [Parameter]
    public ScheduleOverlap? Overlap { get; set; }

    [Parameter]
    public ScheduleMissedRuns? MissedRuns { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        var change = new ScheduleChange
        {
            Cron = Cron, TimeZone = TimeZone, Type = Type, SetData = MyInvocation.BoundParameters.ContainsKey(nameof(Data)), Data = Data,
            User = User, MaxRunning = MaxRunning, Overlap = Overlap, MissedRuns = MissedRuns,
        };
        if (!ShouldProcess($"schedule '{Name}' on {queue.Description}", "Change")) return;
        RunItem(Name, () =>
        {
            var schedule = queue.SetScheduleAsync(Name, change, StopToken).GetAwaiter().GetResult();
            if (PassThru) WriteObject(new PQSchedule(schedule, queue));
        });
    }
}
