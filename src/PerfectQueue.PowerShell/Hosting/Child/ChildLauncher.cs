using System.Diagnostics;
using System.Management.Automation;

namespace PerfectQueue.PowerShell.Hosting.Child;

/// <summary>
/// Starts a child pwsh for a processor: the same pwsh the worker runs in (also under <c>dotnet pwsh</c>, where the
/// process is dotnet and pwsh is $PSHOME/pwsh.dll). Its command line names only this module and the pipe: the
/// handlers, the initialization script and anything else come over the pipe.
/// </summary>
internal static class ChildLauncher
{
    public const string ModuleVariable = "PERFECTQUEUE_CHILD_MODULE";
    public const string PipeVariable = "PERFECTQUEUE_CHILD_PIPE";
    private const string Command = $"Import-Module -Name $env:{ModuleVariable}; [PerfectQueue.PowerShell.Internal.ChildHost]::Run($env:{PipeVariable})";

    /// <summary>Throws the clear error (naming -ProcessorType Thread) when no pwsh can be found to start children.</summary>
    public static void Check() => FindPwsh();

    public static Process Start(string moduleManifest, string pipeName)
    {
        var (file, prefix) = FindPwsh();
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in prefix) info.ArgumentList.Add(a);
        foreach (var a in (string[])["-NoProfile", "-NonInteractive", "-NoLogo", "-Command", Command]) info.ArgumentList.Add(a);
        info.Environment[ModuleVariable] = moduleManifest;
        info.Environment[PipeVariable] = pipeName;
        return Process.Start(info) ?? throw new InvalidOperationException($"Could not start {file}.");
    }

    // The pwsh to run: this process when it is pwsh; $PSHOME/pwsh.dll under the dotnet host; else none.
    private static (string File, string[] Prefix) FindPwsh()
    {
        var self = Environment.ProcessPath;
        var name = Path.GetFileNameWithoutExtension(self ?? "");
        if (self is not null && string.Equals(name, "pwsh", StringComparison.OrdinalIgnoreCase)) return (self, []);
        var psHome = Path.GetDirectoryName(typeof(PSObject).Assembly.Location) ?? "";
        var dll = Path.Combine(psHome, "pwsh.dll");
        if (self is not null && string.Equals(name, "dotnet", StringComparison.OrdinalIgnoreCase) && File.Exists(dll)) return (self, [dll]);
        var exe = Path.Combine(psHome, OperatingSystem.IsWindows() ? "pwsh.exe" : "pwsh");
        if (File.Exists(exe) && IsExecutable(exe)) return (exe, []);
        throw new ConfigException(
            $"processor_type 'process' needs pwsh to start child processes, and none was found (this process is '{self}', PowerShell's folder '{psHome}'). " +
            "Run the worker in pwsh, or use -ProcessorType Thread (runspaces in this process).", "processor_type");
    }

    private static bool IsExecutable(string path) =>
        OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0;
}
