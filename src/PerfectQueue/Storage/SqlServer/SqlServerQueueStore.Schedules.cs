using Dapper;
using Microsoft.Data.SqlClient;

namespace PerfectQueue.Storage.SqlServer;

// Schedules (<table>_schedules, schema version 4): the statements are ScheduleSql's, on the server's clock.
internal sealed partial class SqlServerQueueStore : IScheduleStore
{
    private string SchedulesTable => _table + ScheduleSql.TableSuffix;
    private string QuotedSchedules => Quote(SchedulesTable);

    private string AddScheduleSql => ScheduleSql.Add(QuotedSchedules, NowSql) + ";";
    private string UpdateScheduleSql => ScheduleSql.Update(QuotedSchedules, NowSql) + ";";
    private string RemoveScheduleSql => ScheduleSql.Remove(QuotedSchedules) + ";";
    private string ListSchedulesSql => ScheduleSql.List(QuotedSchedules, ScheduleSql.Columns(Quote)) + ";";
    private string ListScheduleTimesSql => ScheduleSql.List(QuotedSchedules, ScheduleSql.Columns(Quote, data: false)) + ";";
    private string ScheduleDataSql => ScheduleSql.Data(QuotedSchedules) + ";";
    private string AdvanceScheduleSql => ScheduleSql.Advance(QuotedSchedules, NowSql) + ";";

    // With sample parameters, for the T-SQL tests (every variable passed, every value used).
    private IEnumerable<(string Name, string Sql, object? Parameters)> ScheduleStatements()
    {
        yield return ("schedule.add", AddScheduleSql, ScheduleSql.RowArgs(ScheduleSql.SampleRow()));
        yield return ("schedule.update", UpdateScheduleSql, ScheduleSql.RowArgs(ScheduleSql.SampleRow()));
        yield return ("schedule.remove", RemoveScheduleSql, ScheduleSql.NameArgs("nightly"));
        yield return ("schedule.list", ListSchedulesSql, null);
        yield return ("schedule.list.without_data", ListScheduleTimesSql, null);
        yield return ("schedule.data", ScheduleDataSql, ScheduleSql.NameArgs("nightly"));
        yield return ("schedule.advance", AdvanceScheduleSql, ScheduleSql.AdvanceArgs(ScheduleSql.SampleAdvance()));
    }

    // Not retried on an ambiguous connection loss: a second try would find its own row and report the name taken.
    public async Task<bool> AddScheduleAsync(ScheduleRow row, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        try
        {
            return await Run(async c => await c.ExecuteAsync(Command(AddScheduleSql, ScheduleSql.RowArgs(row), null, ct)).ConfigureAwait(false) == 1,
                RetrySafety.BeforeSent, ct).ConfigureAwait(false);
        }
        catch (SqlException e) when (SqlServerErrors.IsDuplicateKey(SqlServerErrors.Numbers(e)))
        {
            return false;
        }
    }

    public Task<bool> UpdateScheduleAsync(ScheduleRow row, bool keepNext, CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
        await c.ExecuteAsync(Command(UpdateScheduleSql, ScheduleSql.RowArgs(row, keepNext), null, ct)).ConfigureAwait(false) == 1, RetrySafety.Always, ct));

    public Task<bool> RemoveScheduleAsync(string name, CancellationToken ct) => UpgradedAsync(ct, () => Run(async c =>
        await c.ExecuteAsync(Command(RemoveScheduleSql, ScheduleSql.NameArgs(name), null, ct)).ConfigureAwait(false) == 1, RetrySafety.BeforeSent, ct));

    public async Task<(IReadOnlyList<ScheduleRow> Rows, long Now)> ListSchedulesAsync(bool withData, CancellationToken ct)
    {
        await EnsureUpgradedAsync(ct).ConfigureAwait(false);
        var now = await NowAsync(ct).ConfigureAwait(false);
        // A queue that could not be upgraded yet has no schedules table: it has no schedules (a missing queue table is still an error).
        var rows = await WorkersTableGuard.RunAsync(
            () => Run(async c => (IReadOnlyList<ScheduleRow>)(await c.QueryAsync<ScheduleRow>(Command(withData ? ListSchedulesSql : ListScheduleTimesSql, null, null, ct)).ConfigureAwait(false)).AsList(), RetrySafety.Always, ct, checkTable: false),
            e => e is SqlException se && SqlServerErrors.IsMissingTable(SqlServerErrors.Numbers(se)),
            async () => (await TablesAsync(ct).ConfigureAwait(false)).Queue, NotInitialized, (IReadOnlyList<ScheduleRow>)[]).ConfigureAwait(false);
        return (rows, now);
    }

    public Task<byte[]?> GetScheduleDataAsync(string name, CancellationToken ct) => Run(c =>
        c.ExecuteScalarAsync<byte[]?>(Command(ScheduleDataSql, ScheduleSql.NameArgs(name), null, ct)), RetrySafety.Always, ct);

    public Task<bool> AdvanceScheduleAsync(ScheduleAdvance advance, CancellationToken ct) => Run(async c =>
        await c.ExecuteAsync(Command(AdvanceScheduleSql, ScheduleSql.AdvanceArgs(advance), null, ct)).ConfigureAwait(false) == 1, RetrySafety.BeforeSent, ct);
}
