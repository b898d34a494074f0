using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// Bad and extreme input on every backend (issue 9): messages a database cannot store, the longest keys, types
/// and users, refused names, duplicate JSON names, rows that cannot be read, gzip kept by UpdateData, and
/// Retry(TimeSpan). Each test passes only when every backend behaves the same.
/// </summary>
public abstract class InputConformance(IBackendTarget target) : BackendSuite(target)
{

    private const string Emoji = "\U0001F600"; // 4 bytes in UTF-8, 2 UTF-16 code units

    // Messages PostgreSQL refused before (H2), and what is stored instead.
    public static TheoryData<string, string> Messages()
    {
        var cut = new string('a', TaskText.MaxMessageLength - 2) + Emoji + "tail"; // the limit falls inside the pair
        return new()
        {
            { "nul", "before\0after" },
            { "lone high surrogate", "x\uD83Dy" },
            { "lone low surrogate", "x\uDE00y" },
            { "escape sequence", "red \u001b[31m text" },
            { "cut inside a surrogate pair", cut },
        };
    }

    private static string Expected(string message) => message switch
    {
        "before\0after" => "before\uFFFDafter",
        "x\uD83Dy" or "x\uDE00y" => "x\uFFFDy",
        "red \u001b[31m text" => "red \uFFFD[31m text",
        _ => new string('a', TaskText.MaxMessageLength - 2) + "…", // the pair does not fit with the ellipsis: cut before it
    };

    [BackendFact]
    public void A_finish_with_an_unstorable_message_is_stored_once_with_the_message_made_storable()
    {
        var q = Open();
        foreach (var message in Messages().Select(row => (string)row[1]))
        {
            var key = "f" + Guid.NewGuid().ToString("N")[..8];
            q.Submit(key, "t");
            var task = q.Poll()!;
            Assert.Equal(key, task.Key);
            task.Finish(message); // threw (PostgreSQL) and left the task to run again
            var info = q[key].GetInfo();
            Assert.Equal(TaskState.Finished, info.Status);
            Assert.Equal(TaskOutcome.Succeeded, info.Outcome);
            Assert.Equal(Expected(message), info.Message);
            Assert.Equal(1, info.Attempts);
            Assert.True(info.Message!.Length <= TaskText.MaxMessageLength);
        }
        Assert.Null(q.Poll()); // nothing left to run again
    }

    [BackendFact]
    public void A_retry_with_an_unstorable_message_is_stored_and_the_next_attempt_sees_it()
    {
        var q = Open();
        foreach (var message in Messages().Select(row => (string)row[1]))
        {
            var key = "r" + Guid.NewGuid().ToString("N")[..8];
            q.Submit(key, "t");
            var task = q.Poll()!;
            Assert.True(task.Retry(message, TimeSpan.Zero));
            Assert.Equal(Expected(message), q[key].GetInfo().Message);
            var again = q.Poll()!;
            Assert.Equal(key, again.Key);
            Assert.Equal(2, again.Attempt);
            Assert.Equal(Expected(message), again.LastMessage);
            again.Finish();
            Assert.Equal(TaskState.Finished, q[key].GetInfo().Status);
        }
    }

    [BackendFact]
    public void A_gave_up_message_and_a_force_finish_message_are_made_storable_too()
    {
        var q = Open(c => c.MaxAttempts = 1);
        q.Submit("g", "t");
        Assert.False(q.Poll()!.Retry("boom\0" + new string('x', TaskText.MaxMessageLength)));
        var info = q["g"].GetInfo();
        Assert.Equal(TaskOutcome.Failed, info.Outcome);
        Assert.StartsWith("gave up after 1 attempt: boom\uFFFDxxx", info.Message);
        Assert.Equal(TaskText.MaxMessageLength, info.Message!.Length);
        Assert.EndsWith("…", info.Message);

        q.Submit("ff", "t");
        q["ff"].ForceFinish("stop\0" + Emoji[..1]);
        Assert.Equal("stop\uFFFD\uFFFD", q["ff"].GetInfo().Message);
    }

    // ---- keys, types and users ----

