using System.Collections;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace PerfectQueue;

/// <summary>
/// Reads the original PerfectQueue's config file: YAML (JSON is YAML too) whose top-level keys are
/// environments (development, production, ...), each holding the configuration keys. A file of bare keys,
/// without environments, is accepted as well.
/// </summary>
public static class QueueConfigFile
{
    /// <summary>The environment used when none is given (the original's default).</summary>
    public const string DefaultEnvironment = "development";

    public static QueueConfig Load(string path, string? environment = null)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read the config file ({e.Message}).", null, e);
        }
        return Parse(text, path, environment);
    }

    public static QueueConfig Parse(string text, string source, string? environment = null) =>
        Parse(text, source, environment ?? DefaultEnvironment, environment is null ? DefaultReason : ParameterReason, environment is null, out _);

    private static QueueConfig Parse(string text, string source, string env, string why, bool flatAllowed, out bool flat)
    {
        object? root;
        try { root = new DeserializerBuilder().Build().Deserialize<object?>(text); }
        catch (YamlException e)
        {
            throw new ConfigException($"{source}: not valid YAML or JSON at line {e.Start.Line}, column {e.Start.Column}: {e.InnerException?.Message ?? e.Message}", null, e);
        }
        if (root is not IDictionary top)
            throw new ConfigException($"{source}: the file must hold a mapping of environments (development:, production:, ...) to configuration keys.");

        var keys = top.Keys.Cast<object>().Select(k => Convert.ToString(k, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToList();
        var known = new HashSet<string>(QueueConfig.Keys, StringComparer.OrdinalIgnoreCase);
        IDictionary section;
        if (keys.Any(k => string.Equals(k, env, StringComparison.OrdinalIgnoreCase)))
        {
            var value = top[keys.First(k => string.Equals(k, env, StringComparison.OrdinalIgnoreCase))];
            section = value as IDictionary ?? throw new ConfigException($"{source}: environment '{env}' must hold configuration keys.");
        }
        else if (flatAllowed && keys.All(known.Contains))
        {
            section = top; // a flat file of keys
        }
        else
        {
            throw new ConfigException(why == ParameterReason
                ? $"{source}: there is no environment '{env}'. The file has: {string.Join(", ", keys)}. Choose one with -Environment."
                : $"{source}: there is no environment '{env}' ({why}). The file has: {string.Join(", ", keys)}. Choose one with -Environment or ${EnvironmentVariable}.");
        }
        flat = ReferenceEquals(section, top);
        var config = QueueConfig.FromDictionary(section, flat ? source : $"{source} [{env}]");
        // Relative paths in a file (a SQLite database, the log) are relative to the file, so it works from any directory.
        if (File.Exists(source))
        {
            var folder = Path.GetDirectoryName(Path.GetFullPath(source))!;
            if (config.Url is { } url) config.Url = QueueConfig.ResolveSqliteUrl(url, path => Path.Combine(folder, path));
            if (config.Log is { } log) config.Log = Path.Combine(folder, log);
        }
        return config;
    }

    // ---- Environment selection when -Environment is not given (docs/configuration.md, "Choosing the environment") ----

    /// <summary>Names the config file's environment when none is given; read before the original's RAILS_ENV.</summary>
    public const string EnvironmentVariable = "PERFECTQUEUE_ENVIRONMENT";

    /// <summary>The original PerfectQueue's variable (its README reads <c>yml[ENV['RAILS_ENV'] || 'development']</c>).</summary>
    public const string RailsEnvironmentVariable = "RAILS_ENV";

    private const string ParameterReason = "from -Environment";
    private static readonly string DefaultReason = $"the default: neither -Environment, ${EnvironmentVariable} nor ${RailsEnvironmentVariable} is set";

    /// <summary>
    /// The environment to read and why: <paramref name="environment"/> (-Environment) when given, else
    /// $env:PERFECTQUEUE_ENVIRONMENT, else $env:RAILS_ENV, else development. Blank variables count as unset.
    /// </summary>
    /// <param name="environment">What -Environment gave, or null.</param>
    /// <param name="variables">Reads an environment variable (default: the process's); tests pass their own.</param>
    public static (string Name, string Why) ChooseEnvironment(string? environment, Func<string, string?>? variables = null)
    {
        if (!string.IsNullOrWhiteSpace(environment)) return (environment.Trim(), ParameterReason);
        variables ??= System.Environment.GetEnvironmentVariable;
        foreach (var name in (ReadOnlySpan<string>)[EnvironmentVariable, RailsEnvironmentVariable])
            if (variables(name) is { } value && !string.IsNullOrWhiteSpace(value)) return (value.Trim(), $"from ${name}");
        return (DefaultEnvironment, DefaultReason);
    }

    /// <summary>
    /// Reads <paramref name="path"/> for the environment <see cref="ChooseEnvironment"/> picks, and says which one it
    /// read and why (for a verbose or log line). A file without environments (bare keys) is read as it is unless
    /// -Environment names one: a variable set for other files must not break it.
    /// </summary>
    public static (QueueConfig Config, string Environment, string Why) LoadChoosingEnvironment(string path, string? environment, Func<string, string?>? variables = null)
    {
        var (name, why) = ChooseEnvironment(environment, variables);
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read the config file ({e.Message}).", null, e);
        }
        var config = Parse(text, path, name, why, flatAllowed: why != ParameterReason, out var flat);
        return flat ? (config, "(none)", "the file has no environments") : (config, name, why);
    }

    /// <summary>The largest file <see cref="Environments"/> reads: tab completion must stay quick.</summary>
    private const long EnvironmentsReadLimit = 1 << 20;

    /// <summary>
    /// The environments a config file has (its top-level keys that hold keys), for tab completion: none when the
    /// file is missing, too big, not YAML or JSON, or a flat file of keys. Never throws for a bad file.
    /// </summary>
    public static IReadOnlyList<string> Environments(string path)
    {
        try
        {
            var file = new FileInfo(path);
            if (!file.Exists || file.Length > EnvironmentsReadLimit) return [];
            if (new DeserializerBuilder().Build().Deserialize<object?>(File.ReadAllText(path)) is not IDictionary top) return [];
            return [.. top.Keys.Cast<object>().Where(k => top[k] is IDictionary)
                .Select(k => Convert.ToString(k, System.Globalization.CultureInfo.InvariantCulture) ?? "").Where(k => k.Length > 0)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or YamlException or ArgumentException or NotSupportedException)
        {
            return [];
        }
    }
}
