using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting.Child;

/// <summary>
/// The message kinds of the protocol between a process-mode worker and its child processes (docs/worker.md,
/// "Process processors"). Every message is a JSON object whose "t" is one of these.
/// </summary>
internal static class ChildMessage
{
    // parent → child
    public const string Setup = "setup";
    public const string Run = "run";
    public const string Cancel = "cancel";
    public const string StopRequested = "stopRequested";
    public const string Stop = "stop";
    public const string Reply = "reply";
    public const string Exit = "exit";
    // child → parent
    public const string Ready = "ready";
    public const string SetupFailed = "setupFailed";
    public const string Beat = "beat";
    public const string Log = "log";
    public const string Request = "request";
    public const string End = "end";

    public static JsonObject Of(string kind) => new() { ["t"] = kind };
    public static string KindOf(JsonObject message) => (string?)message["t"] ?? "";

    /// <summary>A log event of the child's processor, for the parent's log (its time is the parent's, on arrival).</summary>
    public static JsonObject LogOf(WorkerEvent e) => new()
    {
        ["t"] = Log, ["line"] = e.Message, ["event"] = e.Event, ["level"] = e.Level.ToString(),
        ["key"] = e.Key, ["type"] = e.Type, ["attempt"] = e.Attempt,
    };

    /// <summary>The event a <see cref="Log"/> message carries; a bare line (the child host's own, such as its SIGTERM notice) is a plain message.</summary>
    public static WorkerEvent EventOf(JsonObject message) => new(DateTimeOffset.Now, (string?)message["line"] ?? "")
    {
        Event = (string?)message["event"] ?? WorkerEvents.Message,
        Level = Enum.TryParse<WorkerEventLevel>((string?)message["level"], out var level) ? level : WorkerEventLevel.Information,
        Key = (string?)message["key"], Type = (string?)message["type"], Attempt = (int?)message["attempt"],
    };
}

/// <summary>
/// One end of the duplex channel: frames of a 4-byte little-endian length and that many bytes of UTF-8 JSON.
/// The channel is a named pipe of its own (never the child's stdout), so nothing a handler or a native program
/// writes can corrupt it. Sends from several threads are serialized.
/// </summary>
internal sealed class ChildChannel(Stream stream) : IDisposable
{
    /// <summary>The largest frame either side accepts: task data is at most 16 MiB of JSON, sent as base64.</summary>
    public const int MaxFrameBytes = 64 * 1024 * 1024;

    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly byte[] _header = new byte[4];

    public void Send(JsonObject message)
    {
        var frame = Frame(message);
        _sending.Wait();
        try
        {
            stream.Write(frame);
            stream.Flush();
        }
        finally { _sending.Release(); }
    }

    public async Task SendAsync(JsonObject message, CancellationToken ct = default)
    {
        var frame = Frame(message);
        await _sending.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await stream.WriteAsync(frame, ct).ConfigureAwait(false);
            await stream.FlushAsync(ct).ConfigureAwait(false);
        }
        finally { _sending.Release(); }
    }

    /// <summary>The next message, or null when the other end closed the channel.</summary>
    /// <exception cref="InvalidDataException">a frame that is not a JSON object, or too large.</exception>
    public async Task<JsonObject?> ReceiveAsync(CancellationToken ct = default)
    {
        if (!await FillAsync(_header, ct).ConfigureAwait(false)) return null;
        var length = BinaryPrimitives.ReadInt32LittleEndian(_header);
        if (length is < 2 or > MaxFrameBytes) throw new InvalidDataException($"A frame of {length} bytes on the child channel: the other end does not speak this protocol.");
        var body = new byte[length];
        if (!await FillAsync(body, ct).ConfigureAwait(false)) throw new InvalidDataException("The child channel closed in the middle of a frame.");
        return JsonNode.Parse(body) as JsonObject ?? throw new InvalidDataException("A frame on the child channel is not a JSON object.");
    }

    private async Task<bool> FillAsync(byte[] buffer, CancellationToken ct)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(read), ct).ConfigureAwait(false);
            if (n == 0)
            {
                if (read == 0) return false;
                throw new InvalidDataException("The child channel closed in the middle of a frame.");
            }
            read += n;
        }
        return true;
    }

    private static byte[] Frame(JsonObject message)
    {
        var body = Encoding.UTF8.GetBytes(message.ToJsonString());
        if (body.Length > MaxFrameBytes) throw new InvalidDataException($"A message of {body.Length} bytes is more than the child channel carries ({MaxFrameBytes}).");
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteInt32LittleEndian(frame, body.Length);
        body.CopyTo(frame, 4);
        return frame;
    }

    public void Dispose() => stream.Dispose();
}
