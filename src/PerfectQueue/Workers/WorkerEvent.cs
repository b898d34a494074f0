using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PerfectQueue.Workers;

/// <summary>
/// One line of what a worker does, for its log: its text, what kind of event it is (<see cref="Event"/>, one of
/// <see cref="WorkerEvents"/>' names) and, for a task's events, which task, attempt and outcome. The text never
/// holds a connection's secrets (queues describe themselves masked). docs/telemetry.md lists the events.
/// </summary>
public sealed record WorkerEvent(DateTimeOffset At, string Message)
{
    public string Event { get; init; } = WorkerEvents.Message;
    public WorkerEventLevel Level { get; init; } = WorkerEventLevel.Information;
    /// <summary>The worker session (Get-PQWorker's Id).</summary>
    public string? Session { get; init; }
    public string? Key { get; init; }
    public string? Type { get; init; }
    public int? Attempt { get; init; }
    /// <summary>task.ended: how long the handler ran.</summary>
    public TimeSpan? Duration { get; init; }
    /// <summary>task.ended and task.not_started: Succeeded, Retried, Failed, Cancelled, Released, Lost or NotRecorded.</summary>
    public string? Outcome { get; init; }
}

public enum WorkerEventLevel { Information, Warning, Error }

/// <summary>The names of a worker's log events: stable, for log shippers and alerts to match on.</summary>
public static class WorkerEvents
{
    public const string Started = "worker.started";
    public const string Stopped = "worker.stopped";
    /// <summary>A signal or a stop request, a restart, the log reopened, the configuration chosen: the host's own lines.</summary>
    public const string Host = "worker.host";
    public const string TaskStarted = "task.started";
    public const string TaskEnded = "task.ended";
    /// <summary>Ended at acquire without running: cancelled before it started, or out of attempts.</summary>
    public const string TaskNotStarted = "task.not_started";
    public const string TaskTimedOut = "task.timed_out";
    /// <summary>Its handler ignored a stop for the whole stop limit and was abandoned (its processor replaced).</summary>
    public const string TaskAbandoned = "task.abandoned";
    /// <summary>A line a handler wrote (output, warning, information, error, a native program's stderr).</summary>
    public const string TaskOutput = "task.output";
    public const string AcquireFailed = "acquire.failed";
    public const string AcquireRecovered = "acquire.recovered";
    /// <summary>Anything else the worker says (heartbeats, processors, pauses, schedules).</summary>
    public const string Message = "worker.message";
}

/// <summary>How a worker's log lines are written (Start-PQWorker -LogFormat, the config file's log_format).</summary>
public enum WorkerLogFormat
{
    /// <summary>"2026-12-04 01:23:45.678 message": the local time and the text.</summary>
    Text,
    /// <summary>One JSON object per line, for log shippers: time, level, event, message, session, key, type, attempt, duration, outcome.</summary>
    Json,
}

/// <summary>Writes a <see cref="WorkerEvent"/> as one log line.</summary>
public static class WorkerEventFormat
{
    // Log lines are read by people and log shippers, never put into HTML: '+', '<' and non-ASCII letters stay as they
    // are; quotes, backslashes and control characters (a newline in a message) are still escaped, so a line is one line.
    private static readonly JsonWriterOptions Options = new() { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Format(WorkerEvent e, WorkerLogFormat format) =>
        format == WorkerLogFormat.Json ? Json(e) : $"{e.At.LocalDateTime:yyyy-MM-dd HH:mm:ss.fff} {e.Message}";

    private static string Json(WorkerEvent e)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, Options))
        {
            w.WriteStartObject();
            w.WriteString("time", e.At.ToString("yyyy-MM-dd'T'HH:mm:ss.fffzzz", CultureInfo.InvariantCulture));
            w.WriteString("level", e.Level switch { WorkerEventLevel.Warning => "warning", WorkerEventLevel.Error => "error", _ => "info" });
            w.WriteString("event", e.Event);
            w.WriteString("message", e.Message);
            if (e.Session is { } session) w.WriteString("session", session);
            if (e.Key is { } key) w.WriteString("key", key);
            if (e.Type is { } type) w.WriteString("type", type);
            if (e.Attempt is { } attempt) w.WriteNumber("attempt", attempt);
            if (e.Duration is { } duration) w.WriteNumber("duration", Math.Round(duration.TotalSeconds, 3));
            if (e.Outcome is { } outcome) w.WriteString("outcome", outcome);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
