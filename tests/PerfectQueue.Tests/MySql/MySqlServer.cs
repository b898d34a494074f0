using MySqlConnector;
using PerfectQueue.Tests.Conformance;

namespace PerfectQueue.Tests.MySql;

/// <summary>
/// The MySQL/MariaDB server from <see cref="Backends.MySqlVariable"/> (build.ps1 test points it at a throwaway
/// MariaDB): a <c>mysql://user:password@host:port/database?option=value</c> URL (options are MySqlConnector
/// settings) or a raw MySqlConnector connection string. The backend will parse its URLs in src/; until then
/// the tests read the variable themselves.
/// </summary>
public static class MySqlServer
{
    public static string Source => Backends.MySql ?? throw new InvalidOperationException(
        $"MySQL/MariaDB tests must run in CI, but {Backends.MySqlVariable} is not set: build.ps1 test could not start a MariaDB server (is the mariadb-server package installed?).");

    public static string ConnectionString => ToConnectionString(Source);

    public static string ToConnectionString(string source)
    {
        if (!source.Contains("://", StringComparison.Ordinal)) return new MySqlConnectionStringBuilder(source).ConnectionString;
        var uri = new Uri(source);
        if (uri.Scheme is not ("mysql" or "mysql2"))
            throw new ArgumentException($"{Backends.MySqlVariable} must be a mysql:// URL or a connection string, not {uri.Scheme}://.");
        var b = new MySqlConnectionStringBuilder
        {
            Server = uri.Host,
            Port = uri.IsDefaultPort || uri.Port < 0 ? 3306u : (uint)uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')),
        };
        var info = uri.UserInfo.Split(':', 2);
        if (info[0].Length > 0) b.UserID = Uri.UnescapeDataString(info[0]);
        if (info.Length == 2) b.Password = Uri.UnescapeDataString(info[1]);
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            b[Uri.UnescapeDataString(kv[0])] = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "true";
        }
        return b.ConnectionString;
    }

    public static MySqlConnection Connect()
    {
        var c = new MySqlConnection(ConnectionString);
        c.Open();
        return c;
    }
}
