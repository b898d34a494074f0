namespace PerfectQueue;

// The original PerfectQueue's error hierarchy, with .NET names. docs/errors.md maps each to the
// original's name and says which operations throw it.

/// <summary>The root of every exception PerfectQueue throws on purpose.</summary>
public class PerfectQueueException : Exception
{
    public PerfectQueueException(string message) : base(message) { }
    public PerfectQueueException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>A task-level failure (the original's TaskError). <see cref="Key"/> names the task when known.</summary>
public class TaskException : PerfectQueueException
{
    public TaskException(string message, string? key = null, Exception? inner = null) : base(message, inner) => Key = key;
    public string? Key { get; }
}

/// <summary>Marks an error that a retrying caller may ignore: the state it wanted already holds.</summary>
public interface IIdempotentError { }

/// <summary>The task was asked to cancel (the original's CancelRequestedError).</summary>
public class CancelRequestedException : TaskException
{
    public CancelRequestedException(string message, string? key = null) : base(message, key) { }
}

/// <summary>
/// A task's stored data cannot be read as a JSON object (duplicate names, broken text, bad gzip): a row written
/// before submit checked data, or by hand. The task itself is fine: finish it, or resubmit it with good data.
/// </summary>
public class TaskDataException : TaskException
{
    public TaskDataException(string message, string? key = null, Exception? inner = null) : base(message, key, inner) { }
}

/// <summary>The task is already finished (the original's AlreadyFinishedError).</summary>
public class AlreadyFinishedException : TaskException
{
    public AlreadyFinishedException(string message, string? key = null) : base(message, key) { }
}

/// <summary>Force-finishing a task that is already finished: the wanted state holds.</summary>
public sealed class IdempotentAlreadyFinishedException : AlreadyFinishedException, IIdempotentError
{
    public IdempotentAlreadyFinishedException(string message, string? key = null) : base(message, key) { }
}

/// <summary>Why a holder lost its lease.</summary>
public enum PreemptionReason
{
    /// <summary>The lease expired and another worker acquired the task.</summary>
    Reacquired,
    /// <summary>The lease expired and nobody holds the task now; it is waiting again.</summary>
    LeaseExpired,
    /// <summary>Somebody force-finished the task.</summary>
    ForceFinished,
    /// <summary>The task was finished by somebody else (for example cancelled after the lease expired).</summary>
    Finished,
    /// <summary>The task no longer exists (finished and cleaned up).</summary>
    Deleted,
}

/// <summary>
/// The holder's lease is no longer current (the original's PreemptedError). Every write of a holder is
/// fenced by its lease token, so a stale holder can never finish, retry, release or update a task.
/// </summary>
public class PreemptedException : TaskException
{
    public PreemptedException(string message, string? key, PreemptionReason reason) : base(message, key) => Reason = reason;
    public PreemptionReason Reason { get; }
}

/// <summary>No task has this key (the original's NotFoundError).</summary>
public class NotFoundException : TaskException
{
    public NotFoundException(string message, string? key = null) : base(message, key) { }
}

/// <summary>The task is not finished yet, so it cannot be restarted or removed (Restart-PQTask, Remove-PQTask).</summary>
public class NotFinishedException : TaskException
{
    public NotFinishedException(string message, string? key = null) : base(message, key) { }
}

/// <summary>A not-found that a retrying caller may ignore.</summary>
public sealed class IdempotentNotFoundException : NotFoundException, IIdempotentError
{
    public IdempotentNotFoundException(string message, string? key = null) : base(message, key) { }
}

/// <summary>A task with this key exists, or finished less than retention_time ago (the original's AlreadyExistsError).</summary>
public class AlreadyExistsException : TaskException
{
    public AlreadyExistsException(string message, string? key = null) : base(message, key) { }
}

/// <summary>
/// Submit found the key taken. As in the original this is the idempotent variant: a client that retries a
/// submit until it succeeds may treat it as success.
/// </summary>
public sealed class IdempotentAlreadyExistsException : AlreadyExistsException, IIdempotentError
{
    public IdempotentAlreadyExistsException(string message, string? key = null) : base(message, key) { }
}

/// <summary>The operation is not supported by this backend or in this state (the original's NotSupportedError).</summary>
public class OperationNotSupportedException : TaskException
{
    public OperationNotSupportedException(string message, string? key = null) : base(message, key) { }
}

/// <summary>A worker is stopping (the original's ProcessStopError).</summary>
public class ProcessStopException : PerfectQueueException
{
    public ProcessStopException(string message) : base(message) { }
}

/// <summary>The worker stops now: handlers are stopped and their tasks released.</summary>
public sealed class ImmediateProcessStopException : ProcessStopException
{
    public ImmediateProcessStopException(string message) : base(message) { }
}

/// <summary>The worker stops after running tasks end.</summary>
public sealed class GracefulProcessStopException : ProcessStopException
{
    public GracefulProcessStopException(string message) : base(message) { }
}

/// <summary>A configuration key or value is wrong. <see cref="ConfigKey"/> names it when known.</summary>
public class ConfigException : PerfectQueueException
{
    public ConfigException(string message, string? configKey = null, Exception? inner = null) : base(message, inner) => ConfigKey = configKey;
    public string? ConfigKey { get; }
}

/// <summary>The queue's table does not exist yet; the message says how to create it.</summary>
public sealed class QueueNotInitializedException : PerfectQueueException
{
    public QueueNotInitializedException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>What an <see cref="ArgumentException"/> says, for people.</summary>
internal static class ArgumentText
{
    /// <summary>
    /// The message without .NET's " (Parameter 'x')", which names a C# parameter, not anything a user typed.
    /// The suffix is localized: it is taken from the runtime, not spelled here.
    /// </summary>
    public static string WithoutParameterName(ArgumentException e)
    {
        if (e.ParamName is null) return e.Message;
        var suffix = new ArgumentException("", e.ParamName).Message;
        return e.Message.EndsWith(suffix, StringComparison.Ordinal) && e.Message.Length > suffix.Length
            ? e.Message[..^suffix.Length].TrimEnd()
            : e.Message;
    }
}
