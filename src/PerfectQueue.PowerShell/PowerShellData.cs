using System.Collections.Specialized;
using System.Management.Automation;

namespace PerfectQueue.PowerShell;

/// <summary>Turns PowerShell's wrappers into the plain values the engine stores as JSON.</summary>
internal static class PowerShellData
{
    /// <summary>
    /// PSObject → its base object; a PSCustomObject (or any PSObject with added note properties over a
    /// plain object) → an ordered dictionary of its properties. Everything else is returned unchanged.
    /// </summary>
    public static object? Adapt(object value)
    {
        if (value is not PSObject wrapped) return value;
        var inner = wrapped.BaseObject;
        if (inner is PSCustomObject)
        {
            var properties = new OrderedDictionary(StringComparer.OrdinalIgnoreCase);
            foreach (var property in wrapped.Properties)
                if (property.IsGettable) properties[property.Name] = property.Value;
            return properties;
        }
        return inner;
    }
}
