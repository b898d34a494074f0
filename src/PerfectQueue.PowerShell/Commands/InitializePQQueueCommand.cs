using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Creates the queue's table and indexes (the original's init); idempotent. -Force drops the table and every
/// task in it first, and so asks for confirmation (ConfirmImpact High). Creating alone never prompts, but
/// honours -WhatIf and an explicit -Confirm.
/// </summary>
[Cmdlet(VerbsData.Initialize, "PQQueue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(Queue))]
public sealed class InitializePQQueueCommand : PQCmdlet
{
    /// <summary>Drop the table, with every task in it, and create it anew.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var queue = CurrentQueue();
        if (Force)
        {
            if (!ShouldProcess(queue.Description, "Drop the queue table with every task in it, and create it anew")) return;
        }
        else if (MyInvocation.BoundParameters.ContainsKey("WhatIf") || MyInvocation.BoundParameters.ContainsKey("Confirm"))
        {
            if (!ShouldProcess(queue.Description, "Create the queue table and indexes if missing")) return;
        }
        RunItem(queue.Description, () =>
        {
            queue.InitializeAsync(Force, StopToken).GetAwaiter().GetResult();
            WriteVerbose($"{queue.Description} is ready.");
            if (PassThru) WriteObject(queue);
        });
    }
}
