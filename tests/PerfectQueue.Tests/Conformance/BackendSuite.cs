using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// What every per-backend suite needs: queues opened on the backend's target (a fresh table each, schema
/// created), second clients of the same queue, and disposal of all of them when the test ends.
/// </summary>
public abstract class BackendSuite(IBackendTarget target) : IDisposable
{
    private readonly List<Queue> _opened = [];

    protected IBackendTarget Target => target;

    /// <summary>A new queue (its own table, schema created) on this backend.</summary>
    protected Queue Open(Action<QueueConfig>? configure = null, QueueConfig? config = null)
    {
        config ??= target.NewConfig();
        configure?.Invoke(config);
        var queue = Queue.Open(config);
        queue.Initialize();
        return Track(queue);
    }

    /// <summary>A second client of the same queue, on its own connections.</summary>
    protected Queue OpenAnother(Queue queue, Action<QueueConfig>? configure = null)
    {
        var config = queue.Settings.Clone(); // Config masks the password: reopening needs the real one
        configure?.Invoke(config);
        return Track(Queue.Open(config));
    }

    /// <summary>Disposes <paramref name="queue"/> when the test ends.</summary>
    protected Queue Track(Queue queue)
    {
        lock (_opened) _opened.Add(queue);
        return queue;
    }

    public void Dispose()
    {
        lock (_opened) foreach (var q in _opened) q.Dispose();
        GC.SuppressFinalize(this);
    }
}
