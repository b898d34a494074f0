using System.Reflection;

namespace PerfectQueue.Storage;

/// <summary>
/// One kind of database: the provider name a connection string is given with, the URL schemes that choose it,
/// how its URLs and connection strings become a store, and its defaults. Each backend declares one in its own
/// folder (<c>Storage/&lt;X&gt;/&lt;X&gt;Backend.cs</c>); <see cref="QueueBackends"/> finds them all, so a new
/// database touches its folder only (docs/backends.md, "Adding a backend").
/// </summary>
internal abstract class QueueBackend
{
    /// <summary>The <c>provider</c> value of a connection string for this database, lower case.</summary>
    public abstract string Provider { get; }

    /// <summary>The URL schemes that choose this database, lower case; the first is the one shown.</summary>
    public abstract IReadOnlyList<string> UrlSchemes { get; }

    /// <summary>URL forms to show when a URL is not understood (no secrets: placeholders only).</summary>
    public abstract IReadOnlyList<string> UrlExamples { get; }

    /// <summary>Where this backend sorts in lists shown to users: the embedded default first.</summary>
    public abstract int ListOrder { get; }

    /// <summary>
    /// Whether a queue is created at the first command when the config does not say (auto_initialize): true
    /// for the embedded file, false for servers, where creating tables is a decision of the database's owner.
    /// </summary>
    public virtual bool AutoInitializeByDefault => false;

    /// <summary>What the database can do beyond the contract every store meets.</summary>
    public abstract BackendCapabilities Capabilities { get; }

    /// <summary>A store for a URL of one of <see cref="UrlSchemes"/>; a bad URL is a <see cref="ConfigException"/> without secrets.</summary>
    public abstract IQueueStore OpenUrl(string url, string table);

    /// <summary>A store for a raw connection string of this provider; a bad one is a <see cref="ConfigException"/> without secrets.</summary>
    public abstract IQueueStore OpenConnectionString(string connectionString, string table);
}

/// <summary>What a backend can do beyond the contract every store meets.</summary>
[Flags]
internal enum BackendCapabilities
{
    None = 0,
    /// <summary>A submit wakes waiting workers at once (<see cref="IQueueStore.WaitForSubmitAsync"/> returns true); without it they poll.</summary>
    SubmitNotifications = 1,
    /// <summary>Workers on several hosts can share one queue (a server), not only processes of one host (a file).</summary>
    SharedAcrossHosts = 2,
}

/// <summary>Every backend of this build, found once by reflection over the engine assembly.</summary>
internal static class QueueBackends
{
    private static readonly Lazy<IReadOnlyList<QueueBackend>> s_all = new(() => typeof(QueueBackend).Assembly.GetTypes()
        .Where(t => t.IsSubclassOf(typeof(QueueBackend)) && !t.IsAbstract)
        .Select(t => (QueueBackend)Activator.CreateInstance(t, nonPublic: true)!)
        .OrderBy(b => b.ListOrder)
        .ToList());

    public static IReadOnlyList<QueueBackend> All => s_all.Value;

    /// <summary>The provider names in display order.</summary>
    public static IReadOnlyList<string> Providers => All.Select(b => b.Provider).ToList();

    public static QueueBackend? ForProvider(string? provider) =>
        All.FirstOrDefault(b => string.Equals(b.Provider, provider, StringComparison.OrdinalIgnoreCase));

    public static QueueBackend? ForScheme(string scheme) =>
        All.FirstOrDefault(b => b.UrlSchemes.Contains(scheme, StringComparer.OrdinalIgnoreCase));

    /// <summary>"'a', 'b' or 'c'": the providers, for messages.</summary>
    public static string ProviderList => Join(Providers.Select(p => $"'{p}'").ToList());

    /// <summary>Every URL example of every backend, for messages.</summary>
    public static string UrlExampleList => Join(All.SelectMany(b => b.UrlExamples).ToList());

    private static string Join(IReadOnlyList<string> items) =>
        items.Count <= 1 ? string.Concat(items) : string.Join(", ", items.Take(items.Count - 1)) + " or " + items[^1];
}
