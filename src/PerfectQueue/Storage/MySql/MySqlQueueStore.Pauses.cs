using Dapper;
using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

// Pauses (Suspend-PQQueue / Resume-PQQueue, docs/pause.md): rows of <table>_pauses, read by acquire's ranking
// (RankingSql), a READ COMMITTED read that sees every pause committed before the acquire began.
internal sealed partial class MySqlQueueStore
{
    // Inserted only when the scope has no pause (one already there is kept as it was); a concurrent add of the
    // same scope that wins the race makes this one a duplicate key, read as "there before".
    private string AddPauseSql => $"""
        INSERT INTO {_p} (task_type, user_name, paused_at, reason, paused_by)
        SELECT @type, @user, {Now}, @reason, @by FROM DUAL
        WHERE NOT EXISTS (SELECT 1 FROM {_p} AS e WHERE e.task_type = @type AND e.user_name = @user);
        SELECT ROW_COUNT();
        """;

    private string PauseByScopeSql => PauseSql.ByScope(_p);

    // MySQL has no DELETE ... RETURNING: the row is read under its lock, then deleted, in one transaction.
    private string RemovePauseSql => $"""
        START TRANSACTION;
        {PauseSql.ByScope(_p)} FOR UPDATE;
        {PauseSql.Remove(_p)};
        COMMIT;
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
        bool created;
        try
        {
            // Not retried on an ambiguous connection loss: a second try would find its own pause and report it as there before.
            created = await Run(c => c.ExecuteScalarAsync<long>(Command(AddPauseSql, new { type, user, reason, by = pausedBy }, ct)), RetrySafety.BeforeSent, ct).ConfigureAwait(false) == 1;
        }
        catch (MySqlException e) when (MySqlErrors.IsDuplicateKey(e.Number))
        {
            created = false;
        }
        var row = await Run(c => c.QuerySingleAsync<PauseRow>(Command(PauseByScopeSql, new { type, user }, ct)), RetrySafety.Always, ct).ConfigureAwait(false);
        return (row, created);
    }

    public async Task<PauseRow?> RemovePauseAsync(string type, string user, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.QuerySingleOrDefaultAsync<PauseRow?>(Command(RemovePauseSql, new { type, user }, ct)), RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<PauseRow>> ListPausesAsync(bool counts, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => (IReadOnlyList<PauseRow>)(await c.QueryAsync<PauseRow>(Command(ListPausesSql(counts), null, ct)).ConfigureAwait(false)).AsList(), RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<long> CountPausedAsync(CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(c => c.ExecuteScalarAsync<long>(Command(CountPausedSql, null, ct)), RetrySafety.Always, ct).ConfigureAwait(false);
    }
}
