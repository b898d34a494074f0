using Xunit;

namespace PerfectQueue.Tests.Unit;

public sealed class QueueConfigFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pq-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void The_originals_yaml_layout_with_environments_is_read()
    {
        var path = Write("pq.yml", "development:\n  url: sqlite:///dev.db\nproduction:\n  url: postgresql://pq:pw@db1/jobs\n  table: jobs\n  alive_time: 600\n  max_attempts: 10\n");
        var production = QueueConfigFile.Load(path, "production");
        Assert.Equal("postgresql://pq:pw@db1/jobs", production.Url);
        Assert.Equal("jobs", production.Table);
        Assert.Equal(TimeSpan.FromSeconds(600), production.AliveTime);
        Assert.Equal(10, production.MaxAttempts);
        // development is the default environment, as in the original
        Assert.Equal(QueueConfig.SqliteUrl(Path.Combine(_dir, "dev.db")), QueueConfigFile.Load(path).Url);
    }

    [Fact]
    public void Json_and_flat_files_are_read_too()
    {
        Assert.Equal(TimeSpan.FromSeconds(30), QueueConfigFile.Load(Write("pq.json", """{ "staging": { "alive_time": 30 } }"""), "staging").AliveTime);
        Assert.Equal("q2", QueueConfigFile.Load(Write("flat.yml", "table: q2\nretry_wait: 5\n")).Table);
    }

    [Fact]
    public void A_relative_sqlite_path_is_relative_to_the_file_and_an_absolute_one_is_kept()
    {
        Assert.Equal(QueueConfig.SqliteUrl(Path.Combine(_dir, "sub/q.db")), QueueConfigFile.Load(Write("a.yml", "development:\n  url: sqlite:///sub/q.db\n")).Url);
        Assert.Equal("sqlite:////var/lib/q.db", QueueConfigFile.Load(Write("b.yml", "development:\n  url: sqlite:////var/lib/q.db\n")).Url);
    }

    [Fact]
    public void A_relative_log_path_is_relative_to_the_file_and_an_absolute_one_is_kept()
    {
        Assert.Equal(Path.Combine(_dir, "logs/worker.log"), QueueConfigFile.Load(Write("l.yml", "development:\n  log: logs/worker.log\n")).Log);
        Assert.Equal("/var/log/pq.log", QueueConfigFile.Load(Write("m.yml", "development:\n  log: /var/log/pq.log\n")).Log);
    }

    [Fact]
    public void A_missing_environment_names_the_ones_the_file_has()
    {
        var path = Write("envs.yml", "development:\n  table: a\nproduction:\n  table: b\n");
        var e = Assert.Throws<ConfigException>(() => QueueConfigFile.Load(path, "staging"));
        Assert.Contains("staging", e.Message);
        Assert.Contains("development, production", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Bad_yaml_and_a_bad_key_name_the_file_and_the_place()
    {
        var broken = Write("broken.yml", "development:\n  url: [unclosed\n");
        Assert.Contains("broken.yml", Assert.Throws<ConfigException>(() => QueueConfigFile.Load(broken)).Message);
        var badKey = Write("badkey.yml", "production:\n  alive_tme: 30\n");
        var e = Assert.Throws<ConfigException>(() => QueueConfigFile.Load(badKey, "production"));
        Assert.Equal("alive_tme", e.ConfigKey);
        Assert.Contains("badkey.yml [production]", e.Message);
        Assert.Throws<ConfigException>(() => QueueConfigFile.Load(Path.Combine(_dir, "missing.yml")));
    }
}
