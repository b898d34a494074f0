using Dapper;

namespace PerfectQueue.Storage.Postgres;

// Pauses (Suspend-PQQueue / Resume-PQQueue, docs/pause.md): rows of <table>_pauses, read by acquire in its own
// statement (the predicate in AcquireStatements), so a pause committed before an acquire began is never missed.
internal sealed partial class PostgresQueueStore
{
    private string AddPauseSql => $"""
        WITH added AS (
            INSERT INTO {_p} (task_type, user_name, paused_at, reason, paused_by) VALUES (@type, @user, {Now}, @reason, @by)
            ON CONFLICT (task_type, user_name) DO NOTHING
            RETURNING 1)
        SELECT count(*) FROM added
        """;

    private string PauseByScopeSql => PauseSql.ByScope(_p);

    // A resume wakes listening workers, as a submit does: the tasks it frees are due now.
    private string RemovePauseSql => $"""
        WITH p AS ({PauseSql.Remove(_p)} RETURNING task_type, user_name, paused_at, reason, paused_by)
        SELECT {PauseSql.Columns} FROM p, LATERAL (SELECT pg_notify(@channel, '')) AS n
        """;

    private string ListPausesSql(bool counts) => PauseSql.ListSql(_t, _p, Now, counts);
    private string CountPausedSql => PauseSql.CountPausedSql(_t, _p, Now);

    private IEnumerable<(string Name, string Sql)> PauseStatements()
    {
        yield return ("pause.add", AddPauseSql);
        yield return ("pause.add.read", PauseByScopeSql);
        yield return ("pause.remove", RemovePauseSql);
        yield return ("pause.list", ListPausesSql(false));
        yield return ("pause.list(counts)", ListPausesSql(true));
        yield return ("pause.count_paused", CountPausedSql);
    }

    public async Task<(PauseRow Pause, bool Created)> AddPauseAsync(string type, string user, string? reason, string? pausedBy, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        // Not retried on an ambiguous connection loss: a second try would find its own pause and report it as there before.
        var created = await Run(c => c.ExecuteScalarAsync<long>(AddPauseSql, new { type, user, reason, by = pausedBy }), RetrySafety.BeforeSent, ct).ConfigureAwait(false) == 1;
        var row = await Run(c => c.QuerySingleAsync<PauseRow>(PauseByScopeSql, new { type, user }), RetrySafety.Always, ct).ConfigureAwait(false);
        return (row, created);
    }

    public async Task<PauseRow?> RemovePauseAsync(string type, string user, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.QuerySingleOrDefaultAsync<PauseRow?>(RemovePauseSql, new { type, user, channel = _channel }), RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<PauseRow>> ListPausesAsync(bool counts, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<PauseRow>)(await c.QueryAsync<PauseRow>(ListPausesSql(counts)).ConfigureAwait(false)).AsList(), RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<long> CountPausedAsync(CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.ExecuteScalarAsync<long>(CountPausedSql), RetrySafety.Always, ct).ConfigureAwait(false);
    }
}
