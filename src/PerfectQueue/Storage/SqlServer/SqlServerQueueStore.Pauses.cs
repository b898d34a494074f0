using Dapper;

namespace PerfectQueue.Storage.SqlServer;

// Pauses (Suspend-PQQueue / Resume-PQQueue, docs/pause.md): rows of <table>_pauses, read by acquire's candidate
// pools (Pool in the constructor), the second of them inside the acquire's transaction, after the user locks:
// a pause committed before an acquire began is never missed. The pauses table is read without READPAST: a pause
// being written is waited for, never skipped.
internal sealed partial class SqlServerQueueStore
{
    // UPDLOCK, HOLDLOCK: two adds of one scope at once are serialized on its key (the second sees the first's row).
    private string AddPauseSql => $"""
        SET NOCOUNT ON;
        SET XACT_ABORT ON;
        DECLARE @created int = 0;
        BEGIN TRANSACTION;
        IF NOT EXISTS (SELECT 1 FROM {_p} WITH (UPDLOCK, HOLDLOCK) WHERE task_type = @type AND user_name = @user)
        BEGIN
            INSERT INTO {_p} (task_type, user_name, paused_at, reason, paused_by) VALUES (@type, @user, {NowSql}, @reason, @by);
            SET @created = 1;
        END;
        COMMIT TRANSACTION;
        SELECT @created;
        {PauseSql.ByScope(_p)};
        """;

    // OUTPUT goes INTO a table variable, selected after (as everywhere in this store: a trigger would break OUTPUT to the client).
    private string RemovePauseSql => $"""
        SET NOCOUNT ON;
        DECLARE @removed TABLE (
            task_type nvarchar(256) COLLATE {Exact} NOT NULL, user_name nvarchar(256) COLLATE {Exact} NOT NULL,
            paused_at bigint NOT NULL, reason nvarchar(max) NULL, paused_by nvarchar(512) NULL);
        DELETE FROM {_p}
        OUTPUT deleted.task_type, deleted.user_name, deleted.paused_at, deleted.reason, deleted.paused_by
        INTO @removed (task_type, user_name, paused_at, reason, paused_by)
        WHERE task_type = @type AND user_name = @user;
        SELECT {PauseSql.Columns} FROM @removed AS p;
        """;

    private string ListPausesSql(bool counts) => $"DECLARE @now bigint = {NowSql};\n{PauseSql.ListSql(_t, _p, "@now", counts)};";
    private string CountPausedSql => $"DECLARE @now bigint = {NowSql};\n{PauseSql.CountPausedSql(_t, _p, "@now")};";

    private static object AddPauseArgs(string type, string user, string? reason, string? by) => new { type, user, reason, by };
    private static object PauseScopeArgs(string type, string user) => new { type, user };

    private IEnumerable<(string Name, string Sql, object? Parameters)> PauseStatements()
    {
        yield return ("pause.add", AddPauseSql, AddPauseArgs("backup", "", "maintenance", "ops@build-host-01"));
        yield return ("pause.remove", RemovePauseSql, PauseScopeArgs("backup", ""));
        yield return ("pause.list", ListPausesSql(false), null);
        yield return ("pause.list(counts)", ListPausesSql(true), null);
        yield return ("pause.count_paused", CountPausedSql, null);
    }

    public Task<(PauseRow Pause, bool Created)> AddPauseAsync(string type, string user, string? reason, string? pausedBy, CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
    {
        using var results = await c.QueryMultipleAsync(Command(AddPauseSql, AddPauseArgs(type, user, reason, pausedBy), null, ct)).ConfigureAwait(false);
        var created = await results.ReadSingleAsync<int>().ConfigureAwait(false) == 1;
        return (await results.ReadSingleAsync<PauseRow>().ConfigureAwait(false), created);
    }, RetrySafety.BeforeSent, ct)); // a second try after an ambiguous loss would find its own pause and report it as there before

    public Task<PauseRow?> RemovePauseAsync(string type, string user, CancellationToken ct) => UpgradedAsync(ct, () => Run(c =>
        c.QuerySingleOrDefaultAsync<PauseRow?>(Command(RemovePauseSql, PauseScopeArgs(type, user), null, ct)), RetrySafety.BeforeSent, ct));

    public Task<IReadOnlyList<PauseRow>> ListPausesAsync(bool counts, CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
        (IReadOnlyList<PauseRow>)(await c.QueryAsync<PauseRow>(Command(ListPausesSql(counts), null, null, ct)).ConfigureAwait(false)).AsList(), RetrySafety.Always, ct));

    public Task<long> CountPausedAsync(CancellationToken ct) => UpgradedAsync(ct, () => Run(c =>
        c.ExecuteScalarAsync<long>(Command(CountPausedSql, null, null, ct)), RetrySafety.Always, ct));
}
