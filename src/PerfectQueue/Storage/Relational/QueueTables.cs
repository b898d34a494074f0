namespace PerfectQueue.Storage.Relational;

/// <summary>What the stores' queue table listings (<see cref="IQueueStore.ListQueueTablesAsync"/>) share.</summary>
internal static class QueueTables
{
    /// <summary>The most names a listing returns: it feeds tab completion, which must stay quick.</summary>
    public const int Limit = 1000;
}
