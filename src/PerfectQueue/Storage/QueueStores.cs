namespace PerfectQueue.Storage;

/// <summary>
/// Chooses the backend for a configuration from the registry (<see cref="QueueBackends"/>): by the URL's scheme,
/// or by the provider named beside a raw connection string. Nothing here ever shows a password.
/// </summary>
internal static class QueueStores
{
    public static (IQueueStore Store, bool AutoInitialize) Create(QueueConfig config)
    {
        var backend = BackendOf(config);
        var store = config.ConnectionString is { } raw
            ? backend.OpenConnectionString(raw, config.Table)
            : backend.OpenUrl(config.EffectiveUrl.Trim(), config.Table);
        return (store, config.AutoInitialize ?? backend.AutoInitializeByDefault);
    }

    /// <summary>The backend a configuration names: its provider (with a connection string) or its URL's scheme.</summary>
    public static QueueBackend BackendOf(QueueConfig config)
    {
        if (config.ConnectionString is not null)
            return QueueBackends.ForProvider(config.Provider)
                ?? throw new ConfigException($"provider: a connection_string needs provider {QueueBackends.ProviderList} (got '{config.Provider}').", "provider");
        var url = config.EffectiveUrl.Trim();
        var scheme = url.IndexOf("://", StringComparison.Ordinal) is var i and > 0 ? url[..i] : "";
        return QueueBackends.ForScheme(scheme)
            ?? throw new ConfigException($"url: '{UrlText.Mask(url)}' is not a queue URL. Use {QueueBackends.UrlExampleList}, or leave it out for the embedded default.", "url");
    }
}
