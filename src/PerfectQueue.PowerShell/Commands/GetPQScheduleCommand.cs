using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Gets schedules: next and last fire, the last fire's task and outcome, skips, missed runs, paused.</summary>
[Cmdlet(VerbsCommon.Get, "PQSchedule")]
[OutputType(typeof(PQSchedule))]
public sealed class GetPQScheduleCommand : PQCmdlet
{
    /// <summary>Names or wildcard patterns; none: every schedule.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ScheduleNameCompleter))]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        RunItem(Name, () =>
        {
            var all = queue.ListSchedulesAsync(StopToken).GetAwaiter().GetResult();
            if (Name is null or { Length: 0 })
            {
                foreach (var s in all) WriteObject(new PQSchedule(s, queue));
                return;
            }
            var written = new HashSet<string>(StringComparer.Ordinal);
            foreach (var name in Name)
            {
                var pattern = WildcardPattern.Get(name, WildcardOptions.None);
                var matches = all.Where(s => pattern.IsMatch(s.Name)).ToList();
                if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
                    WriteError(PQErrors.For(new Schedules.ScheduleNotFoundException(name), name, queue.Description));
                foreach (var s in matches)
                    if (written.Add(s.Name)) WriteObject(new PQSchedule(s, queue));
            }
        });
    }
}
