using MySqlConnector;
using PerfectQueue.Storage.MySql;
using Xunit;

namespace PerfectQueue.Tests.MySql;

/// <summary>mysql:// and mysql2:// URLs and raw connection strings, parsed without a server; passwords never shown.</summary>
public sealed class MySqlUrlTests
{
    private const string Secret = "s3cret!P@ss:/x";
    private static readonly string EscapedSecret = Uri.EscapeDataString(Secret);

    [Theory]
    [InlineData("mysql")]
    [InlineData("mysql2")]
    public void Host_port_database_user_and_password_become_mysqlconnector_settings(string scheme)
    {
        var b = MySqlBackend.ConnectionFromUrl($"{scheme}://app:{EscapedSecret}@db.example.com:33060/jobs");
        Assert.Equal("db.example.com", b.Server);
        Assert.Equal(33060u, b.Port);
        Assert.Equal("jobs", b.Database);
        Assert.Equal("app", b.UserID);
        Assert.Equal(Secret, b.Password);
    }

    [Fact]
    public void Without_a_port_it_is_3306_and_without_a_password_none_is_sent()
    {
        var b = MySqlBackend.ConnectionFromUrl("mysql://root@127.0.0.1/pq");
        Assert.Equal(3306u, b.Port);
        Assert.Equal("root", b.UserID);
        Assert.Equal("", b.Password);
    }

    [Fact]
    public void Query_options_are_mysqlconnector_settings()
    {
        var b = MySqlBackend.ConnectionFromUrl("mysql://app:pw@db/jobs?SslMode=VerifyFull&Connection%20Timeout=7&Maximum%20Pool%20Size=12");
        Assert.Equal(MySqlSslMode.VerifyFull, b.SslMode);
        Assert.Equal(7u, b.ConnectionTimeout);
        Assert.Equal(12u, b.MaximumPoolSize);
    }

    [Fact]
    public void PerfectQueue_always_counts_matched_rows_and_refuses_user_variables()
    {
        var b = MySqlBackend.ConnectionFromUrl("mysql://app:pw@db/jobs?UseAffectedRows=true&AllowUserVariables=true");
        MySqlBackend.ApplyDefaults(b);
        Assert.False(b.UseAffectedRows);
        Assert.False(b.AllowUserVariables);
        Assert.Equal("PerfectQueue", b.ApplicationName);
    }

    [Fact]
    public void An_unknown_option_is_a_config_error_naming_it_without_the_password()
    {
        var e = Assert.Throws<ConfigException>(() => MySqlBackend.ConnectionFromUrl($"mysql://app:{EscapedSecret}@db/jobs?colour=blue"));
        Assert.Equal("url", e.ConfigKey);
        Assert.Contains("'colour'", e.Message);
        Assert.DoesNotContain(Secret, e.Message);
        Assert.DoesNotContain(EscapedSecret, e.Message);
    }

    [Fact]
    public void A_bad_option_value_is_a_config_error_without_the_password()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open($"mysql://app:{EscapedSecret}@db/jobs?SslMode=sometimes"));
        Assert.Contains("'SslMode'", e.Message);
        Assert.DoesNotContain(Secret, e.Message);
        Assert.DoesNotContain(EscapedSecret, e.Message);
    }

    [Fact]
    public void A_url_without_a_database_is_refused_saying_the_form()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open($"mysql://app:{EscapedSecret}@db:3306/"));
        Assert.Contains("needs a database", e.Message);
        Assert.Contains("mysql://user:password@host:3306/database", e.Message);
        Assert.DoesNotContain(Secret, e.Message);
        Assert.DoesNotContain(EscapedSecret, e.Message);
    }

    [Fact]
    public void Opening_a_mysql_url_needs_no_server_and_describes_it_without_the_password()
    {
        // Servers are never initialized on open (auto_initialize defaults to false), so nothing connects here.
        using var q = Queue.Open($"mysql2://app:{EscapedSecret}@db.example.com:3307/jobs?SslMode=Required", "tasks");
        Assert.Equal("mysql://app@db.example.com:3307/jobs (table tasks)", q.Description);
        Assert.IsType<MySqlQueueStore>(q.Store);
        Assert.DoesNotContain(Secret, q.ToString());
        Assert.DoesNotContain(EscapedSecret, q.ToString());
        Assert.DoesNotContain(Secret, q.Config.Url);
        Assert.DoesNotContain(EscapedSecret, q.Config.Url);
    }

    [Fact]
    public void A_raw_connection_string_with_provider_mysql_is_described_without_the_password()
    {
        using var q = Queue.Open(new QueueConfig
        {
            ConnectionString = $"Server=db.example.com;Port=3306;Database=jobs;User ID=app;Password={Secret};SslMode=Required",
            Provider = "mysql",
            Table = "tasks",
        });
        Assert.Equal("mysql://app@db.example.com:3306/jobs (table tasks)", q.Description);
        Assert.DoesNotContain(Secret, q.Description);
        Assert.DoesNotContain(Secret, q.Config.ConnectionString);
    }

    [Fact]
    public void A_bad_raw_connection_string_is_a_config_error_without_the_password()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open(new QueueConfig
        {
            ConnectionString = $"Server=db;Database=jobs;Password={Secret};Colour=blue",
            Provider = "mysql",
        }));
        Assert.Equal("connection_string", e.ConfigKey);
        Assert.DoesNotContain(Secret, e.Message);
    }
}
