using System.Text.Json;
using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>Passwords never leave the engine in text: masked URLs, errors, and the queue's public configuration.</summary>
public sealed class SecretMaskingTests
{
    [Theory]
    // An unescaped '@' in the password: everything up to the last '@' before the host is the password.
    [InlineData("postgresql://pq:p@S3cret@host/db", "postgresql://pq:***@host/db")]
    [InlineData("postgresql://pq:p@S3@cret@host:5432/db?sslmode=require", "postgresql://pq:***@host:5432/db?sslmode=require")]
    [InlineData("sqlserver://sa:a/b@c@host,1433/db", "sqlserver://sa:***@host,1433/db")]
    [InlineData("sqlite://pq:S3cretA@host/x.db", "sqlite://pq:***@host/x.db")]
    [InlineData("postgresql://u@corp:S3cret@host/db", "postgresql://u@corp:***@host/db")]
    [InlineData("queue postgresql://pq:p@S3cret@host/db failed, see postgresql://x:y@h2/d", "queue postgresql://pq:***@host/db failed, see postgresql://x:***@h2/d")]
    // Nothing to mask: no password, or no user at all.
    [InlineData("postgresql://pq@host:5432/db", "postgresql://pq@host:5432/db")]
    [InlineData("postgresql://host:5432/db", "postgresql://host:5432/db")]
    [InlineData("sqlite:////tmp/a:b@c/x.db", "sqlite:////tmp/a:b@c/x.db")]
    public void A_password_is_masked_up_to_the_last_at_sign_before_the_host(string text, string masked) =>
        Assert.Equal(masked, UrlText.Mask(text));

    [Fact]
    public void A_sqlite_url_without_a_path_does_not_show_its_password()
    {
        var e = Assert.Throws<ConfigException>(() => Storage.Sqlite.SqliteBackend.PathFromUrl("sqlite://pq:S3cretA@host/x.db"));
        Assert.DoesNotContain("S3cretA", e.Message);
        Assert.Contains("sqlite://pq:***@host/x.db", e.Message);
    }

    [Fact]
    public void An_unparsable_url_does_not_show_its_password()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open("postgresql://pq:p@S3cretB@host/db"));
        Assert.DoesNotContain("S3cretB", e.Message);
    }

    [Fact]
    public void The_public_config_of_a_queue_is_masked_and_its_settings_are_not()
    {
        var path = Path.Combine(Path.GetTempPath(), $"pq-mask-{Guid.NewGuid():N}.db");
        try
        {
            using var q = Queue.Open(new QueueConfig { ConnectionString = $"Data Source={path};Password=S3cretC", Provider = "sqlite" });
            Assert.DoesNotContain("S3cretC", q.Config.ConnectionString);
            Assert.DoesNotContain("S3cretC", JsonSerializer.Serialize(q.Config));
            Assert.DoesNotContain("S3cretC", q.ToString());
            Assert.Contains("S3cretC", q.Settings.ConnectionString); // what the engine connects with
        }
        catch (InvalidOperationException e) when (e.Message.Contains("encryption", StringComparison.OrdinalIgnoreCase))
        {
            Assert.DoesNotContain("S3cretC", e.Message); // this SQLite build refuses passwords: nothing to open
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void A_url_password_stays_out_of_the_public_config()
    {
        // Opening a server queue does not connect (its schema is explicit), so no server is needed here.
        using var q = Queue.Open(new QueueConfig { Url = "postgresql://pq:p%40S3cretD@127.0.0.1:1/db" });
        Assert.Equal("postgresql://pq:***@127.0.0.1:1/db", q.Config.Url);
        Assert.Equal("postgresql://pq:***@127.0.0.1:1/db", q.Config.EffectiveUrl);
        Assert.DoesNotContain("S3cretD", JsonSerializer.Serialize(q.Config));
        Assert.Contains("S3cretD", q.Settings.Url);
    }

    [Fact]
    public void Retention_defaults_to_a_day_and_300_seconds_still_works()
    {
        Assert.Equal(TimeSpan.FromDays(1), new QueueConfig().RetentionTime);
        var original = QueueConfig.FromDictionary(new Dictionary<string, object> { ["retention_time"] = 300 });
        Assert.Equal(TimeSpan.FromSeconds(300), original.RetentionTime);
    }
}
