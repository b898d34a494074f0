using System.Collections;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PerfectQueue;

/// <summary>
/// Task data is a JSON object, stored as UTF-8 JSON bytes or as gzip of them. Reads detect gzip by its
/// magic bytes (a JSON object never starts with 0x1F), so compression can change at any time.
/// </summary>
internal static class TaskData
{
    /// <summary>
    /// A host's way to turn its own wrapper objects into plain values before they are converted (the
    /// PowerShell module unwraps PSObject and turns PSCustomObject into a dictionary). It gets every non-null
    /// value and returns it unchanged when it has nothing to do.
    /// </summary>
    public static Func<object, object?>? ValueAdapter { get; set; }

    /// <summary>Turns what a caller passed as data into a JSON object. Null is an empty object.</summary>
    /// <exception cref="ArgumentException">the value is not a JSON object (or text of one).</exception>
    public static JsonObject ToJsonObject(object? data)
    {
        if (data is not null && ValueAdapter is { } adapt) data = adapt(data);
        var node = data switch
        {
            null => new JsonObject(),
            string s => ParseObjectText(s),
            _ => ToNode(data, depth: 0),
        };
        return node as JsonObject
            ?? throw new ArgumentException($"Task data must be a JSON object (a hashtable or an object with properties), not {Describe(node)}.", nameof(data));
    }

    /// <summary>
    /// The most data a task may carry: 16 MiB of UTF-8 JSON, counted before compression (what a reader holds in
    /// memory). Data is for names, paths and parameters; put big content in files or tables and pass their names.
    /// </summary>
    public const int MaxDataBytes = 16 * 1024 * 1024;

