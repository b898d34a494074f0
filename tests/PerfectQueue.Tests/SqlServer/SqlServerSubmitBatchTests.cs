using System.Text.Json;
using PerfectQueue.Storage;
using PerfectQueue.Storage.SqlServer;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

/// <summary>SQL Server submit batches are bounded by their size, not only by count (issue 11); no server needed.</summary>
public sealed class SqlServerSubmitBatchTests
{
    private static NewTaskRow Row(int i, int dataBytes) => new($"k{i}", "t", "u", new byte[dataBytes], null, null, null);

    [Fact]
    public void Five_hundred_one_megabyte_tasks_travel_in_batches_far_below_a_billion_characters()
    {
        var rows = Enumerable.Range(0, 500).Select(i => Row(i, 1024 * 1024)).ToList();
        var batches = SqlServerQueueStore.SplitBySize(rows, SqlServerQueueStore.MaxBatchChars);
        Assert.Equal(Enumerable.Range(0, 500), batches.SelectMany(b => b));                 // every row once, in order
        Assert.All(batches, b => Assert.True(b.Sum(i => SqlServerQueueStore.JsonChars(rows[i])) <= SqlServerQueueStore.MaxBatchChars));
        Assert.InRange(batches.Count, 30, 40);                                               // ~2 M characters a row, 32 M a batch
    }

    [Fact]
    public void Small_tasks_stay_in_one_batch_and_a_row_bigger_than_the_limit_goes_alone()
    {
        var small = Enumerable.Range(0, 1000).Select(i => Row(i, 100)).ToList();
        Assert.Single(SqlServerQueueStore.SplitBySize(small, SqlServerQueueStore.MaxBatchChars));

        var mixed = new List<NewTaskRow> { Row(0, 10), Row(1, 5000), Row(2, 10), Row(3, 10) };
        var batches = SqlServerQueueStore.SplitBySize(mixed, 2000);
        Assert.Equal([[0], [1], [2, 3]], batches);
        Assert.Empty(SqlServerQueueStore.SplitBySize([], 2000));
    }

    [Fact]
    public void The_size_estimate_is_never_below_the_json_actually_sent()
    {
        // The same shape SubmitArgs serializes: numbers as strings, data as 0x-prefixed hex.
        var rows = new[]
        {
            new NewTaskRow("key-ü\"\\", "backup", "team-a", [0x7B, 0x7D, 0x00, 0xFF], 2, 1_767_225_600_000, 1500, 31_536_000_000),
            new NewTaskRow(new string('k', 256), new string('t', 256), null, new byte[100_000], null, null, null),
        };
        foreach (var row in rows)
        {
            var json = JsonSerializer.Serialize(new
            {
                key = row.Key, type = row.Type, user = row.User,
                data = row.Data is null ? null : "0x" + Convert.ToHexString(row.Data),
                maxRunning = row.MaxRunning?.ToString(), runAt = row.RunAtMs?.ToString(), delay = row.DelayMs?.ToString(),
                timeout = row.TimeoutMs?.ToString(),
            });
            Assert.True(SqlServerQueueStore.JsonChars(row) >= json.Length, $"estimated {SqlServerQueueStore.JsonChars(row)}, sent {json.Length}");
        }
    }
}
