using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace PerfectQueue.PowerShell;

/// <summary>
/// Tab completion from the queue the command would use. Bounded (at most 100 names), quick, and it never
/// throws: with no reachable queue it simply offers nothing.
/// </summary>
public abstract class QueueValueCompleter : IArgumentCompleter
{
    private const int Limit = 100;

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        try
        {
            var queue = PQSession.Resolve(fakeBoundParameters["Queue"] as Queue ?? (fakeBoundParameters["Queue"] as PSObject)?.BaseObject as Queue);
            var prefix = Unquote(wordToComplete);
            return Results(CompletionTime.Bounded(_ => Task.Run(() => (IReadOnlyList<string>)Values(queue, prefix).ToList())), wordToComplete);
        }
        catch (Exception)
        {
            return []; // completion must never break the prompt
        }
    }

    protected abstract IEnumerable<string> Values(Queue queue, string prefix);

    /// <summary>The values that start with what was typed, sorted, at most 100, each quoted.</summary>
    internal static List<CompletionResult> Results(IEnumerable<string> values, string wordToComplete)
    {
        var prefix = Unquote(wordToComplete);
        return values
            .Where(v => v.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Take(Limit)
            .Select(v => new CompletionResult(Quote(v), v, CompletionResultType.ParameterValue, v))
            .ToList();
    }

    /// <summary>
    /// Always single-quoted: a value comes from whoever submitted the task, and the completed line is run by the
    /// operator who pressed Tab, so `;`, `$( )` or a typographic quote (’, which PowerShell also ends a string
    /// with) must stay text. EscapeSingleQuotedStringContent doubles every kind of single quote PowerShell knows.
    /// </summary>
    internal static string Quote(string value) => "'" + CodeGeneration.EscapeSingleQuotedStringContent(value) + "'";

    // What the user typed so far, as the value it means. PowerShell hands over a quoted word already unescaped
    // ('o''n arrives as 'o'n), so only the quotes around it go.
    internal static string Unquote(string word)
    {
        if (word.Length == 0 || !IsQuote(word[0])) return word;
        var inner = word[1..];
        return inner.Length > 0 && IsQuote(inner[^1]) ? inner[..^1] : inner;
    }

    private static bool IsQuote(char c) => c is '\'' or '"' or '\u2018' or '\u2019' or '\u201A' or '\u201B' or '\u201C' or '\u201D' or '\u201E';
}

/// <summary>Completes -Key with keys of live (unfinished) tasks first, at most 100.</summary>
public sealed class TaskKeyCompleter : QueueValueCompleter
{
    protected override IEnumerable<string> Values(Queue queue, string prefix) =>
        queue.List(new TaskFilter { First = 1000 }).Select(t => t.Key);
}

/// <summary>Completes -Type with the task types the queue holds.</summary>
public sealed class TaskTypeCompleter : QueueValueCompleter
{
    protected override IEnumerable<string> Values(Queue queue, string prefix) =>
        queue.Summarize().Counts.Select(c => c.Type);
}

/// <summary>Completes -Id with the ids of worker sessions.</summary>
public sealed class WorkerIdCompleter : QueueValueCompleter
{
    protected override IEnumerable<string> Values(Queue queue, string prefix) =>
        queue.ListWorkers().Select(w => w.Id);
}

/// <summary>The -Provider values of Connect-PQQueue: every backend of this build (the engine's registry).</summary>
public sealed class ProviderNames : IValidateSetValuesGenerator
{
    public string[] GetValidValues() => [.. Storage.QueueBackends.Providers];
}

/// <summary>Completes -User with the users the queue's tasks have.</summary>
public sealed class TaskUserCompleter : QueueValueCompleter
{
    protected override IEnumerable<string> Values(Queue queue, string prefix) =>
        queue.Summarize().Counts.Select(c => c.User).OfType<string>();
}

