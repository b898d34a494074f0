using Dapper;
using Npgsql;

namespace PerfectQueue.Storage.Postgres;

// Schedules (<table>_schedules, schema version 4): the statements are ScheduleSql's, on the server's clock.
internal sealed partial class PostgresQueueStore : IScheduleStore
{
    private string SchedulesTable => _table + ScheduleSql.TableSuffix;
    private string QuotedSchedules => Quote(SchedulesTable);

    private string AddScheduleSql => ScheduleSql.Add(QuotedSchedules, Now) + " ON CONFLICT (schedule_name) DO NOTHING";
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
        return await Run(async c => await c.ExecuteAsync(AddScheduleSql, ScheduleSql.RowArgs(row)).ConfigureAwait(false) == 1,
            RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<bool> UpdateScheduleAsync(ScheduleRow row, bool keepNext, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => await c.ExecuteAsync(UpdateScheduleSql, ScheduleSql.RowArgs(row, keepNext)).ConfigureAwait(false) == 1,
            RetrySafety.Always, ct).ConfigureAwait(false); // the same values again land on the same state
    }

    public async Task<bool> RemoveScheduleAsync(string name, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        return await Run(async c => await c.ExecuteAsync(RemoveScheduleSql, ScheduleSql.NameArgs(name)).ConfigureAwait(false) == 1,
            RetrySafety.BeforeSent, ct).ConfigureAwait(false);
    }

    public async Task<(IReadOnlyList<ScheduleRow> Rows, long Now)> ListSchedulesAsync(bool withData, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        var now = await NowAsync(ct).ConfigureAwait(false);
        // A queue that could not be upgraded yet has no schedules table: it has no schedules (a missing queue table is still an error).
        var rows = await WorkersTableGuard.RunAsync(
            () => Run(async c => (IReadOnlyList<ScheduleRow>)(await c.QueryAsync<ScheduleRow>(withData ? ListSchedulesSql : ListScheduleTimesSql).ConfigureAwait(false)).AsList(), RetrySafety.Always, ct, checkTable: false),
            e => e is PostgresException { SqlState: PostgresErrorCodes.UndefinedTable },
            async () => (await TablesAsync(ct).ConfigureAwait(false)).Queue, NotInitialized, (IReadOnlyList<ScheduleRow>)[]).ConfigureAwait(false);
        return (rows, now);
    }

    public Task<byte[]?> GetScheduleDataAsync(string name, CancellationToken ct) => Run(c =>
        c.ExecuteScalarAsync<byte[]?>(ScheduleDataSql, ScheduleSql.NameArgs(name)), RetrySafety.Always, ct);

    // Safe to run again: a second try of an applied advance finds the next fire moved and changes nothing.
    public Task<bool> AdvanceScheduleAsync(ScheduleAdvance advance, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(AdvanceScheduleSql, ScheduleSql.AdvanceArgs(advance)).ConfigureAwait(false) == 1, RetrySafety.BeforeSent, ct);
}
