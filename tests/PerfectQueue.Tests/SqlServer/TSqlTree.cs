using Microsoft.SqlServer.TransactSql.ScriptDom;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

/// <summary>Parses T-SQL with ScriptDom (failing the test on any parse error) and finds nodes of a kind.</summary>
internal static class TSqlTree
{
    public static readonly TSqlParser Newest = new TSql180Parser(true);

    public static TSqlFragment Parse(string sql, TSqlParser? parser = null)
    {
        var fragment = (parser ?? Newest).Parse(new StringReader(sql), out var errors);
        Assert.True(errors.Count == 0, string.Join("\n", errors.Select(e => $"{e.Number} at {e.Line}:{e.Column}: {e.Message}")) + "\n" + sql);
        return fragment;
    }

    public static List<T> Find<T>(TSqlFragment fragment) where T : TSqlFragment
    {
        var collector = new Collector<T>();
        fragment.Accept(collector);
        return collector.Found;
    }

    private sealed class Collector<T> : TSqlFragmentVisitor where T : TSqlFragment
    {
        public List<T> Found { get; } = [];
        public override void Visit(TSqlFragment node)
        {
            if (node is T t) Found.Add(t);
        }
    }
}
