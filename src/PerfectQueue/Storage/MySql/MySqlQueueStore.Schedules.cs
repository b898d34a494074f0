using Dapper;
using MySqlConnector;

namespace PerfectQueue.Storage.MySql;

// Schedules (<table>_schedules, schema version 4): the statements are ScheduleSql's, on the server's clock.
internal sealed partial class MySqlQueueStore : IScheduleStore
{
    private string SchedulesTable => _table + ScheduleSql.TableSuffix;
    private string QuotedSchedules => Quote(SchedulesTable);

    private string AddScheduleSql => ScheduleSql.Add(QuotedSchedules, Now);
    private string UpdateScheduleSql => ScheduleSql.Update(QuotedSchedules, Now);
    private string RemoveScheduleSql => ScheduleSql.Remove(QuotedSchedules);
    private string ListSchedulesSql => ScheduleSql.List(QuotedSchedules, ScheduleSql.Columns(Quote));
    private string ListScheduleTimesSql => ScheduleSql.List(QuotedSchedules, ScheduleSql.Columns(Quote, data: false));
    private string ScheduleDataSql => ScheduleSql.Data(QuotedSchedules);
    private string AdvanceScheduleSql => ScheduleSql.Advance(QuotedSchedules, Now);

    private IEnumerable<(string Name, string Sql)> ScheduleStatements()
    {
        yield return ("schedule.add", AddScheduleSql);
        yield return ("schedule.update", UpdateScheduleSql);
        yield return ("schedule.remove", RemoveScheduleSql);
        yield return ("schedule.list", ListSchedulesSql);
        yield return ("schedule.list.without_data", ListScheduleTimesSql);
        yield return ("schedule.data", ScheduleDataSql);
        yield return ("schedule.advance", AdvanceScheduleSql);
    }

    // Not retried on an ambiguous connection loss: a second try would find its own row and report the name taken.
    public async Task<bool> AddScheduleAsync(ScheduleRow row, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        try
        {
            return await Run(async c => await c.ExecuteAsync(Command(AddScheduleSql, ScheduleSql.RowArgs(row), ct)).ConfigureAwait(false) == 1,
                RetrySafety.BeforeSent, ct).ConfigureAwait(false);
        }
        catch (MySqlException e) when (MySqlErrors.IsDuplicateKey(e.Number))
        {
            return false;
        }
    }

    // MySqlConnector reports rows matched, not changed (UseAffectedRows is off), so an update to the same values counts.
    public async Task<bool> UpdateScheduleAsync(ScheduleRow row, bool keepNext, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => await c.ExecuteAsync(Command(UpdateScheduleSql, ScheduleSql.RowArgs(row, keepNext), ct)).ConfigureAwait(false) == 1,
            RetrySafety.Always, ct).ConfigureAwait(false);
    }

    public async Task<bool> RemoveScheduleAsync(string name, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => await c.ExecuteAsync(Command(RemoveScheduleSql, ScheduleSql.NameArgs(name), ct)).ConfigureAwait(false) == 1,
            RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<(IReadOnlyList<ScheduleRow> Rows, long Now)> ListSchedulesAsync(bool withData, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        var now = await NowAsync(ct).ConfigureAwait(false);
        // A queue that could not be upgraded yet has no schedules table: it has no schedules (a missing queue table is still an error).
        var rows = await WorkersTableGuard.RunAsync(
            () => Run(async c => (IReadOnlyList<ScheduleRow>)(await c.QueryAsync<ScheduleRow>(Command(withData ? ListSchedulesSql : ListScheduleTimesSql, null, ct)).ConfigureAwait(false)).AsList(), RetrySafety.Always, ct, checkTable: false),
            e => e is MySqlException me && MySqlErrors.IsMissingTable(me.Number),
            async () => (await TablesAsync(ct).ConfigureAwait(false)).Queue, NotInitialized, (IReadOnlyList<ScheduleRow>)[]).ConfigureAwait(false);
        return (rows, now);
    }

    public Task<byte[]?> GetScheduleDataAsync(string name, CancellationToken ct) => Run(c =>
        c.ExecuteScalarAsync<byte[]?>(Command(ScheduleDataSql, ScheduleSql.NameArgs(name), ct)), RetrySafety.Always, ct);

    public Task<bool> AdvanceScheduleAsync(ScheduleAdvance advance, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(Command(AdvanceScheduleSql, ScheduleSql.AdvanceArgs(advance), ct)).ConfigureAwait(false) == 1, RetrySafety.BeforeSent, ct);
}
