using MySqlConnector;
using PerfectQueue.Storage.MySql;
using PerfectQueue.Tests.Conformance;

namespace PerfectQueue.Tests.MySql;

/// <summary>
/// The MySQL/MariaDB server from <see cref="Backends.MySqlVariable"/> (build.ps1 test points it at a throwaway
/// MariaDB): a <c>mysql://user:password@host:port/database?option=value</c> URL (options are MySqlConnector
/// settings) or a raw MySqlConnector connection string, parsed as the backend parses them.
/// </summary>
public static class MySqlServer
{
    public static string Source => Backends.MySql ?? throw new InvalidOperationException(
        $"MySQL/MariaDB tests must run in CI, but {Backends.MySqlVariable} is not set: build.ps1 test could not start a MariaDB server (is the mariadb-server package installed?).");

    public static bool IsUrl => Source.Contains("://", StringComparison.Ordinal);

    public static string ConnectionString => ToConnectionString(Source);

    public static string ToConnectionString(string source) =>
        (source.Contains("://", StringComparison.Ordinal) ? MySqlBackend.ConnectionFromUrl(source) : new MySqlConnectionStringBuilder(source)).ConnectionString;

    public static MySqlConnection Connect()
    {
        var c = new MySqlConnection(ConnectionString);
        c.Open();
        return c;
    }
}
