using System.Collections;
using System.Globalization;

namespace PerfectQueue;

/// <summary>How retry delays grow.</summary>
public enum RetryBackoff
{
    /// <summary>Every retry waits retry_wait (the original's behaviour).</summary>
    Fixed,
    /// <summary>retry_wait doubled per attempt, capped by retry_max_wait, with ± retry_jitter.</summary>
    Exponential,
}

/// <summary>Compression of task data at submit. Reads detect gzip by itself whatever this says.</summary>
public enum DataCompression
{
    None,
    Gzip,
}

/// <summary>
/// A queue's configuration: the original PerfectQueue's keys and defaults, plus the few this port adds.
/// Build it in code, or from a dictionary of the original's snake_case keys with <see cref="FromDictionary"/>.
/// docs/configuration.md lists every key.
/// </summary>
public sealed class QueueConfig
{
    /// <summary>The table used when none is configured.</summary>
    public const string DefaultTable = "perfectqueue";

    /// <summary>backend type; the original's 'rdb_compat' and 'rdb' are accepted, the URL decides the database.</summary>
    public string? Type { get; set; }
    /// <summary>Where the queue lives: sqlite:///relative.db, sqlite:////absolute/path.db. Null: the embedded default.</summary>
    public string? Url { get; set; }
    /// <summary>A raw ADO.NET connection string, instead of <see cref="Url"/>; needs <see cref="Provider"/>.</summary>
    public string? ConnectionString { get; set; }
    /// <summary>A backend's provider name ('sqlite', 'postgresql', 'sqlserver'...): which driver <see cref="ConnectionString"/> is for.</summary>
    public string? Provider { get; set; }
    public string Table { get; set; } = DefaultTable;
    /// <summary>log file path (null: standard error). Used by the worker.</summary>
    public string? Log { get; set; }
    /// <summary>log_format: how a worker writes its log lines, text (the default) or json (one object per line).</summary>
    public Workers.WorkerLogFormat LogFormat { get; set; }
    public int Processors { get; set; } = 1;
    /// <summary>prefetch: leased tasks a worker keeps ready beyond its free processors, for many short tasks (0: none; docs/worker.md, "Prefetch").</summary>
    public int Prefetch { get; set; }
    /// <summary>'thread' (runspaces in the worker process, our default) or 'process'.</summary>
    public string ProcessorType { get; set; } = "thread";
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>
    /// How long a finished task is kept; its key is refused for submit until then. One day, not the original's
    /// 300 s: a scheduled job re-submitted minutes (or hours) later must not run twice. retention_time: 300 restores it.
    /// </summary>
    public TimeSpan RetentionTime { get; set; } = TimeSpan.FromDays(1);
    public TimeSpan TaskHeartbeatInterval { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>The lease length: a task whose holder does not heartbeat within it is given to another worker.</summary>
    public TimeSpan AliveTime { get; set; } = TimeSpan.FromSeconds(300);
    public TimeSpan RetryWait { get; set; } = TimeSpan.FromSeconds(300);
    public TimeSpan ChildKillInterval { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>Null: never escalate (the original's default).</summary>
    public TimeSpan? ChildGracefulKillLimit { get; set; }
    public TimeSpan ChildHeartbeatInterval { get; set; } = TimeSpan.FromSeconds(2);
    public TimeSpan ChildHeartbeatLimit { get; set; } = TimeSpan.FromSeconds(10);

    // Keys this port adds.
    /// <summary>Null: unlimited attempts (the original's behaviour). Otherwise the attempt that fails last ends the task as Failed.</summary>
    public int? MaxAttempts { get; set; }
    public RetryBackoff RetryBackoff { get; set; } = RetryBackoff.Fixed;
    public TimeSpan RetryMaxWait { get; set; } = TimeSpan.FromHours(1);
    /// <summary>Fraction (0..1) by which exponential delays are spread at random.</summary>
    public double RetryJitter { get; set; } = 0.2;
    /// <summary>How often (jittered ±50%) a polling queue deletes finished tasks past their retention. Zero disables.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromSeconds(60);
    public DataCompression Compression { get; set; } = DataCompression.None;
    /// <summary>Create the schema on first use. Null: yes for SQLite, no for server databases.</summary>
    public bool? AutoInitialize { get; set; }
    /// <summary>
    /// The task type of the notices the queue submits when a schedule skips or misses a fire (docs/schedules.md,
    /// "Notices"). Empty or null: no notices.
    /// </summary>
    public string? NoticeType { get; set; } = Notices.DefaultType;
    /// <summary>Whether workers of this configuration fire the queue's due schedules (Start-PQWorker -NoSchedules turns it off).</summary>
    public bool FireSchedules { get; set; } = true;

    /// <summary>The embedded default database: perfectqueue.db in the user's local data folder.</summary>
    public static string EmbeddedDefaultPath =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify),
                     "PerfectQueue", "perfectqueue.db");

    /// <summary>The URL in force: <see cref="Url"/>, or the embedded default.</summary>
    public string EffectiveUrl => string.IsNullOrWhiteSpace(Url) ? SqliteUrl(EmbeddedDefaultPath) : Url!;

    /// <summary>A sqlite URL for a file path (absolute paths get the four-slash form).</summary>
    public static string SqliteUrl(string path) => "sqlite:///" + path.Replace('\\', '/');

    /// <summary>
    /// A sqlite URL whose path is relative, made absolute with <paramref name="resolve"/> (for example against a
    /// config file's folder, or PowerShell's current location). Any other URL is returned unchanged.
    /// </summary>
    public static string ResolveSqliteUrl(string url, Func<string, string> resolve)
    {
        const string prefix = "sqlite:///";
        if (!url.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return url;
        var path = url[prefix.Length..];
        return path.Length == 0 || Path.IsPathRooted(path) ? url : SqliteUrl(resolve(path));
    }

    public QueueConfig Clone() => (QueueConfig)MemberwiseClone();

    /// <summary>A copy whose url and connection_string show no password (for anything that may be printed).</summary>
    internal QueueConfig Masked()
    {
        var copy = Clone();
        if (copy.Url is not null) copy.Url = UrlText.Mask(copy.Url);
        if (copy.ConnectionString is not null) copy.ConnectionString = UrlText.Mask(copy.ConnectionString);
        return copy;
    }

    /// <summary>Checks every value; throws <see cref="ConfigException"/> naming the first bad key.</summary>
    public void Validate()
    {
        Storage.SqlIdentifiers.Require(Table);
        if (Type is not null && !IsKnownType(Type))
            throw new ConfigException($"type: '{Type}' is not a backend type. Use 'rdb_compat' (or leave it out): the url chooses the database.", "type");
        if (ConnectionString is not null && Url is not null)
            throw new ConfigException("url: give url or connection_string, not both.", "url");
        if (ConnectionString is not null && Storage.QueueBackends.ForProvider(Provider) is null)
            throw new ConfigException($"provider: a connection_string needs provider {Storage.QueueBackends.ProviderList} (got '{Provider}').", "provider");
        if (Processors < 1) throw new ConfigException($"processors: must be at least 1 (got {Processors}).", "processors");
        if (Prefetch is < 0 or > Workers.WorkerOptions.MaxPrefetch)
            throw new ConfigException($"prefetch: must be between 0 (none) and {Workers.WorkerOptions.MaxPrefetch} (got {Prefetch}).", "prefetch");
        if (ProcessorType is not ("thread" or "process"))
            throw new ConfigException($"processor_type: must be 'thread' or 'process' (got '{ProcessorType}').", "processor_type");
        Positive(PollInterval, "poll_interval");
        NotNegative(RetentionTime, "retention_time");
        Positive(TaskHeartbeatInterval, "task_heartbeat_interval");
        Positive(AliveTime, "alive_time");
        NotNegative(RetryWait, "retry_wait");
        Positive(ChildKillInterval, "child_kill_interval");
        if (ChildGracefulKillLimit is { } k) NotNegative(k, "child_graceful_kill_limit");
        Positive(ChildHeartbeatInterval, "child_heartbeat_interval");
        Positive(ChildHeartbeatLimit, "child_heartbeat_limit");
        if (MaxAttempts is < 1) throw new ConfigException($"max_attempts: must be at least 1, or left out for unlimited (got {MaxAttempts}).", "max_attempts");
        NotNegative(RetryMaxWait, "retry_max_wait");
        if (RetryJitter is < 0 or > 1 || double.IsNaN(RetryJitter))
            throw new ConfigException($"retry_jitter: must be between 0 and 1 (got {RetryJitter.ToString(CultureInfo.InvariantCulture)}).", "retry_jitter");
        NotNegative(CleanupInterval, "cleanup_interval");
        if (!string.IsNullOrEmpty(NoticeType) && TaskText.NameProblem("type", NoticeType) is { } badNotice)
            throw new ConfigException($"notice_type: {badNotice} Give a task type such as 'pq.notice', or an empty value for no notices.", "notice_type");
    }

    private static void Positive(TimeSpan value, string key)
    {
        if (value <= TimeSpan.Zero) throw new ConfigException($"{key}: must be more than zero seconds (got {value.TotalSeconds.ToString(CultureInfo.InvariantCulture)}).", key);
    }

    private static void NotNegative(TimeSpan value, string key)
    {
        if (value < TimeSpan.Zero) throw new ConfigException($"{key}: must not be negative (got {value.TotalSeconds.ToString(CultureInfo.InvariantCulture)}).", key);
    }

    // The original's generic types, or a provider name: the url chooses the database either way.
    private static bool IsKnownType(string type) =>
        type.Equals("rdb_compat", StringComparison.OrdinalIgnoreCase) || type.Equals("rdb", StringComparison.OrdinalIgnoreCase)
        || Storage.QueueBackends.ForProvider(type) is not null;

    /// <summary>
    /// Reads the original's snake_case keys (durations in seconds, as numbers or numeric strings, or TimeSpans).
    /// An unknown key or a bad value is a <see cref="ConfigException"/> naming the key and, when given, the source.
    /// </summary>
    public static QueueConfig FromDictionary(IDictionary values, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        var config = new QueueConfig();
        foreach (DictionaryEntry entry in values)
        {
            var key = Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? "";
            try
            {
                Apply(config, key.Trim().ToLowerInvariant(), entry.Value);
            }
            catch (ConfigException e) when (source is not null)
            {
                throw new ConfigException($"{source}: {e.Message}", e.ConfigKey, e);
            }
        }
        try { config.Validate(); }
        catch (ConfigException e) when (source is not null) { throw new ConfigException($"{source}: {e.Message}", e.ConfigKey, e); }
        return config;
    }

    /// <summary>Every key <see cref="FromDictionary"/> accepts.</summary>
    public static IReadOnlyList<string> Keys { get; } =
    [
        "type", "url", "connection_string", "provider", "table", "log", "log_format", "processors", "prefetch", "processor_type", "poll_interval", "retention_time",
        "task_heartbeat_interval", "alive_time", "retry_wait", "child_kill_interval", "child_graceful_kill_limit",
        "child_heartbeat_interval", "child_heartbeat_limit", "max_attempts", "retry_backoff", "retry_max_wait",
        "retry_jitter", "cleanup_interval", "compression", "auto_initialize",
        "notice_type", "fire_schedules",
    ];

    private static void Apply(QueueConfig c, string key, object? v)
    {
        switch (key)
        {
            case "type": c.Type = Text(key, v); break;
            case "url": c.Url = Text(key, v); break;
            case "connection_string": c.ConnectionString = Text(key, v); break;
            case "provider": c.Provider = Text(key, v)?.ToLowerInvariant(); break;
            case "table": c.Table = Text(key, v) ?? DefaultTable; break;
            case "log": c.Log = Text(key, v); break;
            case "log_format": c.LogFormat = Enum<Workers.WorkerLogFormat>(key, v) ?? Workers.WorkerLogFormat.Text; break;
            case "processors": c.Processors = Int(key, v) ?? 1; break;
            case "prefetch": c.Prefetch = Int(key, v) ?? 0; break;
            case "processor_type": c.ProcessorType = (Text(key, v) ?? "thread").ToLowerInvariant(); break;
            case "poll_interval": c.PollInterval = Seconds(key, v) ?? c.PollInterval; break;
            case "retention_time": c.RetentionTime = Seconds(key, v) ?? c.RetentionTime; break;
            case "task_heartbeat_interval": c.TaskHeartbeatInterval = Seconds(key, v) ?? c.TaskHeartbeatInterval; break;
            case "alive_time": c.AliveTime = Seconds(key, v) ?? c.AliveTime; break;
            case "retry_wait": c.RetryWait = Seconds(key, v) ?? c.RetryWait; break;
            case "child_kill_interval": c.ChildKillInterval = Seconds(key, v) ?? c.ChildKillInterval; break;
            case "child_graceful_kill_limit": c.ChildGracefulKillLimit = Seconds(key, v); break;
            case "child_heartbeat_interval": c.ChildHeartbeatInterval = Seconds(key, v) ?? c.ChildHeartbeatInterval; break;
            case "child_heartbeat_limit": c.ChildHeartbeatLimit = Seconds(key, v) ?? c.ChildHeartbeatLimit; break;
            case "max_attempts": c.MaxAttempts = Int(key, v); break;
            case "retry_backoff": c.RetryBackoff = Enum<RetryBackoff>(key, v) ?? RetryBackoff.Fixed; break;
            case "retry_max_wait": c.RetryMaxWait = Seconds(key, v) ?? c.RetryMaxWait; break;
            case "retry_jitter": c.RetryJitter = Number(key, v) ?? c.RetryJitter; break;
            case "cleanup_interval": c.CleanupInterval = Seconds(key, v) ?? c.CleanupInterval; break;
            case "compression": c.Compression = Enum<DataCompression>(key, v) ?? DataCompression.None; break;
            case "auto_initialize": c.AutoInitialize = Bool(key, v); break;
            case "notice_type": c.NoticeType = v is null ? null : Text(key, v) ?? ""; break;
            case "fire_schedules": c.FireSchedules = Bool(key, v) ?? true; break;
            default:
                throw new ConfigException($"'{key}' is not a configuration key. Known keys: {string.Join(", ", Keys)}.", key);
        }
    }

    private static string? Text(string key, object? v) => v switch
    {
        null => null,
        string s => s,
        IConvertible when v is not IDictionary => Convert.ToString(v, CultureInfo.InvariantCulture),
        _ => throw new ConfigException($"{key}: expected a text value, got {v.GetType().Name}.", key),
    };

    private static double? Number(string key, object? v)
    {
        switch (v)
        {
            case null: return null;
            case string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d): return d;
            case string s: throw new ConfigException($"{key}: '{s}' is not a number.", key);
            case IConvertible conv when v is not bool:
                try { return conv.ToDouble(CultureInfo.InvariantCulture); }
                catch (Exception e) when (e is FormatException or InvalidCastException or OverflowException) { }
                break;
        }
        throw new ConfigException($"{key}: expected a number, got '{v}'.", key);
    }

    private static int? Int(string key, object? v)
    {
        var d = Number(key, v);
        if (d is null) return null;
        if (d != Math.Floor(d.Value) || d > int.MaxValue || d < int.MinValue)
            throw new ConfigException($"{key}: expected a whole number, got {d.Value.ToString(CultureInfo.InvariantCulture)}.", key);
        return (int)d.Value;
    }

    /// <summary>Durations are seconds, as in the original ("alive_time: 30" is 30 seconds); a TimeSpan is taken as is.</summary>
    private static TimeSpan? Seconds(string key, object? v)
    {
        if (v is TimeSpan ts) return ts;
        var d = Number(key, v);
        if (d is null) return null;
        if (double.IsNaN(d.Value) || double.IsInfinity(d.Value) || Math.Abs(d.Value) > TimeSpan.MaxValue.TotalSeconds / 2)
            throw new ConfigException($"{key}: {d} is not a usable number of seconds.", key);
        return TimeSpan.FromSeconds(d.Value);
    }

    private static bool? Bool(string key, object? v) => v switch
    {
        null => null,
        bool b => b,
        string s when bool.TryParse(s.Trim(), out var b) => b,
        string s when s.Trim() is "yes" or "on" or "1" => true,
        string s when s.Trim() is "no" or "off" or "0" => false,
        _ => throw new ConfigException($"{key}: expected true or false, got '{v}'.", key),
    };

    private static T? Enum<T>(string key, object? v) where T : struct, System.Enum
    {
        var s = Text(key, v);
        if (s is null) return null;
        if (System.Enum.TryParse<T>(s.Trim(), ignoreCase: true, out var r) && System.Enum.IsDefined(r) && !int.TryParse(s, out _)) return r;
        throw new ConfigException($"{key}: '{s}' is not one of {string.Join(", ", System.Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))}.", key);
    }
}
