using Dapper;

namespace PerfectQueue.Storage.Sqlite;

// Pauses (Suspend-PQQueue / Resume-PQQueue, docs/pause.md): rows of <table>_pauses, read by acquire in its own
// transaction (the predicate in _acquireSql), so a pause committed before an acquire began is never missed.
internal sealed partial class SqliteQueueStore
{
    private string AddPauseSql => $"""
        INSERT INTO {_p} (task_type, user_name, paused_at, reason, paused_by) VALUES (@type, @user, @now, @reason, @by)
        ON CONFLICT (task_type, user_name) DO NOTHING
        """;

    private string PauseByScopeSql => PauseSql.ByScope(_p);
    private string RemovePauseSql => $"{PauseSql.Remove(_p)} RETURNING task_type AS \"Type\", user_name AS \"User\", paused_at AS \"PausedAt\", reason AS \"Reason\", paused_by AS \"PausedBy\"";
    private string ListPausesSql(bool counts) => PauseSql.ListSql(_t, _p, "@now", counts);
    private string CountPausedSql => PauseSql.CountPausedSql(_t, _p, "@now");

    private IEnumerable<(string Name, string Sql)> PauseStatements()
    {
        yield return ("pause.add", AddPauseSql);
        yield return ("pause.add.read", PauseByScopeSql);
        yield return ("pause.remove", RemovePauseSql);
        yield return ("pause.list", ListPausesSql(false));
        yield return ("pause.list(counts)", ListPausesSql(true));
        yield return ("pause.count_paused", CountPausedSql);
    }

    public Task<(PauseRow Pause, bool Created)> AddPauseAsync(string type, string user, string? reason, string? pausedBy, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Write(ct, (c, now) =>
        {
            var created = c.Execute(AddPauseSql, new { type, user, now, reason, by = pausedBy }) == 1;
            return (c.QuerySingle<PauseRow>(PauseByScopeSql, new { type, user }), created);
        });
    });

    public Task<PauseRow?> RemovePauseAsync(string type, string user, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Write(ct, (c, _) => c.QuerySingleOrDefault<PauseRow>(RemovePauseSql, new { type, user }));
    });

    public Task<IReadOnlyList<PauseRow>> ListPausesAsync(bool counts, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Read(c => (IReadOnlyList<PauseRow>)c.Query<PauseRow>(ListPausesSql(counts), new { now = Now(c) }).AsList());
    });

    public Task<long> CountPausedAsync(CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Read(c => c.ExecuteScalar<long>(CountPausedSql, new { now = Now(c) }));
    });
}
