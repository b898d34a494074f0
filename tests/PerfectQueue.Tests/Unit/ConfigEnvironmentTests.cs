using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>Which environment of a config file is read when -Environment is not given, and what is said about it.</summary>
public sealed class ConfigEnvironmentTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pq-env-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static Func<string, string?> Variables(params (string Name, string Value)[] set) =>
        name => set.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void The_parameter_wins_then_PERFECTQUEUE_ENVIRONMENT_then_RAILS_ENV_then_development()
    {
        var both = Variables(("PERFECTQUEUE_ENVIRONMENT", "staging"), ("RAILS_ENV", "production"));
        Assert.Equal(("qa", "from -Environment"), QueueConfigFile.ChooseEnvironment("qa", both));
        Assert.Equal(("staging", "from $PERFECTQUEUE_ENVIRONMENT"), QueueConfigFile.ChooseEnvironment(null, both));
        Assert.Equal(("production", "from $RAILS_ENV"), QueueConfigFile.ChooseEnvironment(null, Variables(("RAILS_ENV", "production"))));
        Assert.Equal("production", QueueConfigFile.ChooseEnvironment(null, Variables(("PERFECTQUEUE_ENVIRONMENT", "  "), ("RAILS_ENV", "production"))).Name); // blank is unset
        var (name, why) = QueueConfigFile.ChooseEnvironment(null, Variables());
        Assert.Equal("development", name);
        Assert.Contains("default", why);
    }

    [Fact]
    public void The_file_is_read_for_the_chosen_environment_and_the_choice_is_reported()
    {
        var path = Write("pq.yml", "development:\n  table: dev\nstaging:\n  table: stage\n");
        var (config, environment, why) = QueueConfigFile.LoadChoosingEnvironment(path, null, Variables(("PERFECTQUEUE_ENVIRONMENT", "staging")));
        Assert.Equal("stage", config.Table);
        Assert.Equal("staging", environment);
        Assert.Equal("from $PERFECTQUEUE_ENVIRONMENT", why);
        Assert.Equal("dev", QueueConfigFile.LoadChoosingEnvironment(path, "development", Variables(("PERFECTQUEUE_ENVIRONMENT", "staging"))).Config.Table);
        Assert.Equal("dev", QueueConfigFile.LoadChoosingEnvironment(path, null, Variables()).Config.Table);
    }

    [Fact]
    public void A_variable_naming_a_missing_environment_is_an_error_that_names_the_variable_and_the_files_environments()
    {
        var path = Write("pq.yml", "development:\n  table: dev\nproduction:\n  table: prod\n");
        var e = Assert.Throws<ConfigException>(() => QueueConfigFile.LoadChoosingEnvironment(path, null, Variables(("RAILS_ENV", "test"))));
        Assert.Contains("'test'", e.Message);
        Assert.Contains("from $RAILS_ENV", e.Message);
        Assert.Contains("development, production", e.Message);
        Assert.Contains("PERFECTQUEUE_ENVIRONMENT", e.Message);
    }

    [Fact]
    public void A_flat_file_ignores_the_variables_but_not_the_parameter()
    {
        var path = Write("flat.yml", "table: q2\nretry_wait: 5\n");
        var (config, environment, why) = QueueConfigFile.LoadChoosingEnvironment(path, null, Variables(("PERFECTQUEUE_ENVIRONMENT", "production")));
        Assert.Equal("q2", config.Table);
        Assert.Equal("(none)", environment);
        Assert.Equal("the file has no environments", why);
        Assert.Throws<ConfigException>(() => QueueConfigFile.LoadChoosingEnvironment(path, "production", Variables()));
    }

    [Fact]
    public void Environments_lists_the_sections_and_nothing_for_a_flat_broken_or_missing_file()
    {
        Assert.Equal(["development", "production"], QueueConfigFile.Environments(Write("e.yml", "development:\n  table: a\nproduction:\n  table: b\n")));
        Assert.Empty(QueueConfigFile.Environments(Write("f.yml", "table: a\n")));
        Assert.Empty(QueueConfigFile.Environments(Write("b.yml", "development:\n  url: [unclosed\n")));
        Assert.Empty(QueueConfigFile.Environments(Path.Combine(_dir, "missing.yml")));
    }
}
