namespace PerfectQueue.Storage;

/// <summary>
/// The names one queue uses in its database, checked (<see cref="SqlIdentifiers"/>) and quoted the dialect's way:
/// the task table, its sessions table <c>&lt;table&gt;_workers</c>, and the indexes named after the table.
/// </summary>
internal sealed class StoreNames
{
    /// <summary>The table recording every queue table's schema version, shared by all queues of a database.</summary>
    public const string SchemaTable = "perfectqueue_schema";

    private readonly Func<string, string> _quote;

    /// <param name="table">The queue's table name as configured; checked here.</param>
    /// <param name="quote">The dialect's identifier quoting ("x" or [x] or `x`); names are checked first, so quoting never needs escapes.</param>
    public StoreNames(string table, Func<string, string> quote)
    {
        Table = SqlIdentifiers.Require(table);
        Workers = Table + "_workers";
        _quote = quote;
        QuotedTable = quote(Table);
        QuotedWorkers = quote(Workers);
    }

    /// <summary>The task table's name, unquoted.</summary>
    public string Table { get; }

    /// <summary>The sessions table's name, unquoted.</summary>
    public string Workers { get; }

    public string QuotedTable { get; }
    public string QuotedWorkers { get; }

    /// <summary>An index of the task table, such as <c>&lt;table&gt;_due</c>, quoted.</summary>
    public string Index(string suffix) => _quote(Table + "_" + suffix);

    public static string DoubleQuote(string identifier) => "\"" + identifier + "\"";

    /// <summary>The pauses table's name <c>&lt;table&gt;_pauses</c> (schema version 5), unquoted.</summary>
    public string Pauses => Table + "_pauses";

    /// <summary>The pauses table's name, quoted.</summary>
    public string QuotedPauses => _quote(Pauses);
}

/// <summary>What every store says when something of the queue is missing.</summary>
internal static class StoreMessages
{
    /// <param name="table">The queue table's name.</param>
    /// <param name="where">The store's <see cref="IQueueStore.Description"/>.</param>
    /// <param name="inner">The database's own error, when there was one.</param>
    public static QueueNotInitializedException NotInitialized(string table, string where, Exception? inner = null) => new(
        $"The queue table '{table}' does not exist in {where}. Create it with Initialize-PQQueue (or Queue.Initialize() from .NET).", inner);
}
