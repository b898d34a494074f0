using MySqlConnector;
using PerfectQueue.Tests.Conformance;
using Xunit;
using Xunit.Abstractions;

namespace PerfectQueue.Tests.MySql;

/// <summary>
/// The server in PQ_TEST_MYSQL is one the MySQL/MariaDB backend (issue 11, item 5) can run on: MariaDB 10.6 or
/// MySQL 8.0 or newer, <c>FOR UPDATE SKIP LOCKED</c> that really skips a row another transaction holds, and
/// <c>JSON_TABLE</c>. Skipped without a server, except under CI, where they fail.
/// </summary>
[Backend("mysql")]
public sealed class MySqlServerTests(ITestOutputHelper output)
{
    private static object? Scalar(MySqlConnection c, string sql, MySqlTransaction? tx = null)
    {
        using var cmd = new MySqlCommand(sql, c, tx);
        return cmd.ExecuteScalar();
    }

    private static void Exec(MySqlConnection c, string sql, MySqlTransaction? tx = null)
    {
        using var cmd = new MySqlCommand(sql, c, tx);
        cmd.ExecuteNonQuery();
    }

    private static List<long> Ids(MySqlConnection c, string sql, MySqlTransaction tx)
    {
        using var cmd = new MySqlCommand(sql, c, tx);
        using var r = cmd.ExecuteReader();
        var ids = new List<long>();
        while (r.Read()) ids.Add(r.GetInt64(0));
        return ids;
    }

    [BackendFact]
    public void The_server_is_MariaDB_10_6_or_MySQL_8_0_or_newer()
    {
        using var c = MySqlServer.Connect();
        var version = (string)Scalar(c, "SELECT VERSION()")!;
        output.WriteLine($"Server version: {version} (driver reports {c.ServerVersion})");
        var mariaDb = version.Contains("MariaDB", StringComparison.OrdinalIgnoreCase);
        var number = Version.Parse(System.Text.RegularExpressions.Regex.Match(version, @"^\d+\.\d+(\.\d+)?").Value);
        var minimum = mariaDb ? new Version(10, 6) : new Version(8, 0);
        Assert.True(number >= minimum, $"{(mariaDb ? "MariaDB" : "MySQL")} {version} is older than {minimum}, the oldest the backend supports (SKIP LOCKED, JSON_TABLE).");
        // The queue tables need transactions and row locks: InnoDB must be there and be the default.
        Assert.Equal("InnoDB", (string)Scalar(c, "SELECT @@default_storage_engine")!, ignoreCase: true);
    }

    [BackendFact]
    public void A_row_locked_FOR_UPDATE_by_one_connection_is_skipped_by_another_with_SKIP_LOCKED()
    {
        var table = "t_" + Guid.NewGuid().ToString("N")[..12];
        using var setup = MySqlServer.Connect();
        Exec(setup, $"CREATE TABLE `{table}` (id BIGINT NOT NULL PRIMARY KEY, state VARCHAR(16) NOT NULL) ENGINE=InnoDB");
        try
        {
            Exec(setup, $"INSERT INTO `{table}` (id, state) VALUES (1, 'ready'), (2, 'ready'), (3, 'ready')");
            var next = $"SELECT id FROM `{table}` WHERE state = 'ready' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";

            using var a = MySqlServer.Connect();
            using var b = MySqlServer.Connect();
            using var txA = a.BeginTransaction();
            Assert.Equal([1L], Ids(a, next, txA));

            using var txB = b.BeginTransaction();
            Assert.Equal([2L], Ids(b, next, txB));
            Assert.Equal([2L, 3L], Ids(b, $"SELECT id FROM `{table}` ORDER BY id FOR UPDATE SKIP LOCKED", txB));

            // The lock is real: without SKIP LOCKED the other connection waits on row 1 and times out (1205).
            Exec(b, "SET SESSION innodb_lock_wait_timeout = 1", txB);
            var wait = Assert.Throws<MySqlException>(() => Ids(b, $"SELECT id FROM `{table}` WHERE id = 1 FOR UPDATE", txB));
            Assert.Equal(MySqlErrorCode.LockWaitTimeout, wait.ErrorCode);

            // Once the first transaction ends, its row is there for the taking again.
            txA.Commit();
            using var txC = a.BeginTransaction();
            Assert.Equal([1L], Ids(a, next, txC));
            txC.Rollback();
            txB.Rollback();
        }
        finally
        {
            Exec(setup, $"DROP TABLE IF EXISTS `{table}`");
        }
    }

    [BackendFact]
    public void JSON_TABLE_turns_a_JSON_array_into_rows()
    {
        using var c = MySqlServer.Connect();
        using var cmd = new MySqlCommand(
            "SELECT j.id, j.name FROM JSON_TABLE(@doc, '$[*]' COLUMNS (id BIGINT PATH '$.id', name VARCHAR(32) PATH '$.name')) AS j ORDER BY j.id", c);
        cmd.Parameters.AddWithValue("@doc", """[{"id": 2, "name": "b"}, {"id": 1, "name": "ä"}]""");
        using var r = cmd.ExecuteReader();
        var rows = new List<(long, string)>();
        while (r.Read()) rows.Add((r.GetInt64(0), r.GetString(1)));
        Assert.Equal([(1L, "ä"), (2L, "b")], rows);
    }
}
