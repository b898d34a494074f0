using System.Text;
using Npgsql;
using PerfectQueue.Storage;
using PerfectQueue.Storage.Postgres;
using PerfectQueue.Storage.Sqlite;
using PerfectQueue.Storage.SqlServer;
using PerfectQueue.Tests.Conformance;
using Microsoft.Data.Sqlite;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>The shared text rules (TaskText), data limits, value-error classification and the message fallback.</summary>
public sealed class TaskTextTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    [Fact]
    public void A_storable_message_comes_back_as_it_was()
    {
        const string message = "line 1\n\tline 2\r\n😀 é";
        Assert.Same(message, TaskText.CleanMessage(message));
        Assert.Null(TaskText.CleanMessage(null));
    }

    [Fact]
    public void Nul_lone_surrogates_and_control_characters_become_the_replacement_character()
    {
        // Not [InlineData]: the test runner would mangle unpaired surrogates when it serializes the cases.
        (string Input, string Stored)[] cases =
        [
            ("a\0b", "a\uFFFDb"),
            ("a\uD800b", "a\uFFFDb"),
            ("a\uDC00", "a\uFFFD"),
            ("\uDC00\uD800", "\uFFFD\uFFFD"),
            ("x\uD83D", "x\uFFFD"),
            ("bell\a del\u007f c1\u0085", "bell\uFFFD del\uFFFD c1\uFFFD"),
        ];
        foreach (var (input, stored) in cases) Assert.Equal(stored, TaskText.CleanMessage(input));
    }

    [Fact]
    public void A_long_message_is_cut_on_a_text_element_boundary()
    {
        // "e" + combining acute accent is one text element: the cut never separates them.
        var combining = new string('a', TaskText.MaxMessageLength - 2) + "e\u0301" + "zzz";
        Assert.Equal(new string('a', TaskText.MaxMessageLength - 2) + "…", TaskText.CleanMessage(combining));

        var pairs = string.Concat(Enumerable.Repeat("😀", TaskText.MaxMessageLength));
        var cutPairs = TaskText.CleanMessage(pairs)!;
        Assert.True(cutPairs.Length <= TaskText.MaxMessageLength);
        Assert.EndsWith("😀…", cutPairs);
        Assert.Equal(cutPairs.Length, Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(cutPairs)).Length); // valid UTF-16
        Assert.DoesNotContain('\uFFFD', cutPairs);

        var exact = new string('b', TaskText.MaxMessageLength);
        Assert.Same(exact, TaskText.CleanMessage(exact));
    }

    [Fact]
    public void The_fallback_note_is_printable_ascii()
    {
        var note = TaskText.UnstorableNote(new InvalidOperationException("no 😀 in LATIN1\0" + new string('x', 500)));
        Assert.StartsWith("(message could not be stored: InvalidOperationException: no ?? in LATIN1?", note);
        Assert.All(note, c => Assert.InRange(c, ' ', '~'));
        Assert.True(note.Length < 300);
    }

    [Fact]
    public void Names_follow_one_rule_set()
    {
        (string Name, string? Problem)[] cases =
        [
            ("nightly-2026-11-26", null), ("a b", null), ("😀", null),
            ("", "empty"), ("a\0", "U+0000"), ("a\nb", "U+000A"), ("a\uD800", "unpaired surrogate U+D800"),
            ("\uDC00a", "unpaired surrogate U+DC00"), (" a", "white space"), ("a\u00A0", "white space"),
            (new string('k', 257), "257"),
        ];
        foreach (var (name, problem) in cases)
        {
            var found = TaskText.NameProblem("key", name);
            if (problem is null) Assert.Null(found);
            else Assert.Contains(problem, found);
        }
        Assert.Null(TaskText.NameProblem("key", new string('k', 256)));
    }

    [Fact]
    public void Data_over_the_size_limit_is_refused_and_at_the_limit_accepted()
    {
        // {"s":"..."} is 8 bytes around the string.
        var fits = new string('x', TaskData.MaxDataBytes - 8);
        Assert.Equal(TaskData.MaxDataBytes, TaskData.Encode(new Dictionary<string, object> { ["s"] = fits }, DataCompression.None).Length);
        var e = Assert.Throws<ArgumentException>(() => TaskData.Encode(new Dictionary<string, object> { ["s"] = fits + "x" }, DataCompression.Gzip));
        Assert.Equal("data", e.ParamName);
        Assert.Contains("16 MiB", e.Message);
    }

    [Fact]
    public void Stored_data_that_cannot_be_read_is_a_task_data_error()
    {
        Assert.Throws<TaskDataException>(() => TaskData.Decode(Encoding.UTF8.GetBytes("""{"a":1,"a":2}""")));
        Assert.Throws<TaskDataException>(() => TaskData.Decode(Encoding.UTF8.GetBytes("""{"a":"\udc00"}""")));
        Assert.Throws<TaskDataException>(() => TaskData.Decode([0x1F, 0x8B, 1, 2, 3]));
        Assert.Throws<TaskDataException>(() => TaskData.Decode(Encoding.UTF8.GetBytes("[1]")));
    }

    [Fact]
    public void Each_store_knows_its_value_errors()
    {
        using var pg = new PostgresQueueStore("Host=127.0.0.1", "t", "pg");
        Assert.True(pg.IsValueError(new PostgresException("invalid byte sequence", "ERROR", "ERROR", "22021")));
        Assert.True(pg.IsValueError(new PostgresException("no equivalent in LATIN1", "ERROR", "ERROR", "22P05")));
        Assert.True(pg.IsValueError(new EncoderFallbackException("Unable to translate")));
        Assert.False(pg.IsValueError(new PostgresException("deadlock", "ERROR", "ERROR", "40P01")));
        Assert.False(pg.IsValueError(new TimeoutException()));

        var config = sqlite.NewConfig();
        using var lite = new SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table);
        Assert.True(lite.IsValueError(new SqliteException("string or blob too big", 18)));
        Assert.False(lite.IsValueError(new SqliteException("database is locked", 5)));

        Assert.True(SqlServerErrors.IsValueError([8152]));
        Assert.True(SqlServerErrors.IsValueError([2628]));
        Assert.False(SqlServerErrors.IsValueError([1205]));
    }

    [Fact]
    public void A_finish_whose_message_the_database_refuses_is_written_again_without_it()
    {
        var config = sqlite.NewConfig();
        var (store, calls) = InterceptingStore.Wrap(new SqliteQueueStore(Storage.Sqlite.SqliteBackend.PathFromUrl(config.Url!), config.Table),
            (method, args, inner) => method.Name == nameof(IQueueStore.ApplyAsync)
                && ((IReadOnlyList<LeaseWrite>)args![0]!).Any(w => w.Message is { } m && !m.StartsWith("(message could not be stored", StringComparison.Ordinal))
                ? Task.FromException<IReadOnlySet<long>>(new SqliteException("string or blob too big", 18))
                : null);
        using var q = Queue.OpenWith(config, store);
        q.Initialize();
        q.Submit("k", "t");
        q.Submit("r", "t");
        q.Poll()!.Finish("refused");
        var info = q["k"].GetInfo();
        Assert.Equal(TaskOutcome.Succeeded, info.Outcome);
        Assert.StartsWith("(message could not be stored: SqliteException: string or blob too big", info.Message);
        Assert.True(q.Poll()!.Retry("refused too", TimeSpan.FromHours(1)));
        Assert.StartsWith("(message could not be stored", q["r"].GetInfo().Message);
        Assert.Equal(TaskState.Scheduled, q["r"].GetInfo().Status);
        Assert.Equal(4, calls.Count(nameof(IQueueStore.ApplyAsync)));
    }
}