    /// <summary>Encodes data for storage.</summary>
    /// <exception cref="ArgumentException">the value is not a JSON object, has duplicate names or broken text, nests too deep, or is too large.</exception>
    public static byte[] Encode(object? data, DataCompression compression)
    {
        byte[] json;
        try { json = Encoding.UTF8.GetBytes(ToJsonObject(data).ToJsonString()); }
        catch (InvalidOperationException e) // JSON text whose \u escapes are not valid UTF-16 cannot be written back
        {
            throw new ArgumentException($"Task data holds text that is not valid Unicode ({e.Message}). Give a JSON object such as {{\"db\":\"sales\"}}, or a hashtable.", nameof(data), e);
        }
        if (json.Length > MaxDataBytes)
            throw new ArgumentException($"Task data is {json.Length:N0} bytes of JSON; the limit is {MaxDataBytes:N0} (16 MiB). Store big content elsewhere (a file, a table) and pass its name in the data.", nameof(data));
        // Parsed once more as a reader will parse it: whatever a submit stores must read back (JsonNode parses
        // lazily, so duplicate names or a broken \u escape in JSON text would otherwise surface only on read).
        if (Check(json) is { } problem) throw new ArgumentException($"Task data {problem}. Give a JSON object such as {{\"db\":\"sales\"}}, or a hashtable.", nameof(data));
        if (compression == DataCompression.None) return json;
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true)) gzip.Write(json);
        return buffer.ToArray();
    }

    /// <summary>True when stored bytes are gzip.</summary>
    public static bool IsCompressed(ReadOnlySpan<byte> stored) => stored.Length >= 2 && stored[0] == 0x1F && stored[1] == 0x8B;

    /// <summary>Decodes stored bytes (plain or gzip) to a JSON object. Null or empty is an empty object.</summary>
    /// <exception cref="TaskDataException">the stored bytes are not a readable JSON object (a row written before
    /// submit checked data, or by hand).</exception>
    public static JsonObject Decode(byte[]? stored)
    {
        if (stored is null || stored.Length == 0) return new JsonObject();
        byte[] json;
        try
        {
            json = stored;
            if (IsCompressed(stored))
            {
                using var input = new GZipStream(new MemoryStream(stored), CompressionMode.Decompress);
                using var output = new MemoryStream();
                input.CopyTo(output);
                json = output.ToArray();
            }
        }
        catch (InvalidDataException e)
        {
            throw new TaskDataException($"The stored task data is not readable gzip ({e.Message}).", inner: e);
        }
        if (Check(json) is { } problem) throw new TaskDataException($"The stored task data {problem}.");
        return JsonNode.Parse(json, documentOptions: Strict) as JsonObject ?? new JsonObject();
    }

    private static readonly JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false, MaxDepth = MaxDepth };

    // Null when the bytes are a JSON object every reader can take in full; otherwise what is wrong.
    private static string? Check(byte[] json)
    {
        try
        {
            using var document = JsonDocument.Parse(json, Strict);
            if (document.RootElement.ValueKind != JsonValueKind.Object) return $"is {document.RootElement.ValueKind.ToString().ToLowerInvariant()}, not a JSON object";
            Walk(document.RootElement);
            return null;
        }
        catch (JsonException e) { return $"is not valid JSON ({e.Message})"; }
        catch (InvalidOperationException e) { return $"holds text that is not valid Unicode ({e.Message})"; }
    }

    // Reads every name and string, as a full conversion would: a lone surrogate escape throws here.
    private static void Walk(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject()) { _ = p.Name; Walk(p.Value); }
                break;
            case JsonValueKind.Array:
                foreach (var item in e.EnumerateArray()) Walk(item);
                break;
            case JsonValueKind.String:
                _ = e.GetString();
                break;
        }
    }

    private static JsonNode ParseObjectText(string text)
    {
        try
        {
            return JsonNode.Parse(text, documentOptions: Strict) ?? throw new ArgumentException("Task data text is 'null'; give a JSON object such as {\"db\":\"sales\"}.", "data");
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"Task data text is not valid JSON ({e.Message}). Give a JSON object such as {{\"db\":\"sales\"}}, or a hashtable.", "data", e);
        }
    }

    private static string Describe(JsonNode? node) => node switch
    {
        null => "null",
        JsonArray => "an array",
        JsonValue v => $"a single {v.GetValueKind().ToString().ToLowerInvariant()} value",
        _ => node.GetType().Name,
    };

    private const int MaxDepth = 64;

    // Converts plain .NET values; the PowerShell layer unwraps its own wrappers before calling this.
    private static JsonNode? ToNode(object? value, int depth)
    {
        if (depth > MaxDepth) throw new ArgumentException($"Task data nests deeper than {MaxDepth} levels (a reference cycle?).", "data");
        if (value is not null && ValueAdapter is { } adapt) value = adapt(value);
        switch (value)
        {
            case null: return null;
            case JsonNode node: return node.DeepClone();
            case JsonElement element: return JsonNode.Parse(element.GetRawText());
            case string s: return JsonValue.Create(s);
            case bool b: return JsonValue.Create(b);
            case char c: return JsonValue.Create(c.ToString());
            case DateTime dt: return JsonValue.Create(dt.ToString("O"));
            case DateTimeOffset dto: return JsonValue.Create(dto.ToString("O"));
            case TimeSpan ts: return JsonValue.Create(ts.ToString("c"));
            case Guid g: return JsonValue.Create(g.ToString());
            case Enum e: return JsonValue.Create(e.ToString());
            case byte or sbyte or short or ushort or int or uint or long or ulong or float or double or decimal:
                return JsonSerializer.SerializeToNode(value, value.GetType());
            case IDictionary dict:
            {
                var obj = new JsonObject();
                foreach (DictionaryEntry entry in dict)
                    obj[Convert.ToString(entry.Key, System.Globalization.CultureInfo.InvariantCulture) ?? ""] = ToNode(entry.Value, depth + 1);
                return obj;
            }
            case IEnumerable list:
            {
                var array = new JsonArray();
                foreach (var item in list) array.Add(ToNode(item, depth + 1));
                return array;
            }
            default:
                return JsonSerializer.SerializeToNode(value, value.GetType());
        }
    }
}
