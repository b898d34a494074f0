using System.Collections;
using Xunit;

namespace PerfectQueue.Tests.Unit;

public sealed class QueueConfigTests
{
    [Fact]
    public void Defaults_are_the_originals()
    {
        var c = new QueueConfig();
        Assert.Equal(1, c.Processors);
        Assert.Equal(TimeSpan.FromSeconds(1), c.PollInterval);
        Assert.Equal(TimeSpan.FromDays(1), c.RetentionTime); // ours, not the original's 300 s (docs/configuration.md)
        Assert.Equal(TimeSpan.FromSeconds(2), c.TaskHeartbeatInterval);
        Assert.Equal(TimeSpan.FromSeconds(300), c.AliveTime);
        Assert.Equal(TimeSpan.FromSeconds(300), c.RetryWait);
        Assert.Equal(TimeSpan.FromSeconds(2), c.ChildKillInterval);
        Assert.Null(c.ChildGracefulKillLimit);
        Assert.Equal(TimeSpan.FromSeconds(2), c.ChildHeartbeatInterval);
        Assert.Equal(TimeSpan.FromSeconds(10), c.ChildHeartbeatLimit);
        Assert.Null(c.MaxAttempts);
        Assert.Equal(RetryBackoff.Fixed, c.RetryBackoff);
        Assert.Equal("perfectqueue", c.Table);
        c.Validate();
    }

    [Fact]
    public void Every_key_is_read_with_durations_in_seconds()
    {
        var c = QueueConfig.FromDictionary(new Hashtable
        {
            ["type"] = "rdb_compat", ["url"] = "sqlite:///q.db", ["table"] = "jobs", ["log"] = "/var/log/pq.log", ["log_format"] = "JSON",
            ["processors"] = 4, ["prefetch"] = 20, ["processor_type"] = "process", ["poll_interval"] = 0.5, ["retention_time"] = "600",
            ["task_heartbeat_interval"] = 3, ["alive_time"] = 30, ["retry_wait"] = 10, ["child_kill_interval"] = 1,
            ["child_graceful_kill_limit"] = 20, ["child_heartbeat_interval"] = 4, ["child_heartbeat_limit"] = 12,
            ["max_attempts"] = 5, ["retry_backoff"] = "exponential", ["retry_max_wait"] = 900, ["retry_jitter"] = 0.3,
            ["cleanup_interval"] = 120, ["compression"] = "gzip", ["auto_initialize"] = "false",
            ["notice_type"] = "ops.notice", ["fire_schedules"] = "false",
        });
        Assert.Equal(28, QueueConfig.Keys.Count);
        Assert.Equal(PerfectQueue.Workers.WorkerLogFormat.Json, c.LogFormat);
        Assert.Equal("ops.notice", c.NoticeType);
        Assert.False(c.FireSchedules);
        Assert.Equal("sqlite:///q.db", c.Url);
        Assert.Equal("jobs", c.Table);
        Assert.Equal(4, c.Processors);
        Assert.Equal(20, c.Prefetch);
        Assert.Equal("process", c.ProcessorType);
        Assert.Equal(TimeSpan.FromMilliseconds(500), c.PollInterval);
        Assert.Equal(TimeSpan.FromSeconds(600), c.RetentionTime);
        Assert.Equal(TimeSpan.FromSeconds(30), c.AliveTime);
        Assert.Equal(TimeSpan.FromSeconds(20), c.ChildGracefulKillLimit);
        Assert.Equal(5, c.MaxAttempts);
        Assert.Equal(RetryBackoff.Exponential, c.RetryBackoff);
        Assert.Equal(0.3, c.RetryJitter);
        Assert.Equal(DataCompression.Gzip, c.Compression);
        Assert.False(c.AutoInitialize);
    }

    [Fact]
    public void An_unknown_key_names_the_key_and_the_source()
    {
        var e = Assert.Throws<ConfigException>(() => QueueConfig.FromDictionary(new Hashtable { ["alive_tme"] = 30 }, "config/perfectqueue.yml"));
        Assert.Equal("alive_tme", e.ConfigKey);
        Assert.Contains("config/perfectqueue.yml", e.Message);
        Assert.Contains("alive_time", e.Message); // lists the known keys
    }

    [Theory]
    [InlineData("alive_time", "soon")]
    [InlineData("alive_time", 0)]
    [InlineData("processors", 0)]
    [InlineData("processors", 1.5)]
    [InlineData("processor_type", "fiber")]
    [InlineData("retry_backoff", "linear")]
    [InlineData("compression", "zip")]
    [InlineData("retry_jitter", 2)]
    [InlineData("max_attempts", 0)]
    [InlineData("retention_time", -1)]
    [InlineData("table", "my table")]
    [InlineData("type", "redis")]
    [InlineData("auto_initialize", "maybe")]
    public void A_bad_value_is_an_error_naming_its_key(string key, object value)
    {
        var e = Assert.Throws<ConfigException>(() => QueueConfig.FromDictionary(new Hashtable { [key] = value }, "test.yml"));
        Assert.Equal(key, e.ConfigKey);
        Assert.StartsWith("test.yml: " + key, e.Message);
    }

    [Fact]
    public void The_embedded_default_lives_in_the_users_local_data_folder()
    {
        var local = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
        Assert.Equal(Path.Combine(local, "PerfectQueue", "perfectqueue.db"), QueueConfig.EmbeddedDefaultPath);
        Assert.Equal(QueueConfig.SqliteUrl(QueueConfig.EmbeddedDefaultPath), new QueueConfig().EffectiveUrl);
    }

    [Fact]
    public void Open_validates_the_config()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open(new QueueConfig { Url = "sqlite:///x.db", AliveTime = TimeSpan.Zero }));
        Assert.Equal("alive_time", e.ConfigKey);
    }
}
