using System.Reflection;
using System.Runtime.Loader;

namespace PerfectQueue.Application;

/// <summary>
/// Loads compiled handlers from an assembly into a collectible load context of their own, so a restart can
/// load a rebuilt assembly again. The assembly is read into memory, so the file can be replaced while the
/// worker runs. PerfectQueue itself always comes from the engine's context (one identity for Base and
/// Dispatch); the handler's other dependencies come from its folder (per its .deps.json when it has one).
/// </summary>
internal static class HandlerAssembly
{
    /// <summary>
    /// Loads <paramref name="assemblyPath"/> and creates its Dispatch: the class named <paramref name="dispatchType"/>
    /// (full or simple name), or, when null, the assembly's only concrete <see cref="Dispatch"/>.
    /// </summary>
    /// <exception cref="ConfigException">The file, the type, or its routes are not usable; the message names the fix.</exception>
    public static Dispatch LoadDispatch(string assemblyPath, string? dispatchType)
    {
        var path = Path.GetFullPath(assemblyPath);
        if (!File.Exists(path)) throw new ConfigException($"No handler assembly at '{path}'. Build it, or correct -AssemblyPath.", "assembly_path");
        Assembly assembly;
        try
        {
            var context = new HandlerLoadContext(path);
            using var image = new MemoryStream(File.ReadAllBytes(path));
            var symbols = Path.ChangeExtension(path, ".pdb");
            using var pdb = File.Exists(symbols) ? new MemoryStream(File.ReadAllBytes(symbols)) : null;
            assembly = context.LoadFromStream(image, pdb);
        }
        catch (BadImageFormatException e)
        {
            throw new ConfigException($"'{path}' is not a .NET assembly: {e.Message}", "assembly_path", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"Cannot read the handler assembly '{path}': {e.Message}", "assembly_path", e);
        }

        Type[] types;
        try { types = assembly.GetTypes(); }
        catch (ReflectionTypeLoadException e)
        {
            var first = e.LoaderExceptions.FirstOrDefault(x => x is not null)?.Message;
            throw new ConfigException($"The handler assembly '{path}' could not be loaded: {first}. Put its dependencies beside it.", "assembly_path", e);
        }
        var candidates = types.Where(t => typeof(Dispatch).IsAssignableFrom(t) && !t.IsAbstract).ToList();
        Type chosen;
        if (dispatchType is null)
        {
            chosen = candidates.Count switch
            {
                1 => candidates[0],
                0 => throw new ConfigException($"'{path}' has no class deriving from PerfectQueue.Application.Dispatch. Add one that routes task types to handlers.", "dispatch"),
                _ => throw new ConfigException($"'{path}' has several Dispatch classes ({string.Join(", ", candidates.Select(t => t.FullName))}); name one with -Dispatch.", "dispatch"),
            };
        }
        else
        {
            chosen = candidates.FirstOrDefault(t => t.FullName == dispatchType)
                ?? candidates.SingleOrDefault(t => t.Name == dispatchType)
                ?? throw new ConfigException(types.Any(t => t.FullName == dispatchType || t.Name == dispatchType)
                    ? $"'{dispatchType}' in '{path}' does not derive from PerfectQueue.Application.Dispatch (or is abstract)."
                    : $"'{path}' has no Dispatch class named '{dispatchType}'. It has: {(candidates.Count == 0 ? "none" : string.Join(", ", candidates.Select(t => t.FullName)))}.", "dispatch");
        }
        if (chosen.GetConstructor(Type.EmptyTypes) is null)
            throw new ConfigException($"{chosen.FullName} needs a public parameterless constructor.", "dispatch");
        Dispatch dispatch;
        try { dispatch = (Dispatch)Activator.CreateInstance(chosen)!; }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new ConfigException($"{chosen.FullName} failed while adding its routes: {e.InnerException.Message}", "dispatch", e.InnerException);
        }
        if (dispatch.RouteNames.Count == 0)
            throw new ConfigException($"{chosen.FullName} routes no task types. Add routes in its constructor: Route<MyHandler>(\"type\").", "dispatch");
        return dispatch;
    }

    /// <summary>
    /// Lets the load context of <paramref name="dispatch"/>'s assembly go once nothing uses it any more (after a
    /// restart loaded a new build). Handlers still running keep it alive until they return.
    /// </summary>
    public static void Unload(Dispatch dispatch)
    {
        if (AssemblyLoadContext.GetLoadContext(dispatch.GetType().Assembly) is HandlerLoadContext context) context.Unload();
    }

    private sealed class HandlerLoadContext : AssemblyLoadContext
    {
        private static readonly Assembly s_engine = typeof(Dispatch).Assembly;
        private readonly string _folder;
        private readonly AssemblyDependencyResolver? _resolver;

        public HandlerLoadContext(string path) : base($"PerfectQueue handlers ({Path.GetFileName(path)})", isCollectible: true)
        {
            _folder = Path.GetDirectoryName(path)!;
            try { _resolver = new AssemblyDependencyResolver(path); }
            catch (InvalidOperationException) { _resolver = null; } // no usable .deps.json: probe the folder
        }

        protected override Assembly? Load(AssemblyName name)
        {
            if (string.Equals(name.Name, s_engine.GetName().Name, StringComparison.OrdinalIgnoreCase)) return s_engine;
            var path = _resolver?.ResolveAssemblyToPath(name) ?? Probe(name);
            if (path is not null) return LoadFromAssemblyPath(path);
            // Not beside the handlers: the engine's dependencies (Dapper, drivers) or the framework.
            try { return AssemblyLoadContext.GetLoadContext(s_engine)?.LoadFromAssemblyName(name); }
            catch (FileNotFoundException) { return null; }
        }

        private string? Probe(AssemblyName name)
        {
            var candidate = Path.Combine(_folder, name.Name + ".dll");
            return File.Exists(candidate) ? candidate : null;
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
        {
            var path = _resolver?.ResolveUnmanagedDllToPath(unmanagedDllName);
            return path is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(path);
        }
    }
}
