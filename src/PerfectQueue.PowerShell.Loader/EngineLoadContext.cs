using System.Reflection;
using System.Runtime.Loader;

namespace PerfectQueue.PowerShell.Loader;

/// <summary>
/// The AssemblyLoadContext that holds the engine (PerfectQueue.dll) and its dependencies from the
/// module's lib/ folder.
/// </summary>
/// <remarks>
/// pwsh loads a binary module's dependencies from the module folder and ignores .deps.json, so a
/// portable publish would give a stub SqlClient and no native e_sqlite3. An
/// <see cref="AssemblyDependencyResolver"/> reads lib/PerfectQueue.deps.json instead and picks the
/// right runtimes/&lt;rid&gt;/ assets. A context of our own also keeps our Dapper/SqlClient/Sqlite
/// from colliding with other copies in the session (e.g. loaded by the SqlServer or dbatools modules).
/// </remarks>
public sealed class EngineLoadContext : AssemblyLoadContext
{
    public const string EngineAssemblyName = "PerfectQueue";

    // Types that cross the boundary between pwsh and the engine must have one identity, so these
    // always come from the default context (pwsh's own copies).
    private static readonly HashSet<string> s_sharedWithHost = new(StringComparer.OrdinalIgnoreCase)
    {
        "System.Management.Automation",
        "PerfectQueue.PowerShell",
        "PerfectQueue.PowerShell.Loader",
    };

    private static readonly Lazy<EngineLoadContext> s_instance = new(() => new EngineLoadContext(
        Path.Combine(Path.GetDirectoryName(typeof(EngineLoadContext).Assembly.Location)!, "lib", EngineAssemblyName + ".dll")));

    private readonly AssemblyDependencyResolver _resolver;
    private readonly string _enginePath;

    private EngineLoadContext(string enginePath)
        : base(EngineAssemblyName, isCollectible: false) // not collectible: engine objects outlive Remove-Module
    {
        if (!File.Exists(enginePath))
        {
            throw new FileNotFoundException(
                $"The PerfectQueue engine was not found at '{enginePath}'. The module folder is incomplete; rebuild it with build.ps1.",
                enginePath);
        }

        _enginePath = enginePath;
        _resolver = new AssemblyDependencyResolver(enginePath);
    }

    /// <summary>The one instance per process: the default context caches what it resolved, so a second one would only load duplicates.</summary>
    public static EngineLoadContext Instance => s_instance.Value;

    /// <summary>Loads (once) and returns the engine assembly.</summary>
    public Assembly LoadEngine() => LoadFromAssemblyName(new AssemblyName(EngineAssemblyName));

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        if (assemblyName.Name is null || s_sharedWithHost.Contains(assemblyName.Name))
        {
            return null;
        }

        // Framework assemblies are not in the deps.json (publish drops package copies the framework
        // supersedes): null lets the default context provide them, shared with pwsh.
        string? path = _resolver.ResolveAssemblyToPath(assemblyName);
        return path is null ? null : LoadFromAssemblyPath(path);
    }

    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        // Native libraries such as e_sqlite3 live under lib/runtimes/<rid>/native/.
        string? path = _resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
        return path is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(path);
    }

    public override string ToString() => $"{Name} ({_enginePath})";
}
