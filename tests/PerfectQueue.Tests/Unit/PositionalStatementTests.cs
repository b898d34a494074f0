using Npgsql;
using PerfectQueue.Storage.Postgres;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>The one-time rewrite of @name parameters to PostgreSQL's $n (PositionalStatement).</summary>
public sealed class PositionalStatementTests
{
    [Fact]
    public void Names_become_positions_in_order_of_first_use_and_a_repeated_name_keeps_its_position()
    {
        var s = new PositionalStatement("SELECT @b + @a, @b::bigint, x@y, a@>b, @@x FROM t WHERE c = @a_1");
        Assert.Equal("SELECT $1 + $2, $1::bigint, x@y, a@>b, @@x FROM t WHERE c = $3", s.Sql);
    }

    [Fact]
    public void Quoted_text_names_and_comments_are_left_as_they_are()
    {
        var s = new PositionalStatement("SELECT '@a', 'it''s @b', \"@c\", @d -- @e\n/* @f */ , @g");
        Assert.Equal("SELECT '@a', 'it''s @b', \"@c\", $1 -- @e\n/* @f */ , $2", s.Sql);
    }

    [Fact]
    public void Parameters_are_bound_by_name_to_their_positions_without_names()
    {
        var s = new PositionalStatement("SELECT @b, @a");
        var typed = new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text, Value = DBNull.Value };
        var command = s.BatchCommand(("a", 1), ("b", typed));
        Assert.Equal(2, command.Parameters.Count);
        Assert.Same(typed, command.Parameters[0]);
        Assert.Equal(1, command.Parameters[1].Value);
        Assert.All(command.Parameters, p => Assert.Equal("", p.ParameterName));
        Assert.Equal(DBNull.Value, s.BatchCommand(("a", null), ("b", 2)).Parameters[1].Value);
    }

    [Fact]
    public void A_missing_unknown_or_repeated_parameter_and_a_dollar_in_the_text_are_refused()
    {
        var s = new PositionalStatement("SELECT @a, @b");
        Assert.Contains("@b is not given", Assert.Throws<ArgumentException>(() => s.BatchCommand(("a", 1))).Message);
        Assert.Contains("no parameter @c", Assert.Throws<ArgumentException>(() => s.BatchCommand(("a", 1), ("b", 2), ("c", 3))).Message);
        Assert.Contains("@a is given twice", Assert.Throws<ArgumentException>(() => s.BatchCommand(("a", 1), ("a", 2))).Message);
        Assert.Throws<ArgumentException>(() => new PositionalStatement("SELECT $$x$$"));
        Assert.Throws<ArgumentException>(() => new PositionalStatement("SELECT 'open"));
    }
}
