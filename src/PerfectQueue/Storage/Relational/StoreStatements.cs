namespace PerfectQueue.Storage;

/// <summary>
/// The names under which every store lists its statement texts (each store's <c>Statements()</c>): one name per
/// operation of <see cref="IQueueStore"/> that sends SQL, so the same operation can be read side by side across
/// dialects, and a test checks that every store lists every one. A store may send several statements for one
/// operation (<c>apply.finish</c>, <c>acquire.lock_users</c>): they share the operation's name before the dot.
/// Schema statements (initialize, upgrade) are listed by the migration steps.
/// </summary>
internal static class StoreStatements
{
    /// <summary>A store's statement texts, by name (see <see cref="StoreStatements"/>). Every relational store implements it.</summary>
    public interface IInventory
    {
        IEnumerable<(string Name, string Sql)> Statements();
    }

    public static readonly IReadOnlyList<string> Operations =
    [
        "now", "submit", "acquire", "heartbeat", "apply", "update_data", "get", "get_by_ids", "list", "summarize",
        "due_or_running", "request_cancel", "force_finish", "cleanup",
        "worker.register", "worker.beat", "worker.remove", "worker.list", "worker.running", "worker.request_stop", "worker.cleanup",
        "schedule.add", "schedule.update", "schedule.remove", "schedule.list", "schedule.data", "schedule.advance",
        "pause.add", "pause.remove", "pause.list", "pause.count_paused",
        "restart", "remove",
        "tables",
        "history.list", "history.delete",
    ];

    /// <summary>The operation a statement name belongs to: "apply.finish" and "list(keys)" to "apply" and "list".</summary>
    public static string OperationOf(string statementName)
    {
        var cut = statementName.IndexOf('(');
        var name = cut < 0 ? statementName : statementName[..cut];
        return Operations.Contains(name) ? name : name.Contains('.') ? OperationOf(name[..name.LastIndexOf('.')]) : name;
    }

    /// <summary>
    /// Listings with every combination of filters (keys, types, users, statuses, first), named by the filters
    /// they set, e.g. "(keys,first)", and one per single status: the shapes a list statement takes.
    /// </summary>
    public static IEnumerable<(string Name, TaskQuery Query)> SampleQueries()
    {
        for (var mask = 0; mask < 32; mask++)
        {
            var q = new TaskQuery(
                (mask & 1) != 0 ? ["k1", "k2"] : null,
                (mask & 8) != 0 ? Enum.GetValues<TaskState>() : null,
                (mask & 2) != 0 ? ["backup"] : null,
                (mask & 4) != 0 ? ["team-a"] : null,
                (mask & 16) != 0 ? 10 : null);
            var filters = new[] { "keys", "types", "users", "statuses", "first" }.Where((_, bit) => (mask & (1 << bit)) != 0);
            yield return ($"({string.Join(",", filters)})", q);
        }
        foreach (var status in Enum.GetValues<TaskState>())
            yield return ($"(status={status})", new TaskQuery(null, [status], null, null, null));
        foreach (var (name, q) in FilterQueries()) yield return (name, q);
    }

    /// <summary>The listings of Get-PQTask's everyday filters: outcomes, key wildcards (alone and with exact keys), newest.</summary>
    public static IEnumerable<(string Name, TaskQuery Query)> FilterQueries()
    {
        KeyPattern[] patterns = [KeyPattern.Parse("backup-*"), KeyPattern.Parse("r?port-[0-9]")];
        yield return ("(outcomes)", new TaskQuery(null, null, null, null, null, [TaskOutcome.Failed, TaskOutcome.Cancelled]));
        yield return ("(patterns)", new TaskQuery(null, null, null, null, null, KeyPatterns: patterns));
        yield return ("(keys,patterns,first)", new TaskQuery(["k1"], null, null, null, 10, KeyPatterns: patterns));
        yield return ("(newest)", new TaskQuery(null, null, null, null, null, Newest: 10));
        yield return ("(statuses,outcomes,patterns,newest)", new TaskQuery(null, [TaskState.Waiting, TaskState.Finished], ["backup"], ["team-a"], null,
            [TaskOutcome.Failed], patterns, 10));
        yield return ("(page)", new TaskQuery(null, null, null, null, null, Page: new TaskPage(50, null)));
        yield return ("(statuses,outcomes,patterns,page)", new TaskQuery(null, [TaskState.Waiting, TaskState.Finished], ["backup"], ["team-a"], null,
            [TaskOutcome.Failed], patterns, Page: new TaskPage(50, 1234)));
    }
}
