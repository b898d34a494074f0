using Dapper;

namespace PerfectQueue.Storage.Sqlite;

// Schedules (<table>_schedules, schema version 4): the statements are ScheduleSql's, with the clock as @now.
internal sealed partial class SqliteQueueStore : IScheduleStore
{
    private string SchedulesTable => _table + ScheduleSql.TableSuffix;
    private string QuotedSchedules => Quote(SchedulesTable);

    private string AddScheduleSql => ScheduleSql.Add(QuotedSchedules, "@now") + " ON CONFLICT (schedule_name) DO NOTHING";
    private string UpdateScheduleSql => ScheduleSql.Update(QuotedSchedules, "@now");
    private string RemoveScheduleSql => ScheduleSql.Remove(QuotedSchedules);
    private string ListSchedulesSql => ScheduleSql.List(QuotedSchedules, ScheduleSql.Columns(Quote));
    private string ListScheduleTimesSql => ScheduleSql.List(QuotedSchedules, ScheduleSql.Columns(Quote, data: false));
    private string ScheduleDataSql => ScheduleSql.Data(QuotedSchedules);
    private string AdvanceScheduleSql => ScheduleSql.Advance(QuotedSchedules, "@now");

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

    // Dapper takes one object of parameters: the row's and the clock's together.
    private static DynamicParameters WithNow(object args, long now)
    {
        var p = new DynamicParameters(args);
        p.Add("now", now);
        return p;
    }

    public Task<bool> AddScheduleAsync(ScheduleRow row, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Write(ct, (c, now) => c.Execute(AddScheduleSql, WithNow(ScheduleSql.RowArgs(row), now)) == 1);
    });

    public Task<bool> UpdateScheduleAsync(ScheduleRow row, bool keepNext, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Write(ct, (c, now) => c.Execute(UpdateScheduleSql, WithNow(ScheduleSql.RowArgs(row, keepNext), now)) == 1);
    });

    public Task<bool> RemoveScheduleAsync(string name, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Write(ct, (c, _) => c.Execute(RemoveScheduleSql, ScheduleSql.NameArgs(name)) == 1);
    });

    public Task<(IReadOnlyList<ScheduleRow> Rows, long Now)> ListSchedulesAsync(bool withData, CancellationToken ct) => Run(ct, () =>
    {
        EnsureUpgraded(ct);
        return Read(c =>
        {
            var now = Now(c);
            var exists = TableExists(c, SchedulesTable);
            if (!exists && !TableExists(c, _table)) throw NotInitialized(null);
            // A queue that could not be upgraded yet has no schedules table: it has no schedules.
            IReadOnlyList<ScheduleRow> rows = exists ? c.Query<ScheduleRow>(withData ? ListSchedulesSql : ListScheduleTimesSql).AsList() : [];
            return (rows, now);
        }, checkTable: false);
    });

    public Task<byte[]?> GetScheduleDataAsync(string name, CancellationToken ct) => Run(ct, () =>
        Read(c => c.ExecuteScalar<byte[]?>(ScheduleDataSql, ScheduleSql.NameArgs(name))));

    public Task<bool> AdvanceScheduleAsync(ScheduleAdvance advance, CancellationToken ct) => Run(ct, () =>
        Write(ct, (c, now) => c.Execute(AdvanceScheduleSql, WithNow(ScheduleSql.AdvanceArgs(advance), now)) == 1));
}
