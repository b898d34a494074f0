using System.Globalization;
using Microsoft.Data.SqlClient;

namespace PerfectQueue.Storage.SqlServer;

/// <summary>SQL Server: sqlserver:// or mssql:// URLs (options are SqlClient settings; no user: integrated security), or a SqlClient connection string.</summary>
internal sealed class SqlServerBackend : QueueBackend
{
    public override string Provider => "sqlserver";
    public override IReadOnlyList<string> UrlSchemes { get; } = ["sqlserver", "mssql"];
    public override IReadOnlyList<string> UrlExamples { get; } = ["sqlserver://user:password@host:1433/database"];
    public override int ListOrder => 2;
    public override BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossHosts;

    public override IQueueStore OpenUrl(string url, string table) => Open(ConnectionFromUrl(url), table);

    public override IQueueStore OpenConnectionString(string connectionString, string table) =>
        Open(ConnectionUrl.Settings(() => new SqlConnectionStringBuilder(connectionString)), table);

    private static SqlServerQueueStore Open(SqlConnectionStringBuilder b, string table)
    {
        if (b.ApplicationName == new SqlConnectionStringBuilder().ApplicationName) b.ApplicationName = ConnectionUrl.ApplicationName;
        var user = b.IntegratedSecurity ? "" : ConnectionUrl.UserPart(b.UserID);
        return new SqlServerQueueStore(b.ConnectionString, table, $"sqlserver://{user}{b.DataSource}/{b.InitialCatalog} (table {table})");
    }

    /// <summary>sqlserver://user:password@host:port/database?option=value (options are SqlClient settings). No user: integrated security.</summary>
    public static SqlConnectionStringBuilder ConnectionFromUrl(string url)
    {
        var uri = ConnectionUrl.Parse(url);
        var host = ConnectionUrl.Host(uri);
        var b = new SqlConnectionStringBuilder
        {
            DataSource = uri.IsDefaultPort || uri.Port < 0 ? host : host + "," + uri.Port.ToString(CultureInfo.InvariantCulture),
            ApplicationName = ConnectionUrl.ApplicationName,
        };
        if (ConnectionUrl.Database(uri) is { Length: > 0 } database) b.InitialCatalog = database;
        var (user, password) = ConnectionUrl.UserInfo(uri);
        if (user is null) b.IntegratedSecurity = true;
        else { b.UserID = user; b.Password = password ?? ""; }
        foreach (var (key, value) in ConnectionUrl.Options(uri))
            ConnectionUrl.Settings(() => { b[key] = value; return b; }, key);
        return b;
    }
}
