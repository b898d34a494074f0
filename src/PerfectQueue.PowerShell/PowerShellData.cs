using System.Collections.Specialized;
using System.Management.Automation;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PerfectQueue.PowerShell;

/// <summary>Converts between PowerShell's values and the JSON objects the engine stores.</summary>
internal static class PowerShellData
{
    /// <summary>
    /// PSObject → its base object; a PSCustomObject → an ordered dictionary of its properties.
    /// Everything else is returned unchanged. Registered as the engine's TaskData.ValueAdapter.
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

    /// <summary>
    /// A JSON object as PowerShell shows data: an ordered dictionary with case-insensitive keys (what
    /// [ordered]@{} is, so $task.Data.DB finds "db"), arrays as object[], numbers as int, long or double,
    /// so data round-trips what was submitted. JSON keys that differ only in case collapse to the last.
    /// </summary>
    public static OrderedDictionary ToHashtable(JsonObject json)
    {
        var table = new OrderedDictionary(json.Count, StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in json) table[key] = ToValue(value);
        return table;
    }

    private static object? ToValue(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => ToHashtable(o),
        JsonArray a => a.Select(ToValue).ToArray(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<JsonElement>().GetString(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => Number(v.GetValue<JsonElement>()),
            _ => null,
        },
        _ => node.ToJsonString(),
    };

    // Casts to object on each branch: a conditional of int, long and double would make them all double.
    private static object Number(JsonElement e) =>
        e.TryGetInt32(out var i) ? (object)i : e.TryGetInt64(out var l) ? (object)l : (object)e.GetDouble();
}
