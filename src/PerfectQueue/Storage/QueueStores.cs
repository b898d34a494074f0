using PerfectQueue.Storage.Sqlite;

namespace PerfectQueue.Storage;

/// <summary>Chooses the backend for a configuration's URL.</summary>
internal static class QueueStores
{
    public static (IQueueStore Store, bool AutoInitialize) Create(QueueConfig config)
    {
        var url = config.EffectiveUrl.Trim();
        var scheme = url.IndexOf("://", StringComparison.Ordinal) is var i and > 0 ? url[..i].ToLowerInvariant() : "";
        switch (scheme)
        {
            case "sqlite":
                return (new SqliteQueueStore(SqlitePath(url), config.Table), config.AutoInitialize ?? true);
            case "postgresql" or "postgres" or "sqlserver" or "mssql":
                throw new ConfigException($"url: the {scheme} backend is not available in this version yet; use a sqlite:/// URL (or none for the embedded default).", "url");
            default:
                throw new ConfigException($"url: '{UrlText.Mask(url)}' is not a queue URL. Use sqlite:///relative.db, sqlite:////absolute/path.db, or leave it out for the embedded default.", "url");
        }
    }

    /// <summary>sqlite:///relative.db, sqlite:////absolute/path.db, sqlite:///C:/path.db.</summary>
    public static string SqlitePath(string url)
    {
        const string prefix = "sqlite:///";
        if (!url.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || url.Length == prefix.Length)
            throw new ConfigException($"url: '{url}' has no file path. Use sqlite:///relative.db or sqlite:////absolute/path.db.", "url");
        var path = Uri.UnescapeDataString(url[prefix.Length..]);
        if (path.Contains('?')) path = path[..path.IndexOf('?')];
        return path;
    }
}
