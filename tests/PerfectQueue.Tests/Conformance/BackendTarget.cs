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

    // ---- the dialect's own SQL for the few raw-SQL checks the suites make ----

    /// <summary>A literal of the dialect for binary <paramref name="data"/> (raw rows that submit would refuse).</summary>
    string BinaryLiteral(byte[] data) => "X'" + Convert.ToHexString(data) + "'";

    /// <summary>A query whose value is 1 when <paramref name="table"/> has <paramref name="column"/>, else 0.</summary>
    string ColumnExistsSql(string table, string column) =>
        $"SELECT COUNT(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'";

    /// <summary>
    /// Two queries, each with one text value: the table's columns (name, type, nullability and default, in order)
    /// and its indexes (each one's definition, in name order). The schema suites compare tables by them.
    /// </summary>
    (string Columns, string Indexes) TableShapeSql(string table);

    /// <summary>Drops an index of <paramref name="table"/> behind the queue's back.</summary>
    string DropIndexSql(string table, string index) => $"DROP INDEX \"{index}\"";

    /// <summary>Whether a schema step's statements commit together (false where DDL commits by itself: MySQL).</summary>
    bool SchemaChangesAreTransactional => true;
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
