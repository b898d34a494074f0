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
            return Values(queue, prefix)
                .Where(v => v.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Take(Limit)
                .Select(v => new CompletionResult(Quote(v), v, CompletionResultType.ParameterValue, v))
                .ToList();
        }
        catch (Exception)
        {
            return []; // completion must never break the prompt
        }
    }

    protected abstract IEnumerable<string> Values(Queue queue, string prefix);

    /// <summary>
    /// Always single-quoted: a value comes from whoever submitted the task, and the completed line is run by the
    /// operator who pressed Tab, so `;`, `$( )` or a typographic quote (’, which PowerShell also ends a string
    /// with) must stay text. EscapeSingleQuotedStringContent doubles every kind of single quote PowerShell knows.
    /// </summary>
    internal static string Quote(string value) => "'" + CodeGeneration.EscapeSingleQuotedStringContent(value) + "'";

    // What the user typed so far, as the value it means. PowerShell hands over a quoted word already unescaped
    // ('o''n arrives as 'o'n), so only the quotes around it go.
    private static string Unquote(string word)
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
