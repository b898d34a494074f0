using System.Collections;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace PerfectQueue.Tests.Unit;

public sealed class TaskDataTests
{
    [Fact]
    public void Null_is_an_empty_object()
    {
        Assert.Empty(TaskData.ToJsonObject(null));
        Assert.Empty(TaskData.Decode(null));
        Assert.Empty(TaskData.Decode([]));
    }

    [Fact]
    public void Hashtables_nest_and_keep_their_values()
    {
        var data = new Hashtable
        {
            ["s"] = "x", ["i"] = 3, ["l"] = 5_000_000_000L, ["d"] = 1.25, ["b"] = false, ["n"] = null,
            ["when"] = new DateTimeOffset(2026, 11, 26, 1, 2, 3, TimeSpan.Zero), ["arr"] = new ArrayList { 1, "a" },
            ["inner"] = new Hashtable { ["deep"] = new Hashtable { ["x"] = 1 } }, ["day"] = DayOfWeek.Friday,
        };
        var o = TaskData.Decode(TaskData.Encode(data, DataCompression.None));
        Assert.Equal("x", (string)o["s"]!);
        Assert.Equal(3, (int)o["i"]!);
        Assert.Equal(5_000_000_000L, (long)o["l"]!);
        Assert.Equal(1.25, (double)o["d"]!);
        Assert.False((bool)o["b"]!);
        Assert.True(o.ContainsKey("n"));
        Assert.Null(o["n"]);
        Assert.Equal("2026-11-26T01:02:03.0000000+00:00", (string)o["when"]!);
        Assert.Equal("a", (string)o["arr"]![1]!);
        Assert.Equal(1, (int)o["inner"]!["deep"]!["x"]!);
        Assert.Equal("Friday", (string)o["day"]!);
    }

    [Fact]
    public void Json_text_and_plain_objects_are_accepted()
    {
        Assert.Equal(1, (int)TaskData.ToJsonObject("{\"a\":1}")["a"]!);
        Assert.Equal("v", (string)TaskData.ToJsonObject(new { k = "v" })["k"]!);
        var node = new JsonObject { ["z"] = 9 };
        var copy = TaskData.ToJsonObject(node);
        copy["z"] = 10;
        Assert.Equal(9, (int)node["z"]!); // the caller's object is not changed
    }

    [Theory]
    [InlineData("[1,2]", "an array")]
    [InlineData("42", "a single number value")]
    [InlineData("not json", "not valid JSON")]
    public void Data_that_is_not_an_object_is_refused_with_a_clear_error(string text, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => TaskData.ToJsonObject(text));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_reference_cycle_is_refused()
    {
        var h = new Hashtable();
        h["self"] = h;
        Assert.Contains("deeper than", Assert.Throws<ArgumentException>(() => TaskData.ToJsonObject(h)).Message);
    }

    [Fact]
    public void Gzip_is_detected_by_its_magic_bytes()
    {
        var data = new Hashtable { ["text"] = new string('a', 5000) };
        var zipped = TaskData.Encode(data, DataCompression.Gzip);
        var plain = TaskData.Encode(data, DataCompression.None);
        Assert.True(TaskData.IsCompressed(zipped));
        Assert.False(TaskData.IsCompressed(plain));
        Assert.True(zipped.Length < plain.Length / 10);
        Assert.True(JsonNode.DeepEquals(TaskData.Decode(zipped), TaskData.Decode(plain)));
        Assert.StartsWith("{", Encoding.UTF8.GetString(plain));
    }
}

[CollectionDefinition(nameof(TaskDataAdapterCollection), DisableParallelization = true)]
public sealed class TaskDataAdapterCollection { }

/// <summary>The value adapter is process-wide, so these run alone.</summary>
[Collection(nameof(TaskDataAdapterCollection))]
public sealed class TaskDataAdapterTests
{
    private sealed record Wrapper(object Inner);

    [Fact]
    public void A_hosts_adapter_unwraps_its_values_at_every_depth()
    {
        TaskData.ValueAdapter = v => v is Wrapper w ? w.Inner : v;
        try
        {
            var data = new Wrapper(new Hashtable { ["a"] = new Wrapper("x"), ["list"] = new ArrayList { new Wrapper(2) } });
            var o = TaskData.ToJsonObject(data);
            Assert.Equal("x", (string)o["a"]!);
            Assert.Equal(2, (int)o["list"]![0]!);
        }
        finally
        {
            TaskData.ValueAdapter = null;
        }
    }
}