    [BackendFact]
    public void The_longest_key_type_and_user_of_4_byte_characters_submit_acquire_list_and_finish()
    {
        var q = Open();
        var longest = string.Concat(Enumerable.Repeat(Emoji, TaskText.MaxNameLength / 2));
        Assert.Equal(TaskText.MaxNameLength, longest.Length);
        var key = longest;
        var type = "t" + longest[2..] + "y";      // distinct, still 256 code units
        var user = "u" + longest[2..] + "s";
        Assert.Equal(TaskText.MaxNameLength, type.Length);
        q.Submit(key, type, new { n = 1 }, new SubmitOptions { User = user, MaxRunning = 2 });
        // A user past PostgreSQL's index row limit made every acquire of the queue fail (H3).
        var task = q.Poll()!;
        Assert.Equal(key, task.Key);
        Assert.Equal(type, task.Type);
        Assert.Equal(user, task.User);
        Assert.Single(q.List(new TaskFilter { Keys = [key], Types = [type], Users = [user] }));
        Assert.Single(q.List(new TaskFilter { Users = [user], Statuses = [TaskState.Running] }));
        Assert.Equal(TaskState.Running, q.Summarize().Counts.Single().State);
        task.Finish("done");
        Assert.Equal(TaskState.Finished, q[key].GetInfo().Status);
    }

    public static TheoryData<string, string, string?, string> BadNames() => new()
    {
        // field, key, type, user -> the field the error must name
        { string.Concat(Enumerable.Repeat(Emoji, 128)) + "a", "t", null, "key" },
        { "k", "t" + new string('y', 256), null, "type" },
        { "k", "t", new string('u', 257), "user" },
        { "k\0", "t", null, "key" },
        { "k", "t\0", null, "type" },
        { "k", "t", "u\0", "user" },
        { "k\n", "t", null, "key" },
        { "k", "t\u001b", null, "type" },
        { "k", "t", "u\t1", "user" },
        { "k\uD800", "t", null, "key" },
        { "k", "t", "u\uDC00", "user" },
        { " k", "t", null, "key" },
        { "k ", "t", null, "key" },
        { "k", "t ", null, "type" },
        { "k", "t", " ", "user" },
        { "k", "t", "u ", "user" },
        { "   ", "t", null, "key" },
        { "k", " ", null, "type" },
    };

    [BackendFact]
    public void Bad_keys_types_and_users_are_refused_naming_the_field_and_nothing_is_stored()
    {
        var q = Open();
        foreach (var row in BadNames())
        {
            var (key, type, user, field) = ((string)row[0], (string)row[1], (string?)row[2], (string)row[3]);
            var submission = new TaskSubmission(key, type, null, new SubmitOptions { User = user });
            var e = Assert.ThrowsAny<ArgumentException>(() => q.Validate(submission));
            Assert.Equal(field, e.ParamName);
            Assert.Contains(field, e.Message);
            // In a batch, the engine refuses the whole batch before sending anything.
            Assert.ThrowsAny<ArgumentException>(() => q.SubmitMany([new("good1", "t"), submission, new("good2", "t")]));
            Assert.Empty(q.List());
        }
        var tooLong = Assert.ThrowsAny<ArgumentException>(() => q.Submit("k", "t", options: new SubmitOptions { User = new string('u', 300) }));
        Assert.Contains("300", tooLong.Message);
        Assert.Contains("256", tooLong.Message);
    }

    [BackendFact]
    public void A_lookup_by_a_value_no_task_can_have_finds_nothing_and_never_lists_everything()
    {
        var q = Open();
        q.Submit("a", "t", options: new SubmitOptions { User = "u" });
        Assert.Empty(q.List(new TaskFilter { Keys = ["x\0"] }));
        Assert.Empty(q.List(new TaskFilter { Types = ["t\uD800"] }));
        Assert.Empty(q.List(new TaskFilter { Users = ["\0"] }));
        Assert.Single(q.List(new TaskFilter { Keys = ["a", "x\0"] }));
        Assert.Single(q.List(new TaskFilter { Keys = [], Users = [] })); // an empty filter is no filter, as before
        Assert.Throws<ArgumentException>(() => q["x\0"].Exists());
    }

