using Microsoft.Data.SqlClient;
using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

public sealed class SqlServerUrlTests
{
    private const string Secret = "s3cret!P@ss";
    private static readonly string EscapedSecret = Uri.EscapeDataString(Secret);

    [Fact]
    public void Host_and_port_become_the_sqlclient_data_source()
    {
        var b = Storage.SqlServer.SqlServerBackend.ConnectionFromUrl($"sqlserver://app:{EscapedSecret}@db.example.com:14333/jobs");
        Assert.Equal("db.example.com,14333", b.DataSource);
        Assert.Equal("jobs", b.InitialCatalog);
        Assert.Equal("app", b.UserID);
        Assert.Equal(Secret, b.Password);
        Assert.False(b.IntegratedSecurity);
        Assert.Equal("PerfectQueue", b.ApplicationName);
    }

    [Fact]
    public void Without_a_port_the_host_alone_is_the_data_source()
    {
        var b = Storage.SqlServer.SqlServerBackend.ConnectionFromUrl("mssql://app:pw@db.example.com/jobs");
        Assert.Equal("db.example.com", b.DataSource);
    }

    [Fact]
    public void Without_a_user_integrated_security_is_used()
    {
        var b = Storage.SqlServer.SqlServerBackend.ConnectionFromUrl("sqlserver://db.example.com:1433/jobs");
        Assert.True(b.IntegratedSecurity);
        Assert.Equal("", b.UserID);
    }

    [Fact]
    public void Query_options_are_sqlclient_settings()
    {
        var b = Storage.SqlServer.SqlServerBackend.ConnectionFromUrl("sqlserver://app:pw@db:1433/jobs?encrypt=true&trustServerCertificate=true&connect%20timeout=5");
        Assert.Equal(SqlConnectionEncryptOption.Mandatory, b.Encrypt);
        Assert.True(b.TrustServerCertificate);
        Assert.Equal(5, b.ConnectTimeout);
        var strict = Storage.SqlServer.SqlServerBackend.ConnectionFromUrl("sqlserver://app:pw@db/jobs?encrypt=strict");
        Assert.Equal(SqlConnectionEncryptOption.Strict, strict.Encrypt);
    }

    [Fact]
    public void An_unknown_option_is_a_config_error_naming_it_without_the_password()
    {
        var e = Assert.Throws<ConfigException>(() => Storage.SqlServer.SqlServerBackend.ConnectionFromUrl($"sqlserver://app:{EscapedSecret}@db/jobs?colour=blue"));
        Assert.Equal("url", e.ConfigKey);
        Assert.Contains("'colour'", e.Message);
        Assert.DoesNotContain(Secret, e.Message);
        Assert.DoesNotContain(EscapedSecret, e.Message);
    }

    [Fact]
    public void A_bad_option_value_is_a_config_error_without_the_password()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open($"sqlserver://app:{EscapedSecret}@db/jobs?encrypt=sometimes"));
        Assert.Contains("'encrypt'", e.Message);
        Assert.DoesNotContain(Secret, e.Message);
        Assert.DoesNotContain(EscapedSecret, e.Message);
    }

    [Fact]
    public void Opening_a_sqlserver_url_needs_no_server_and_describes_it_without_the_password()
    {
        // Servers are never initialized on open (auto_initialize defaults to false), so nothing connects here.
        using var q = Queue.Open($"sqlserver://app:{EscapedSecret}@db.example.com:14333/jobs?encrypt=true", "tasks");
        Assert.Equal("sqlserver://app@db.example.com,14333/jobs (table tasks)", q.Description);
        Assert.IsType<Storage.SqlServer.SqlServerQueueStore>(q.Store);
        Assert.DoesNotContain(Secret, q.ToString());
    }

    [Fact]
    public void A_raw_connection_string_with_provider_sqlserver_is_described_without_the_password()
    {
        using var q = Queue.Open(new QueueConfig
        {
            ConnectionString = $"Server=tcp:db.example.com,1433;Database=jobs;User Id=app;Password={Secret};TrustServerCertificate=true",
            Provider = "sqlserver",
            Table = "tasks",
        });
        Assert.Equal("sqlserver://app@tcp:db.example.com,1433/jobs (table tasks)", q.Description);
        Assert.DoesNotContain(Secret, q.Description);
    }

    [Fact]
    public void A_bad_raw_connection_string_is_a_config_error_without_the_password()
    {
        var e = Assert.Throws<ConfigException>(() => Queue.Open(new QueueConfig
        {
            ConnectionString = $"Server=db;Password={Secret};Colour=blue",
            Provider = "sqlserver",
        }));
        Assert.Equal("connection_string", e.ConfigKey);
        Assert.DoesNotContain(Secret, e.Message);
    }
}
