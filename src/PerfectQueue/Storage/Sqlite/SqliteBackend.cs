using Microsoft.Data.Sqlite;

namespace PerfectQueue.Storage.Sqlite;

/// <summary>The embedded default: one file on this host, created at the first command.</summary>
internal sealed class SqliteBackend : QueueBackend
{
    public override string Provider => "sqlite";
    public override IReadOnlyList<string> UrlSchemes { get; } = ["sqlite"];
    public override IReadOnlyList<string> UrlExamples { get; } = ["sqlite:///relative.db", "sqlite:////absolute/path.db"];
    public override int ListOrder => 0;
    public override bool AutoInitializeByDefault => true;
    public override BackendCapabilities Capabilities => BackendCapabilities.None;

    public override IQueueStore OpenUrl(string url, string table) => new SqliteQueueStore(PathFromUrl(url), table);

    public override IQueueStore OpenConnectionString(string connectionString, string table)
    {
        var b = ConnectionUrl.Settings(() => new SqliteConnectionStringBuilder(connectionString));
        return string.IsNullOrEmpty(b.DataSource)
            ? throw new ConfigException("connection_string: a SQLite connection string needs 'Data Source=<file>'.", "connection_string")
            : new SqliteQueueStore(b.DataSource, table);
    }

    /// <summary>sqlite:///relative.db, sqlite:////absolute/path.db, sqlite:///C:/path.db.</summary>
    public static string PathFromUrl(string url)
    {
        const string prefix = "sqlite:///";
        if (!url.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || url.Length == prefix.Length)
            throw new ConfigException($"url: '{UrlText.Mask(url)}' has no file path. Use sqlite:///relative.db or sqlite:////absolute/path.db.", "url");
        var path = Uri.UnescapeDataString(url[prefix.Length..]);
        if (path.Contains('?')) path = path[..path.IndexOf('?')];
        return path;
    }
}
