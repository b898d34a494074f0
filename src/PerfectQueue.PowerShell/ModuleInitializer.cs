using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace PerfectQueue.PowerShell;

/// <summary>
/// Runs on Import-Module / Remove-Module: routes the engine assembly into <see cref="EngineLoadContext"/>
/// and makes the engine's public types nameable from PowerShell.
/// </summary>
/// <remarks>
/// The hook is process-wide while OnImport/OnRemove run once per runspace that imports the module
/// (a worker's runspaces may import it too), so a count decides when to hook and when to unhook.
/// </remarks>
public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    private static readonly object s_gate = new();
    private static int s_imports;
    private static bool s_acceleratorsAdded;

    /// <inheritdoc />
    public void OnImport()
    {
        lock (s_gate)
        {
            if (s_imports == 0)
            {
                // This assembly lives in the default context and references PerfectQueue.dll, which is not
                // beside it (it is in lib/): the default context fails to find it and asks us.
                AssemblyLoadContext.Default.Resolving += ResolveEngine;
                try
                {
                    // Load the engine now, not on first cmdlet use, so scripts can use its types right after Import-Module.
                    Assembly engine = EngineLoadContext.Instance.LoadEngine();
                    RegisterDataAdapter();
                    if (!s_acceleratorsAdded)
                    {
                        AddTypeAccelerators(engine);
                        s_acceleratorsAdded = true;
                    }
                }
                catch
                {
                    AssemblyLoadContext.Default.Resolving -= ResolveEngine; // the import fails; leave nothing behind
                    throw;
                }
            }

            s_imports++;
        }
    }

    /// <inheritdoc />
    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        lock (s_gate)
        {
            if (s_imports == 0 || --s_imports > 0)
            {
                return;
            }

            // The engine stays loaded (its context is not collectible and its objects may live on in
            // variables), and so do the type names: PowerShell caches resolved type names, so removing
            // them would leave some names working and others not. A later Import-Module hooks again
            // and gets the same engine.
            AssemblyLoadContext.Default.Resolving -= ResolveEngine;
        }
    }

    // A separate method, so the engine type it names is resolved only once the hook is in place.
    private static void RegisterDataAdapter() => TaskData.ValueAdapter = PowerShellData.Adapt;

    private static Assembly? ResolveEngine(AssemblyLoadContext context, AssemblyName name) =>
        string.Equals(name.Name, EngineLoadContext.EngineAssemblyName, StringComparison.OrdinalIgnoreCase)
            ? EngineLoadContext.Instance.LoadEngine()
            : null;

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
            // Never shadow a name someone else registered.
            if (type.FullName is { } name && !existing.ContainsKey(name))
            {
                api.Add.Invoke(null, [name, type]);
            }
        }
    }

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
