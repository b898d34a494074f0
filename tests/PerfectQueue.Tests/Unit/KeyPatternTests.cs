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

}
