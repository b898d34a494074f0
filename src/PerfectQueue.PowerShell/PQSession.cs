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
        public bool Owned;
    }

    private static readonly ConditionalWeakTable<Runspace, Slot> Defaults = new();
    private static readonly Dictionary<string, Queue> Shared = new(StringComparer.Ordinal);
    private static readonly Lock SharedGate = new();

    public static Queue? Default => Runspace.DefaultRunspace is { } r && Defaults.TryGetValue(r, out var slot) ? slot.Queue : null;

    /// <summary>Makes <paramref name="queue"/> this runspace's default; disposes a default Connect-PQQueue opened before.</summary>
    public static void SetDefault(Queue? queue, bool owned)
    {
        var slot = Defaults.GetValue(Runspace.DefaultRunspace, _ => new Slot());
        if (slot.Owned && slot.Queue is { } old && !ReferenceEquals(old, queue)) old.Dispose();
        slot.Queue = queue;
        slot.Owned = owned && queue is not null;
    }

    public static Queue Resolve(Queue? explicitQueue)
    {
        if (explicitQueue is not null) return explicitQueue;
        if (Default is { } fallback) return fallback;
        var url = Environment.GetEnvironmentVariable(UrlVariable);
        return SharedQueue(string.IsNullOrWhiteSpace(url) ? null : url.Trim());
    }

    /// <summary>Where a cmdlet's queue would come from now, for messages.</summary>
    public static string Source(Queue? explicitQueue) =>
        explicitQueue is not null ? "-Queue"
        : Default is not null ? "the session default (Connect-PQQueue)"
        : !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(UrlVariable)) ? "$env:" + UrlVariable
        : "the embedded default";

    // Queues opened from the environment or the embedded default are shared by every runspace: a Queue is
    // thread-safe, and opening one per command would redo the schema check each time.
    private static Queue SharedQueue(string? url)
    {
        lock (SharedGate)
        {
            var key = url ?? "";
            if (!Shared.TryGetValue(key, out var queue))
            {
                queue = Queue.Open(new QueueConfig { Url = url });
                Shared[key] = queue;
            }
            return queue;
        }
    }
}
