using System.Runtime.InteropServices;

namespace PerfectQueue.PowerShell.Hosting.Child;

/// <summary>Signals for a child process (Unix), and an exit status said in words for the log and the task's message.</summary>
internal static class ChildSignals
{
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    // DllImport, not LibraryImport: two ints need no marshalling code, and the project allows no unsafe blocks.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when it could not (it is gone).</summary>
    public static bool Send(int pid, int signal) => !OperatingSystem.IsWindows() && Kill(pid, signal) == 0;

    /// <summary>"exited with code 3", "killed by signal 9 (SIGKILL), as an out-of-memory kill does; exit code 137".</summary>
    public static string DescribeExit(int exitCode)
    {
        // .NET reports a child killed by signal N as exit code 128 + N on Unix (as shells do).
        if (!OperatingSystem.IsWindows() && exitCode is > 128 and < 128 + 65)
        {
            var signal = exitCode - 128;
            var why = signal == SIGKILL ? ", as an out-of-memory kill does" : "";
            return $"killed by signal {signal} ({Name(signal)}){why}; exit code {exitCode}";
        }
        return $"exited with code {exitCode}";
    }

    public static string Name(int signal) => signal switch
    {
        1 => "SIGHUP", 2 => "SIGINT", 3 => "SIGQUIT", 4 => "SIGILL", 6 => "SIGABRT", 7 => "SIGBUS", 8 => "SIGFPE",
        9 => "SIGKILL", 11 => "SIGSEGV", 13 => "SIGPIPE", 14 => "SIGALRM", 15 => "SIGTERM",
        _ => $"signal {signal}",
    };
}
