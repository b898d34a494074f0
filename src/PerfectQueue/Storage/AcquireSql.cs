namespace PerfectQueue.Storage;

/// <summary>
/// The parts of acquire that are the same in every dialect: how many candidates it looks at, and how it
/// ranks them. Dialects gather the candidates (their own locking) and lease what the ranking chose.
/// </summary>
/// <remarks>
/// Candidates are the <see cref="Scan"/> oldest due tasks (which fill a batch in due order) plus, for every
/// user with a max_running limit, the limited ones of that user's <see cref="Quota"/> oldest due tasks, found by
/// one bounded index seek per user over <c>&lt;table&gt;_user_due (user_name, due_at, id)</c> (a seek for limited
/// tasks only would walk every task of a user without a limit: docs/performance.md). Without the per-user part, a flood
/// from one user fills the whole window and others wait behind its backlog whatever their weight. Users
/// without a limit need no quota: their weight is 1, the lowest any eligible task has, so a task of theirs
/// beyond the window never outranks the window's older ones.
/// </remarks>
internal static class AcquireSql
{
    /// <summary>How many of the oldest due tasks acquire looks at for a batch of <paramref name="max"/>.</summary>
    public static int Scan(int max) => (max * 4) + 100;

    /// <summary>How many due tasks per limited user acquire looks at besides the oldest ones.</summary>
    public static int Quota(int max) => Math.Min(max, 10);

    /// <summary>
    /// Two CTEs, <c>ranked</c> and <c>chosen</c>, over a CTE <c>candidates(cid, cu, cmax, cdue, crun)</c>
    /// (id, user, max_running, due time, the user's running count). <c>chosen</c> keeps a user's first
    /// free-slots candidates in due order and numbers them (<c>ord</c>) by the original's weight
    /// max_running / (running + k) for the k-th task of a user, emptier users first, then due time.
    /// Tasks without a user or without a limit weigh 1.
    /// </summary>
    public const string RankCtes = """
        ranked AS (
            SELECT cid, cu, cmax, cdue, crun, ROW_NUMBER() OVER (PARTITION BY cu ORDER BY cdue, cid) AS k
            FROM candidates),
        chosen AS (
            SELECT cid, cu, cmax, cdue, ROW_NUMBER() OVER (ORDER BY
                CASE WHEN cmax IS NULL OR cu IS NULL THEN 1.0 ELSE CAST(cmax AS float) / (crun + k) END DESC,
                cdue, cid) AS ord
            FROM ranked
            WHERE cmax IS NULL OR cu IS NULL OR k <= cmax - crun)
        """;

    /// <summary>
    /// The first lease token of one acquire: random (an old holder's token never matches again), with the low 16
    /// bits zero, so each row leased gets this plus its rank (max is capped far below 65536 by the engine), which
    /// keeps tokens unique per row and gives back the order chosen. Positive, and below 2^62, so it fits every
    /// dialect's bigint with the ranks added.
    /// </summary>
    public static long NewToken() =>
        System.Security.Cryptography.RandomNumberGenerator.GetInt32(1, int.MaxValue) * 65536L
        + ((long)System.Security.Cryptography.RandomNumberGenerator.GetInt32(0, 1 << 15) << 47);

    /// <summary>How often acquire tries again when rows it ranked were taken by concurrent acquirers before it locked them.</summary>
    public const int Tries = 3;

    /// <summary>
    /// Runs one acquire (<paramref name="once"/>: the rows leased, and how many were ranked) and, when fewer
    /// rows were leased than were ranked and wanted, runs it again for the rest: concurrent acquirers took
    /// rows it chose first, and a fresh look ranks what is left, so due work is not reported as none.
    /// </summary>
    public static async Task<IReadOnlyList<TaskRow>> FillAsync(int max, Func<int, Task<(List<TaskRow> Leased, long Ranked)>> once)
    {
        if (max <= 0) return [];
        var rows = new List<TaskRow>();
        for (var attempt = 1; attempt <= Tries && rows.Count < max; attempt++)
        {
            var want = max - rows.Count;
            var (leased, ranked) = await once(want).ConfigureAwait(false);
            rows.AddRange(leased);
            if (leased.Count >= Math.Min(want, ranked)) break;
        }
        return rows;
    }
}
