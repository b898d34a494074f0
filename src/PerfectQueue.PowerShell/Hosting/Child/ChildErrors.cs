using System.Text.Json.Nodes;

namespace PerfectQueue.PowerShell.Hosting.Child;

/// <summary>
/// An error of a write the parent applied for its child, carried back as kind + message (+ key, reason) and
/// rethrown in the child as the same exception type, so a handler's catch blocks work as in a runspace.
/// </summary>
internal static class ChildErrors
{
    public static JsonObject ToJson(Exception e)
    {
        if (e is AggregateException { InnerException: { } inner }) e = inner;
        var kind = e switch
        {
            PreemptedException => "preempted",
            AlreadyFinishedException => "alreadyFinished",
            CancelRequestedException => "cancelRequested",
            TaskDataException => "taskData",
            NotFoundException => "notFound",
            TaskException => "task",
            ArgumentException => "argument",
            _ => "other",
        };
        var error = new JsonObject { ["kind"] = kind, ["message"] = e.Message };
        if (e is TaskException { Key: { } key }) error["key"] = key;
        if (e is PreemptedException p) error["reason"] = p.Reason.ToString();
        return error;
    }

    public static Exception FromJson(JsonObject? error)
    {
        var message = (string?)error?["message"] ?? "The worker could not apply the write (no reason given).";
        var key = (string?)error?["key"];
        return (string?)error?["kind"] switch
        {
            "preempted" => new PreemptedException(message, key, Enum.TryParse<PreemptionReason>((string?)error?["reason"], out var r) ? r : PreemptionReason.Reacquired),
            "alreadyFinished" => new AlreadyFinishedException(message, key),
            "cancelRequested" => new CancelRequestedException(message, key),
            "taskData" => new TaskDataException(message, key),
            "notFound" => new NotFoundException(message, key),
            "task" => new TaskException(message, key),
            "argument" => new ArgumentException(message),
            _ => new InvalidOperationException(message),
        };
    }
}
