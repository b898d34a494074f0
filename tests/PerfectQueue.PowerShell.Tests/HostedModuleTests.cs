using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Xunit;

namespace PerfectQueue.PowerShell.Tests;

/// <summary>One session state that imports the assembled module; each test opens runspaces from it.</summary>
public sealed class ModuleFixture : IDisposable
{
    public ModuleFixture()
    {
        ModulePath = Environment.GetEnvironmentVariable("PQ_MODULE_PATH") is { Length: > 0 } p
            ? p
            : Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../out/PerfectQueue"));
        Assert.True(File.Exists(Path.Combine(ModulePath, "PerfectQueue.psd1")), $"Build the module first (dotnet pwsh ./build.ps1 build): no {ModulePath}");
        State = InitialSessionState.CreateDefault2();
        State.ImportPSModule(Path.Combine(ModulePath, "PerfectQueue.psd1"));
        Folder = Directory.CreateTempSubdirectory("pq-hosted-").FullName;
    }

    public string ModulePath { get; }
    public InitialSessionState State { get; }
    public string Folder { get; }

    public string NewUrl() => "sqlite:///" + Path.Combine(Folder, $"q{Guid.NewGuid():N}.db");

    public void Dispose()
    {
        try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
    }
}

public sealed class HostedModuleTests(ModuleFixture module) : IClassFixture<ModuleFixture>
{
    private Runspace OpenRunspace()
    {
        var runspace = RunspaceFactory.CreateRunspace(module.State);
        runspace.Open();
        return runspace;
    }

    // Errors are copied out before the PowerShell object (and its streams) is disposed.
    private static Collection<PSObject> Run(Runspace runspace, string script, out List<ErrorRecord> errors)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = runspace;
        ps.AddScript(script);
        var output = ps.Invoke();
        errors = [.. ps.Streams.Error];
        return output;
    }

    [Fact]
    public void Each_runspace_keeps_its_own_default_queue()
    {
        using var first = OpenRunspace();
        using var second = OpenRunspace();
        var a = module.NewUrl();
        var b = module.NewUrl();
        Run(first, $"Connect-PQQueue '{a}'; Submit-PQTask only-in-a t", out var e1);
        Run(second, $"Connect-PQQueue '{b}'; Submit-PQTask only-in-b t", out var e2);
        Assert.Empty(e1);
        Assert.Empty(e2);
        Assert.Equal(["only-in-a"], Run(first, "(Get-PQTask).Key", out _).Select(o => o.ToString()).ToArray());
        Assert.Equal(["only-in-b"], Run(second, "(Get-PQTask).Key", out _).Select(o => o.ToString()).ToArray());
    }

    [Fact]
    public void Without_a_session_default_the_environment_url_is_used()
    {
        using var runspace = OpenRunspace();
        var url = module.NewUrl();
        Run(runspace, $"$env:PERFECTQUEUE_URL = '{url}'; Submit-PQTask from-env t; Remove-Item Env:PERFECTQUEUE_URL", out var errors);
        Assert.Empty(errors);
        var keys = Run(runspace, $"Get-PQTask -Queue ([PerfectQueue.Queue]::Open('{url}')) | ForEach-Object Key", out _);
        Assert.Equal(["from-env"], keys.Select(o => o.ToString()).ToArray());
    }

    [Fact]
    public void Stopping_a_wait_ends_it_without_an_error_record()
    {
        using var runspace = OpenRunspace();
        Run(runspace, $"Connect-PQQueue '{module.NewUrl()}'; Submit-PQTask never-done t", out _);
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = runspace;
        ps.AddScript("Wait-PQTask never-done");
        var clock = Stopwatch.StartNew();
        var running = ps.BeginInvoke();
        // Wait-PQTask reports progress after its first look, just before it sleeps: then it is in its wait loop.
        while (ps.Streams.Progress.Count == 0 && clock.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(10);
        Assert.NotEmpty(ps.Streams.Progress);
        Assert.False(running.IsCompleted);
        clock.Restart();
        ps.Stop();
        Assert.Throws<PipelineStoppedException>(() => ps.EndInvoke(running));
        Assert.Equal(PSInvocationState.Stopped, ps.InvocationStateInfo.State);
        Assert.Empty(ps.Streams.Error);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "Stop() should end the wait promptly");
    }

    [Fact]
    public void Engine_errors_become_records_with_stable_ids_and_categories()
    {
        using var runspace = OpenRunspace();
        Run(runspace, $"Connect-PQQueue '{module.NewUrl()}'; Submit-PQTask k t", out _);
        Run(runspace, "Submit-PQTask k t; Get-PQTask missing; Request-PQCancel missing2", out var errors);
        Assert.Equal(3, errors.Count);
        Assert.StartsWith("TaskAlreadyExists,", errors[0].FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ResourceExists, errors[0].CategoryInfo.Category);
        Assert.Equal("k", errors[0].TargetObject);
        Assert.StartsWith("TaskNotFound,", errors[1].FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ObjectNotFound, errors[1].CategoryInfo.Category);
        Assert.StartsWith("TaskNotFound,", errors[2].FullyQualifiedErrorId);
    }

    [Fact]
    public void A_bad_configuration_is_a_terminating_error_naming_the_key_and_the_file()
    {
        using var runspace = OpenRunspace();
        var file = Path.Combine(module.Folder, $"bad{Guid.NewGuid():N}.yml");
        File.WriteAllText(file, "production:\n  url: sqlite:///x.db\n  alive_tme: 30\n");
        // Terminating for the command: the statement after it in the same script still runs.
        var output = Run(runspace, $"Connect-PQQueue -ConfigPath '{file}' -Environment production; 'next statement'", out var errors);
        var e = Assert.Single(errors);
        Assert.StartsWith("InvalidConfiguration,", e.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, e.CategoryInfo.Category);
        Assert.Contains("alive_tme", e.Exception.Message);
        Assert.Contains(file, e.Exception.Message);
        Assert.Equal(["next statement"], output.Select(o => o.ToString()).ToArray());
        // ...and under -ErrorAction Stop it stops the script, catchable by type.
        Assert.Equal(["caught"], Run(runspace, $"try {{ Connect-PQQueue -ConfigPath '{file}' -Environment production -ErrorAction Stop; 'not reached' }} catch [PerfectQueue.ConfigException] {{ 'caught' }}", out _).Select(o => o.ToString()).ToArray());
    }

    [Fact]
    public void Durations_take_seconds()
    {
        using var runspace = OpenRunspace();
        var output = Run(runspace, $"Connect-PQQueue '{module.NewUrl()}'; Submit-PQTask k t -Delay 90; $t = Get-PQTask k; ($t.Timeout - $t.CreatedAt).TotalSeconds", out var errors);
        Assert.Empty(errors);
        Assert.InRange(Convert.ToDouble(output.Single().BaseObject), 89, 91);
    }
}
