using System.Management.Automation;
using System.Reflection;
using PerfectQueue.PowerShell.Loader;

namespace PerfectQueue.PowerShell;

/// <summary>
/// Runs on Import-Module: loads the engine into <see cref="EngineLoadContext"/>, makes its public types
/// nameable from PowerShell, and lets the engine understand PowerShell's values.
/// </summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer
{
    private static readonly Lock s_gate = new();
    private static bool s_initialized;

    /// <inheritdoc />
    public void OnImport()
    {
        lock (s_gate)
        {
            if (s_initialized) return; // a second runspace's import finds everything in place
            // Load the engine now, not on first cmdlet use, so scripts can use its types right after Import-Module.
            Assembly engine = EngineLoadContext.Instance.LoadEngine();
            RegisterDataAdapter();
            AddTypeAccelerators(engine);
            s_initialized = true;
        }
    }

    // A separate method, so the engine type it names is resolved only once the engine is loaded.
    private static void RegisterDataAdapter() => TaskData.ValueAdapter = PowerShellData.Adapt;

    // PowerShell's type resolution ([PerfectQueue.Queue], -as [type], New-Object) deliberately looks
    // only at assemblies of the default context and of Assembly.LoadFile contexts, never at custom
    // AssemblyLoadContexts. Type accelerators are consulted by name whatever the context, so each public
    // engine type is registered under its full name; the Type objects are the ones the cmdlets use.
    // TypeAccelerators is not public API, hence reflection; without it only the cmdlets work.
    private static void AddTypeAccelerators(Assembly engine)
    {
        if (GetAcceleratorsApi() is not { } api)
        {
            return;
        }

        var existing = (IDictionary<string, Type>)api.Get.GetValue(null)!;
        foreach (Type type in engine.GetExportedTypes())
        {
            // Only the namespaces scripts are meant to use (the storage layer is internal anyway), and never
            // shadow a name someone else registered.
            if (type.FullName is { } name && AcceleratedNamespaces.Contains(type.Namespace ?? "") && !existing.ContainsKey(name))
            {
                api.Add.Invoke(null, [name, type]);
            }
        }
    }

    /// <summary>The engine namespaces whose public types scripts may name: the queue, the worker, compiled handlers.</summary>
    internal static readonly HashSet<string> AcceleratedNamespaces = ["PerfectQueue", "PerfectQueue.Workers", "PerfectQueue.Application"];

    private static (PropertyInfo Get, MethodInfo Add)? GetAcceleratorsApi()
    {
        Type? t = typeof(PSObject).Assembly.GetType("System.Management.Automation.TypeAccelerators");
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Static;
        return t?.GetProperty("Get", flags) is { } get
            && t.GetMethod("Add", flags, [typeof(string), typeof(Type)]) is { } add
            ? (get, add)
            : null;
    }
}
