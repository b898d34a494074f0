using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Unit;

public sealed class UrlTests
{
    [Theory]
    [InlineData("sqlite:///relative.db", "relative.db")]
    [InlineData("sqlite:////abs/path/q.db", "/abs/path/q.db")]
    [InlineData("sqlite:///C:/data/q.db", "C:/data/q.db")]
    [InlineData("sqlite:////tmp/with%20space.db", "/tmp/with space.db")]
    public void Sqlite_urls_follow_the_common_convention(string url, string path) =>
        Assert.Equal(path, Storage.Sqlite.SqliteBackend.PathFromUrl(url));

    [Theory]
    [InlineData("sqlite://")]
    [InlineData("sqlite:///")]
    public void A_sqlite_url_without_a_path_is_refused(string url) =>
        Assert.Equal("url", Assert.Throws<ConfigException>(() => Storage.Sqlite.SqliteBackend.PathFromUrl(url)).ConfigKey);

    [Fact]
    public void An_unknown_scheme_is_refused_without_showing_the_password()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open("oracle://app:s3cret@db:1521/jobs"));
        Assert.Equal("url", e.ConfigKey);
        Assert.DoesNotContain("s3cret", e.Message);
        Assert.Contains("app:***@db", e.Message);
    }

    [Theory]
    [InlineData("sqlserver://sa:Pa55w0rd!@host:1433/db?encrypt=true", "sqlserver://sa:***@host:1433/db?encrypt=true")]
    [InlineData("postgresql://u:p%40ss@localhost/q", "postgresql://u:***@localhost/q")]
    [InlineData("Server=x;User Id=sa;Password=hunter2;Encrypt=true", "Server=x;User Id=sa;Password=***;Encrypt=true")]
    [InlineData("Host=h;pwd='a;b';Database=q", "Host=h;pwd=***;Database=q")]
    [InlineData("sqlite:////tmp/q.db", "sqlite:////tmp/q.db")]
    public void Passwords_are_masked(string text, string masked) => Assert.Equal(masked, UrlText.Mask(text));

    [Fact]
    public void Relative_sqlite_paths_resolve_against_the_current_directory()
    {
        using var store = new Storage.Sqlite.SqliteQueueStore("some/dir/q.db", "t");
        Assert.Equal(Path.GetFullPath("some/dir/q.db"), store.FilePath);
        Assert.Contains("(table t)", store.Description);
    }
}
