using System.Collections.Concurrent;
using System.Reflection;
using PerfectQueue.Storage;

namespace PerfectQueue.Tests;

/// <summary>
/// A store that forwards every call to a real one and counts them by method name; a test may replace chosen
/// calls (make them fail, hold them back). Built on DispatchProxy, so it follows the store contract as it grows.
/// </summary>
internal class InterceptingStore : DispatchProxy
{
    private IQueueStore _inner = null!;
    private Func<MethodInfo, object?[]?, IQueueStore, object?>? _replace;

    public ConcurrentDictionary<string, int> Calls { get; } = new();

    /// <param name="inner">The real store.</param>
    /// <param name="replace">Returns a call's result instead of the real store, or null to forward it.</param>
    public static (IQueueStore Store, InterceptingStore Calls) Wrap(IQueueStore inner, Func<MethodInfo, object?[]?, IQueueStore, object?>? replace = null)
    {
        var store = Create<IQueueStore, InterceptingStore>();
        var proxy = (InterceptingStore)(object)store;
        proxy._inner = inner;
        proxy._replace = replace;
        return (store, proxy);
    }

    public int Count(string method) => Calls.TryGetValue(method, out var n) ? n : 0;

    protected override object? Invoke(MethodInfo? method, object?[]? args)
    {
        Calls.AddOrUpdate(method!.Name, 1, (_, n) => n + 1);
        if (_replace?.Invoke(method, args, _inner) is { } replaced) return replaced;
        try { return method.Invoke(_inner, args); }
        catch (TargetInvocationException e) when (e.InnerException is not null) { throw e.InnerException; }
    }
}
