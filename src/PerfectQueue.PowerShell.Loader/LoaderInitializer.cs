using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace PerfectQueue.PowerShell.Loader;

/// <summary>
/// Installs the resolver that sends the engine (PerfectQueue.dll, in lib/) to <see cref="EngineLoadContext"/>.
/// </summary>
/// <remarks>
/// This assembly is the manifest's first nested module, so it is imported before PerfectQueue.PowerShell.dll.
/// It must be: PowerShell loads the cmdlet types by reflection while importing, and their fields and
/// parameters name engine types, which the default context cannot find beside the cmdlet assembly. No code
/// of the cmdlet assembly runs before that, so the hook cannot live there. It stays for the life of the
/// process, like the engine (Remove-Module cannot unload assemblies).
/// </remarks>
public sealed class LoaderInitializer : IModuleAssemblyInitializer
{
    private static int s_installed;

    public void OnImport()
    {
        if (Interlocked.Exchange(ref s_installed, 1) == 0)
            AssemblyLoadContext.Default.Resolving += ResolveEngine;
    }

    private static Assembly? ResolveEngine(AssemblyLoadContext context, AssemblyName name) =>
        string.Equals(name.Name, EngineLoadContext.EngineAssemblyName, StringComparison.OrdinalIgnoreCase)
            ? EngineLoadContext.Instance.LoadEngine()
            : null;
}
