using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Xunit;

namespace PerfectQueue.PowerShell.Tests;

/// <summary>processor_type: process where there is no pwsh to start (the module hosted in another .NET program, as here).</summary>
public sealed class HostedProcessProcessorTests(ModuleFixture module) : IClassFixture<ModuleFixture>
{
    [Fact]
    public void A_process_worker_without_pwsh_fails_at_start_naming_ProcessorType_Thread()
    {
        using var runspace = RunspaceFactory.CreateRunspace(module.State);
        runspace.Open();
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = runspace;
        ps.AddScript($"Connect-PQQueue '{module.NewUrl()}'; Submit-PQTask k t; Start-PQWorker -ProcessorType Process -UntilEmpty -Handler @{{ t = {{ 'x' }} }}; (Get-PQTask k).Status");
        var output = ps.Invoke();
        var error = Assert.Single(ps.Streams.Error);
        Assert.Contains("needs pwsh to start child processes", error.ToString());
        Assert.Contains("-ProcessorType Thread", error.ToString());
        Assert.Equal("Waiting", output.Last().ToString()); // nothing was acquired
    }
}
