using System.Text;
using Npgsql;

namespace PerfectQueue.Storage.Postgres;

/// <summary>
/// A statement written with <c>@name</c> parameters, rewritten once to PostgreSQL's own <c>$1, $2 ...</c>. Npgsql sends a
/// command whose parameters have no names as it is, but scans and rewrites the text of one with named parameters on every
/// execution: 6 % of a drain's client CPU (docs/performance.md). The statements every task runs (submit, acquire,
/// heartbeat, the fenced writes) use this; the rest keep Dapper's named parameters.
/// </summary>
internal sealed class PositionalStatement
{
    private readonly Dictionary<string, int> _positions = new(StringComparer.Ordinal);

    public string Sql { get; }

    public PositionalStatement(string sql)
    {
        var text = new StringBuilder(sql.Length);
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            // Quoted text, quoted names and comments are copied as they are: an @ there is no parameter.
            if (c is '\'' or '"')
            {
                var end = sql.IndexOf(c, i + 1);
                if (end < 0) throw new ArgumentException($"Unterminated {c} in the statement.", nameof(sql));
                text.Append(sql, i, end + 1 - i);
                i = end + 1; // a doubled quote ('') is two quoted runs side by side
            }
            else if (c == '-' && At(sql, i + 1, '-'))
            {
                var end = sql.IndexOf('\n', i);
                end = end < 0 ? sql.Length : end;
                text.Append(sql, i, end - i);
                i = end;
            }
            else if (c == '/' && At(sql, i + 1, '*'))
            {
                var end = sql.IndexOf("*/", i + 2, StringComparison.Ordinal);
                if (end < 0) throw new ArgumentException("Unterminated /* in the statement.", nameof(sql));
                text.Append(sql, i, end + 2 - i);
                i = end + 2;
            }
            else if (c == '$') throw new ArgumentException("A statement rewritten to positional parameters may not contain $ (dollar quotes or $n).", nameof(sql));
            else if (c == '@' && i + 1 < sql.Length && IsNameStart(sql[i + 1]) && (i == 0 || !IsNamePart(sql[i - 1]) && sql[i - 1] != '@'))
            {
                var end = i + 1;
                while (end < sql.Length && IsNamePart(sql[end])) end++;
                var name = sql[(i + 1)..end];
                if (!_positions.TryGetValue(name, out var position)) _positions[name] = position = _positions.Count + 1;
                text.Append('$').Append(position);
                i = end;
            }
            else
            {
                text.Append(c);
                i++;
            }
        }
        Sql = text.ToString();
    }

    private static bool At(string s, int i, char c) => i < s.Length && s[i] == c;
    private static bool IsNameStart(char c) => char.IsAsciiLetter(c) || c == '_';
    private static bool IsNamePart(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    /// <summary>
    /// The statement's parameters in position order, from named ones (a plain value, or an NpgsqlParameter to give
    /// its type). Each parameter of the statement must be given exactly once, and nothing else.
    /// </summary>
    private NpgsqlParameter[] Bind(ReadOnlySpan<(string Name, object? Value)> values)
    {
        var bound = new NpgsqlParameter[_positions.Count];
        foreach (var (name, value) in values)
        {
            if (!_positions.TryGetValue(name, out var position)) throw new ArgumentException($"The statement has no parameter @{name}.", nameof(values));
            if (bound[position - 1] is not null) throw new ArgumentException($"@{name} is given twice.", nameof(values));
            var parameter = value as NpgsqlParameter ?? new NpgsqlParameter { Value = value ?? DBNull.Value };
            parameter.ParameterName = "";
            bound[position - 1] = parameter;
        }
        if (Array.IndexOf(bound, null) is var missing and >= 0)
            throw new ArgumentException($"@{_positions.First(p => p.Value == missing + 1).Key} is not given.", nameof(values));
        return bound;
    }

    public NpgsqlBatchCommand BatchCommand(params ReadOnlySpan<(string Name, object? Value)> values)
    {
        var command = new NpgsqlBatchCommand(Sql);
        command.Parameters.AddRange(Bind(values));
        return command;
    }

    public NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, params ReadOnlySpan<(string Name, object? Value)> values)
    {
        var command = new NpgsqlCommand(Sql, connection, transaction);
        command.Parameters.AddRange(Bind(values));
        return command;
    }
}
