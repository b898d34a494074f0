using System.Management.Automation;

namespace PerfectQueue.PowerShell;

/// <summary>
/// An empty or blank string means "not given": Import-Csv yields '' for an empty cell, which would
/// otherwise become 0, fail a DateTime conversion, or be taken as data.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class NullIfBlankAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData) =>
        (inputData is PSObject p ? p.BaseObject : inputData) is string s && string.IsNullOrWhiteSpace(s) ? null : inputData;
}
