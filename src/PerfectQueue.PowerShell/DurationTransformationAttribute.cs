using System.Globalization;
using System.Management.Automation;

namespace PerfectQueue.PowerShell;

/// <summary>
/// Durations are TimeSpans that also take a plain number of seconds, as the original's config does:
/// -AliveTime 30 is thirty seconds, not thirty ticks. Text like '00:05:00' parses as a TimeSpan; blank
/// text (an empty CSV cell) is "not given".
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class DurationTransformationAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject p ? p.BaseObject : inputData;
        if (value is null || value is string blank && string.IsNullOrWhiteSpace(blank)) return null; // an empty CSV cell: not given
        return ToDuration(value) ?? throw new ArgumentTransformationMetadataException(
            $"'{value}' is not a duration. Give a number of seconds (30), or a TimeSpan ('00:00:30' or [TimeSpan]::FromMinutes(5)).");
    }

    /// <summary>A TimeSpan, a number of seconds, or text of either; null when the value is none of them.</summary>
    internal static TimeSpan? ToDuration(object? value) => value switch
    {
        TimeSpan t => t,
        int or long or short or byte or uint or ulong or ushort or sbyte => TimeSpan.FromSeconds(Convert.ToDouble(value, CultureInfo.InvariantCulture)),
        double or float or decimal => TimeSpan.FromSeconds(Convert.ToDouble(value, CultureInfo.InvariantCulture)),
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) => TimeSpan.FromSeconds(seconds),
        string s when TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out var span) => span,
        _ => null,
    };
}