/// <summary>
/// Completes -Environment with the environments of the file that -ConfigPath names on the same command line (read
/// from disk, not from a queue). Nothing when -ConfigPath is missing, not a plain value, or unreadable.
/// </summary>
public sealed class ConfigEnvironmentCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        try
        {
            var given = fakeBoundParameters["ConfigPath"];
            if (given is PSObject wrapped) given = wrapped.BaseObject;
            if (given is not string path || string.IsNullOrWhiteSpace(path)) return [];
            return QueueValueCompleter.Results(QueueConfigFile.Environments(CompletionPaths.Resolve(path)), wordToComplete);
        }
        catch (Exception)
        {
            return []; // completion must never break the prompt
        }
    }
}

/// <summary>
/// Completes -Table with the queue tables of the database the command names: its -Url, -ConnectionString and
/// -Provider, or -ConfigPath (and -Environment) on the same command line, else -Queue or the session's queue.
/// </summary>
public sealed class QueueTableCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        try
        {
            var config = NamedConfig(fakeBoundParameters);
            var queue = config is null ? PQSession.Resolve(Value(fakeBoundParameters, "Queue") as Queue) : Queue.Open(config);
            // A queue opened only for this completion is let go once the listing ends, even one that outlives the bound.
            var listing = Task.Run(() => queue.ListQueueTablesAsync());
            if (config is not null) listing.ContinueWith(_ => queue.Dispose(), TaskScheduler.Default);
            return QueueValueCompleter.Results(CompletionTime.Bounded(_ => listing), wordToComplete);
        }
        catch (Exception)
        {
            return []; // completion must never break the prompt
        }
    }

    private static object? Value(IDictionary bound, string name) => bound[name] is PSObject wrapped ? wrapped.BaseObject : bound[name];

    // The queue settings the command line spells out (resolved as Connect-PQQueue resolves them), or null.
    private static QueueConfig? NamedConfig(IDictionary bound)
    {
        var Resolve = CompletionPaths.Resolve;
        if (Value(bound, "Url") is string url && !string.IsNullOrWhiteSpace(url))
            return new QueueConfig { Url = QueueConfig.ResolveSqliteUrl(url, Resolve) };
        if (Value(bound, "ConnectionString") is string connection && Value(bound, "Provider") is string provider)
            return new QueueConfig { ConnectionString = connection, Provider = provider };
        if (Value(bound, "ConfigPath") is string configPath && !string.IsNullOrWhiteSpace(configPath))
        {
            var config = QueueConfigFile.LoadChoosingEnvironment(Resolve(configPath), Value(bound, "Environment") as string).Config;
            if (config.Url is { } fileUrl) config.Url = QueueConfig.ResolveSqliteUrl(fileUrl, Resolve);
            return config;
        }
        return null;
    }
}

/// <summary>How long a completer may wait for its database: a slow or unreachable server must not hang the prompt.</summary>
internal static class CompletionTime
{
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(2);

    /// <summary>What <paramref name="work"/> returns within <see cref="Limit"/>; nothing if it takes longer or fails.</summary>
    public static IReadOnlyList<string> Bounded(Func<CancellationToken, Task<IReadOnlyList<string>>> work)
    {
        var cancel = new CancellationTokenSource(Limit); // not disposed: work that outlives the bound may still hold its token
        var task = work(cancel.Token);
        _ = task.ContinueWith(t => _ = t.Exception, TaskContinuationOptions.OnlyOnFaulted); // observed: a late failure is no unobserved exception
        return task.Wait(Limit) && task.IsCompletedSuccessfully ? task.Result : [];
    }
}

/// <summary>Paths typed on the command line being completed, resolved as the command will resolve them.</summary>
internal static class CompletionPaths
{
    /// <summary>
    /// Relative to PowerShell's current location. A completer runs while the prompt's pipeline does, so the session
    /// state is reached through a nested pipeline (SessionStateProxy refuses calls then).
    /// </summary>
    public static string Resolve(string path)
    {
        using var ps = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
        ps.AddScript("$ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($args[0])").AddArgument(path);
        return ps.Invoke().FirstOrDefault()?.BaseObject as string ?? Path.GetFullPath(path);
    }
}