    // ---- data ----

    [BackendFact]
    public void Json_text_with_a_repeated_name_is_refused_at_submit()
    {
        var q = Open();
        var e = Assert.ThrowsAny<ArgumentException>(() => q.Submit("d", "t", """{"a":1,"a":2}"""));
        Assert.Equal("data", e.ParamName);
        Assert.Contains("'a'", e.Message);
        Assert.ThrowsAny<ArgumentException>(() => q.Submit("d", "t", """{"o":{"b":1,"b":2}}"""));
        Assert.ThrowsAny<ArgumentException>(() => q.Submit("d", "t", """{"s":"\ud800"}"""));
        Assert.Empty(q.List());
    }

    [BackendFact]
    public void A_row_whose_data_cannot_be_read_still_lists_and_can_be_acquired_and_finished()
    {
        var q = Open();
        q.Submit("before", "t", new { n = 1 });
        q.Submit("bad", "t", new { n = 2 });
        q.Submit("after", "t", new { n = 3 });
        // Old data: written before submit refused repeated names.
        SetRawData(q, "bad", Encoding.UTF8.GetBytes("""{"a":1,"a":2}"""));

        var listed = q.List();
        Assert.Equal(["before", "bad", "after"], listed.Select(t => t.Key));
        var bad = listed[1];
        Assert.NotNull(bad.DataError);
        Assert.Contains("'a'", bad.DataError);
        Assert.Empty(bad.Data);
        Assert.Null(listed[0].DataError);
        Assert.Equal(3, (int)listed[2].Data["n"]!);
        Assert.NotNull(q["bad"].GetInfo().DataError);

        var tasks = q.PollMulti(3);
        var held = tasks.Single(t => t.Key == "bad");
        var error = Assert.Throws<TaskDataException>(() => held.Data);
        Assert.Equal("bad", error.Key);
        held.Finish("data unreadable");
        Assert.Equal(TaskState.Finished, q["bad"].GetInfo().Status);
    }

    [BackendFact]
    public void Update_data_of_a_gzip_task_keeps_it_gzip()
    {
        var q = Open(); // the queue's default is no compression
        q.Submit("z", "t", new { n = 1 }, new SubmitOptions { Compression = DataCompression.Gzip });
        Assert.True(q["z"].GetInfo().Compressed);
        var task = q.Poll()!;
        task.UpdateData(new { n = 2, text = new string('x', 200) });
        var info = q["z"].GetInfo();
        Assert.True(info.Compressed);
        Assert.Equal(2, (int)info.Data["n"]!);
        task.Release();
        Assert.Equal(2, (int)q.Poll()!.Data["n"]!);
    }

    // ---- Retry(TimeSpan) ----

    [BackendFact]
    public void Retry_with_only_a_delay_waits_that_delay_and_keeps_the_last_message()
    {
        var q = Open(); // retry_wait is 300 s by default
        q.Submit("w", "t");
        Assert.True(q.Poll()!.Retry("first error", TimeSpan.Zero));
        var before = q.Now();
        Assert.True(q.Poll()!.Retry(TimeSpan.FromSeconds(2)));
        var info = q["w"].GetInfo();
        Assert.Equal(TaskState.Scheduled, info.Status);
        Assert.InRange(info.Timeout!.Value, before + TimeSpan.FromSeconds(1), before + TimeSpan.FromSeconds(60));
        Assert.Equal("first error", info.Message);
    }

    // ---- raw rows ----

    private static void SetRawData(Queue q, string key, byte[] data)
    {
        var hex = Convert.ToHexString(data);
        var literal = q.Store switch
        {
            Storage.Sqlite.SqliteQueueStore => $"X'{hex}'",
            Storage.Postgres.PostgresQueueStore => $"'\\x{hex}'::bytea",
            _ => $"0x{hex}",
        };
        new StoreHook(q).Sql($"UPDATE \"{q.Config.Table}\" SET data = {literal} WHERE task_key = '{key.Replace("'", "''")}'");
    }
}
