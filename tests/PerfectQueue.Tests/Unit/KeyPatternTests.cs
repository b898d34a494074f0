using PerfectQueue.Tests.Conformance;
using Xunit;

namespace PerfectQueue.Tests.Unit;

/// <summary>The reference matcher the backends' key wildcards are compared with (FinishedTaskConformance).</summary>
public sealed class KeyPatternTests
{
    [Fact]
    public void The_reference_matcher_behaves_as_PowerShell_wildcards()
    {
        Assert.Equal(["a%b", "a_b"], FinishedTaskConformance.SpecialKeys.Where(KeyPattern.Parse("a[%_]b").IsMatch).Order(StringComparer.Ordinal));
        Assert.Equal(["a*b"], FinishedTaskConformance.SpecialKeys.Where(KeyPattern.Parse("a`*b").IsMatch));
        Assert.Equal(["a[1]b"], FinishedTaskConformance.SpecialKeys.Where(KeyPattern.Parse("a`[1`]b").IsMatch));
        Assert.Equal(["backup-1", "backup-22"], FinishedTaskConformance.SpecialKeys.Where(KeyPattern.Parse("backup-*").IsMatch));
        Assert.Equal(["a%b"], FinishedTaskConformance.SpecialKeys.Where(KeyPattern.Parse("a%b").IsMatch));
        Assert.Equal(16, FinishedTaskConformance.SpecialKeys.Count(KeyPattern.Parse("a?b").IsMatch));
        Assert.Throws<ArgumentException>(() => KeyPattern.Parse("a[b"));
        Assert.Throws<ArgumentException>(() => KeyPattern.Parse("a[]b"));
        Assert.Throws<ArgumentException>(() => KeyPattern.Parse("a[z-a]b"));
        Assert.True(KeyPattern.HasWildcards("a*"));
        Assert.False(KeyPattern.HasWildcards("a`*"));
    }


    // SQL Server has no server here: its LIKE translation is pinned text (the other three run in FinishedTaskConformance).
    [Theory]
    [InlineData("a%b", "a[%]b")]
    [InlineData("a_b*", "a[_]b%")]
    [InlineData("a?c", "a_c")]
    [InlineData("a`[1`]b", "a[[]1]b")]
    [InlineData("a[%_]b", "a[%_]b")]
    [InlineData("a[^]b", "a^b")]
    [InlineData("a[-^x]b", "a[x^-]b")]
    [InlineData("r[a-z]port-*", "r[a-z]port-%")]
    [InlineData("a'b", "a'b")]
    public void SQL_Server_LIKE_patterns_keep_literals_literal_without_an_escape_clause(string pattern, string like) =>
        Assert.Equal(like, Storage.KeyPatternSql.SqlServerLike(KeyPattern.Parse(pattern)));

    [Theory]
    [InlineData("a*b", "a*b")]
    [InlineData("a`*b`?", "a[*]b[?]")]
    [InlineData("a`[b", "a[[]b")]
    [InlineData("a%_b", "a%_b")]
    [InlineData("[^]x", "^x")]
    public void SQLite_GLOB_patterns_keep_literals_literal(string pattern, string glob) =>
        Assert.Equal(glob, Storage.KeyPatternSql.Glob(KeyPattern.Parse(pattern)));

    [Theory]
    [InlineData("backup-*", "^backup\\-(.|\\n)*$")]
    [InlineData("a.b?", "^a\\.b(.|\\n)$")]
    [InlineData("[a-c-]", "^[a-c\\-]$")]
    public void Regular_expressions_are_anchored_and_escape_punctuation(string pattern, string regex) =>
        Assert.Equal(regex, Storage.KeyPatternSql.Regex(KeyPattern.Parse(pattern)));
}
