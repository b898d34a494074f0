using System.Collections.Concurrent;
using System.Data.Common;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// A database the shared suites run against. Each backend supplies one, in its own test folder
/// (<c>&lt;Backend&gt;/&lt;Backend&gt;Target.cs</c>), and runs every suite through one line each in
/// <c>&lt;Backend&gt;/&lt;Backend&gt;Suites.cs</c>; the suites themselves are written once and must pass unchanged
/// on every backend.
/// </summary>
public interface IBackendTarget
{
    /// <summary>The backend's provider name (sqlite, postgresql, sqlserver...).</summary>
    string Name { get; }

    /// <summary>A config for a fresh, empty queue of its own (unique table or file).</summary>
    QueueConfig NewConfig();

    /// <summary>
    /// An open connection to the database holding <paramref name="config"/>'s queue, for raw SQL the public API
    /// cannot run. Double-quoted identifiers must work on it (every backend's target sees to that).
    /// </summary>
    DbConnection Connect(QueueConfig config);
}

/// <summary>The targets in use, by provider name: how raw-SQL helpers reach the database of any queue.</summary>
public static class TestTargets
{
    private static readonly ConcurrentDictionary<string, IBackendTarget> s_byName = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Called by every target's constructor.</summary>
    public static void Register(IBackendTarget target) => s_byName[target.Name] = target;

    /// <summary>An open connection to the database of <paramref name="queue"/>, through its backend's target.</summary>
    public static DbConnection Connect(Queue queue)
    {
        var provider = Storage.QueueStores.BackendOf(queue.Config).Provider;
        return s_byName.TryGetValue(provider, out var target)
            ? target.Connect(queue.Config)
            : throw new InvalidOperationException($"No test target for '{provider}' was created in this run.");
    }
}
