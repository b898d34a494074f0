using System.Text.RegularExpressions;

namespace PerfectQueue.Application;

/// <summary>
/// Routes task types to compiled handlers, as the original's <c>PerfectQueue::Application::Dispatch</c>.
/// Derive from it and add routes in the constructor:
/// <code>
/// public sealed class MyDispatch : Dispatch
/// {
///     public MyDispatch()
///     {
///         Route&lt;ReportHandler&gt;("report");
///         Route&lt;ExportHandler&gt;(new Regex("^export-"));
///     }
/// }
/// </code>
/// Exact types win over patterns; patterns are tried in the order they were added.
/// </summary>
public abstract class Dispatch
{
    private readonly RouteTable<Type> _routes = new();

    /// <summary>The routes, for logs: exact types, and patterns as /pattern/.</summary>
    public IReadOnlyList<string> RouteNames => _routes.Names;

    protected void Route<THandler>(string type) where THandler : Base, new() => _routes.Add(type, typeof(THandler));

    protected void Route<THandler>(Regex pattern) where THandler : Base, new() => _routes.Add(pattern, typeof(THandler));

    /// <summary>Routes by a handler type known only at run time (it must derive from <see cref="Base"/> and have a public parameterless constructor).</summary>
    protected void Route(string type, Type handler) => _routes.Add(type, CheckHandler(handler));

    protected void Route(Regex pattern, Type handler) => _routes.Add(pattern, CheckHandler(handler));

    /// <summary>A new handler for a task type, or null when no route matches.</summary>
    public Base? CreateHandler(string taskType)
    {
        if (!_routes.TryFind(taskType, out var type)) return null;
        try { return (Base)Activator.CreateInstance(type)!; }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
        {
            // The handler's constructor failed: its own error is the task's message, not "an invocation threw".
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    private static Type CheckHandler(Type handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (!typeof(Base).IsAssignableFrom(handler) || handler.IsAbstract || handler.GetConstructor(Type.EmptyTypes) is null)
            throw new ArgumentException($"{handler.FullName} cannot handle tasks: a handler must be a concrete class deriving from PerfectQueue.Application.Base with a public parameterless constructor.", nameof(handler));
        return handler;
    }
}
