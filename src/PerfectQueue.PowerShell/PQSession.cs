using System.Management.Automation.Runspaces;
using System.Runtime.CompilerServices;

namespace PerfectQueue.PowerShell;

/// <summary>
/// Which queue a cmdlet uses: -Queue, else this runspace's default (Connect-PQQueue), else
/// $env:PERFECTQUEUE_URL, else the embedded default. The default is per runspace, never per process:
/// a worker's handler runspaces live in the same process and must not change each other's queue.
/// </summary>
internal static class PQSession
{
    public const string UrlVariable = "PERFECTQUEUE_URL";

    private sealed class Slot
    {
        public Queue? Queue;
    }

    private static readonly ConditionalWeakTable<Runspace, Slot> Defaults = new();
    private static readonly Dictionary<string, Queue> Shared = new(StringComparer.Ordinal);
    private static readonly Lock SharedGate = new();

    public static Queue? Default => Runspace.DefaultRunspace is { } r && Defaults.TryGetValue(r, out var slot) ? slot.Queue : null;

    /// <summary>Makes <paramref name="queue"/> this runspace's default (null: none).</summary>
    public static void SetDefault(Queue? queue) => Defaults.GetValue(Runspace.DefaultRunspace, _ => new Slot()).Queue = queue;

    public static Queue Resolve(Queue? explicitQueue)
    {
        if (explicitQueue is not null) return explicitQueue;
        if (Default is { } fallback) return fallback;
        var url = Environment.GetEnvironmentVariable(UrlVariable);
        return Open(new QueueConfig { Url = string.IsNullOrWhiteSpace(url) ? null : url.Trim() });
    }

    /// <summary>Where a cmdlet's queue would come from now, for messages.</summary>
    public static string Source(Queue? explicitQueue) =>
        explicitQueue is not null ? "-Queue"
        : Default is not null ? "the session default (Connect-PQQueue)"
        : !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(UrlVariable)) ? "$env:" + UrlVariable
        : "the embedded default";

    /// <summary>
    /// The one queue of the process for this configuration. A Queue is thread-safe and holds a connection
    /// pool, so every runspace shares it, reconnecting reuses it (a script that calls Connect-PQQueue in a
    /// loop opens nothing new), and none is ever disposed while a user, a task object or another runspace
    /// may still hold it: they live as long as the process, like connection pools do.
    /// </summary>
    /// <summary>Every setting of a configuration, as text: equal keys mean the same queue.</summary>
    public static string SettingsKey(QueueConfig config) => System.Text.Json.JsonSerializer.Serialize(config);

    public static Queue Open(QueueConfig config)
    {
        var key = SettingsKey(config);
        lock (SharedGate)
        {
            if (!Shared.TryGetValue(key, out var queue))
            {
                queue = Queue.Open(config);
                Shared[key] = queue;
            }
            return queue;
        }
    }
}
