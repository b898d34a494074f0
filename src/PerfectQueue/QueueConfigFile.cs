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

    public static QueueConfig Parse(string text, string source, string? environment = null)
    {
        object? root;
        try { root = new DeserializerBuilder().Build().Deserialize<object?>(text); }
        catch (YamlException e)
        {
            throw new ConfigException($"{source}: not valid YAML or JSON at line {e.Start.Line}, column {e.Start.Column}: {e.InnerException?.Message ?? e.Message}", null, e);
        }
        if (root is not IDictionary top)
            throw new ConfigException($"{source}: the file must hold a mapping of environments (development:, production:, ...) to configuration keys.");

        var env = environment ?? DefaultEnvironment;
        var keys = top.Keys.Cast<object>().Select(k => Convert.ToString(k, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToList();
        var known = new HashSet<string>(QueueConfig.Keys, StringComparer.OrdinalIgnoreCase);
        IDictionary section;
        if (keys.Any(k => string.Equals(k, env, StringComparison.OrdinalIgnoreCase)))
        {
            var value = top[keys.First(k => string.Equals(k, env, StringComparison.OrdinalIgnoreCase))];
            section = value as IDictionary ?? throw new ConfigException($"{source}: environment '{env}' must hold configuration keys.");
        }
        else if (environment is null && keys.All(known.Contains))
        {
            section = top; // a flat file of keys
        }
        else
        {
            throw new ConfigException($"{source}: there is no environment '{env}'. The file has: {string.Join(", ", keys)}. Choose one with -Environment.");
        }
        var config = QueueConfig.FromDictionary(section, ReferenceEquals(section, top) ? source : $"{source} [{env}]");
        // Relative paths in a file (a SQLite database, the log) are relative to the file, so it works from any directory.
        if (File.Exists(source))
        {
            var folder = Path.GetDirectoryName(Path.GetFullPath(source))!;
            if (config.Url is { } url) config.Url = QueueConfig.ResolveSqliteUrl(url, path => Path.Combine(folder, path));
            if (config.Log is { } log) config.Log = Path.Combine(folder, log);
        }
        return config;
    }
}
