using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// Reads a -HandlerPath script: it runs in a runspace of its own (never the caller's, so a restart can read it
/// again from any thread) and must return the route table. Only the handlers' text is kept; each processor
/// rebuilds its own ScriptBlocks from it.
/// </summary>
internal static class HandlerScript
{
    public static HandlerRoutes Load(string path, InitialSessionState state)
    {
        if (!File.Exists(path))
            throw new ConfigException($"No handler script at '{path}'. Correct -HandlerPath.", "handler_path");
        using var runspace = RunspaceFactory.CreateRunspace(state);
        runspace.Open();
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = runspace;
        // The paths are arguments of a fixed script, never part of its text: a folder named `a’; Remove-Item ...; ’`
        // (’ ends a PowerShell string too) or just `John’s handlers` must be a path and nothing else.
        ps.AddScript("param([string] $folder, [string] $script) Set-Location -LiteralPath $folder; . $script")
            .AddArgument(Path.GetDirectoryName(path)!).AddArgument(path);
        IReadOnlyList<PSObject> result;
        try { result = ps.Invoke(); }
        catch (RuntimeException e) { throw new ConfigException($"The handler script '{path}' failed: {e.Message}", "handler_path", e); }
        if (ps.HadErrors && ps.Streams.Error.Count > 0)
            throw new ConfigException($"The handler script '{path}' failed: {ps.Streams.Error[0]}", "handler_path");
        var table = result.Select(o => o?.BaseObject).OfType<IDictionary>().LastOrDefault()
            ?? throw new ConfigException($"The handler script '{path}' must return a table of routes: @{{ 'type' = {{ param($Task) ... }} }}.", "handler_path");
        try { return new HandlerRoutes(table); }
        catch (ArgumentException e) { throw new ConfigException($"{path}: {e.Message}", "handler_path", e); }
    }
}
