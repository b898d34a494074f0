using System.Data.Common;
using System.Management.Automation;

namespace PerfectQueue.PowerShell;

/// <summary>
/// The stable error ids (FullyQualifiedErrorId starts with them) and categories for the engine's
/// exceptions, so scripts can rely on them: `$_.FullyQualifiedErrorId -like 'TaskNotFound,*'`.
/// </summary>
public static class PQErrors
{
    public const string TaskAlreadyExists = nameof(TaskAlreadyExists);
    public const string TaskNotFound = nameof(TaskNotFound);
    public const string TaskAlreadyFinished = nameof(TaskAlreadyFinished);
    public const string TaskPreempted = nameof(TaskPreempted);
    public const string TaskCancelRequested = nameof(TaskCancelRequested);
    public const string QueueNotInitialized = nameof(QueueNotInitialized);
    public const string InvalidConfiguration = nameof(InvalidConfiguration);
    public const string InvalidTaskData = nameof(InvalidTaskData);
    public const string InvalidArgument = nameof(InvalidArgument);
    public const string WaitTimeout = nameof(WaitTimeout);
    public const string DatabaseError = nameof(DatabaseError);
    public const string QueueError = nameof(QueueError);
    public const string WorkerNotFound = nameof(WorkerNotFound);
    public const string TaskDataUnreadable = nameof(TaskDataUnreadable);

    /// <summary>A task whose stored data cannot be read (a row from before submit checked data): non-terminating, per task.</summary>
    public static ErrorRecord DataUnreadable(string key, string why, Exception? inner = null) => new ErrorRecord(
        new TaskDataException($"Task '{key}': {why}", key, inner), TaskDataUnreadable, ErrorCategory.InvalidData, key)
    {
        ErrorDetails = new ErrorDetails($"Task '{key}': {why}")
        {
            RecommendedAction = $"Finish it with Complete-PQTask -Key '{System.Management.Automation.Language.CodeGeneration.EscapeSingleQuotedStringContent(key)}', then resubmit it with valid data if it is still needed.",
        },
    };

    /// <summary>No worker session has this id (Get-PQWorker -Id, Stop-PQWorker): non-terminating, per id.</summary>
    public static ErrorRecord WorkerNotFoundError(string id, string queue) => new(
        new ItemNotFoundException($"No worker session has the id '{id}' in {queue}. Get-PQWorker lists the sessions; a worker that stopped has removed its own."),
        WorkerNotFound, ErrorCategory.ObjectNotFound, id);

    public static ErrorRecord For(Exception e, object? target)
    {
        var (id, category) = e switch
        {
            AlreadyExistsException => (TaskAlreadyExists, ErrorCategory.ResourceExists),
            TaskDataException => (TaskDataUnreadable, ErrorCategory.InvalidData),
            NotFoundException => (TaskNotFound, ErrorCategory.ObjectNotFound),
            AlreadyFinishedException => (TaskAlreadyFinished, ErrorCategory.InvalidOperation),
            PreemptedException => (TaskPreempted, ErrorCategory.InvalidOperation),
            CancelRequestedException => (TaskCancelRequested, ErrorCategory.OperationStopped),
            QueueNotInitializedException => (QueueNotInitialized, ErrorCategory.ResourceUnavailable),
            ConfigException => (InvalidConfiguration, ErrorCategory.InvalidArgument),
            ArgumentException { ParamName: "data" } => (InvalidTaskData, ErrorCategory.InvalidArgument),
            ArgumentException => (InvalidArgument, ErrorCategory.InvalidArgument),
            TimeoutException => (WaitTimeout, ErrorCategory.OperationTimeout),
            DbException => (DatabaseError, ErrorCategory.ConnectionError),
            _ => (QueueError, ErrorCategory.NotSpecified),
        };
        var record = new ErrorRecord(e, id, category, target);
        if (e is QueueNotInitializedException)
            record.ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Run Initialize-PQQueue (once, with rights to create tables)." };
        return record;
    }

    /// <summary>Errors after which the command cannot go on with other items.</summary>
    public static bool IsTerminating(Exception e) => e is QueueNotInitializedException or ConfigException or DbException;
}
