using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Tells whether a task with the key exists (the original's exists?); finished tasks exist until their retention ends.</summary>
[Cmdlet(VerbsDiagnostic.Test, "PQTask")]
[OutputType(typeof(bool))]
public sealed class TestPQTaskCommand : PQCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TaskKeyCompleter))]
    public string[] Key { get; set; } = [];

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        foreach (var key in Key)
            RunItem(key, () => WriteObject(queue[key].ExistsAsync(StopToken).GetAwaiter().GetResult()));
    }
}
