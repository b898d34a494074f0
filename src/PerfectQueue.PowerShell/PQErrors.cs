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
    public const string ScheduleNotFound = nameof(ScheduleNotFound);
    public const string ScheduleAlreadyExists = nameof(ScheduleAlreadyExists);
    /// <summary>Restart-PQTask or Remove-PQTask on a task that is not finished.</summary>
    public const string TaskNotFinished = nameof(TaskNotFinished);
    public const string DashboardNotStarted = nameof(DashboardNotStarted);

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

    /// <summary>
    /// The error record for an engine exception. <paramref name="queue"/> is the queue's masked description: a
    /// connection failure names it, and what to check, since the driver's text names only an address.
    /// </summary>
    public static ErrorRecord For(Exception e, object? target, string? queue = null)
    {
        var (id, category) = e switch
        {
            Schedules.ScheduleAlreadyExistsException => (ScheduleAlreadyExists, ErrorCategory.ResourceExists),
            Schedules.ScheduleNotFoundException => (ScheduleNotFound, ErrorCategory.ObjectNotFound),
            AlreadyExistsException => (TaskAlreadyExists, ErrorCategory.ResourceExists),
            TaskDataException => (TaskDataUnreadable, ErrorCategory.InvalidData),
            NotFoundException => (TaskNotFound, ErrorCategory.ObjectNotFound),
            NotFinishedException => (TaskNotFinished, ErrorCategory.InvalidOperation),
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
        if (e is ArgumentException a) e = WithoutParameterName(a);
        var record = new ErrorRecord(e, id, category, target);
        if (IsConnectFailure(e))
        {
            // The message shown (ErrorDetails); the exception stays the driver's own, for catch and diagnosis.
            var reason = UrlText.Mask(e.Message).TrimEnd();
            record.ErrorDetails = new ErrorDetails(
                $"Cannot connect to the database of the queue{(queue is null ? "" : " " + queue)}: {reason}{(reason.EndsWith('.') ? "" : ".")} " +
                "Check that the database server is running, that the host and port are right and no firewall blocks them, and the user name and password.")
            { RecommendedAction = "Check the server, its host and port, the firewall between, and the credentials in the queue's URL or connection string." };
        }
        if (e is NotFinishedException { Key: { } liveKey })
            record.ErrorDetails = new ErrorDetails(e.Message)
            {
                RecommendedAction = $"Request-PQCancel -Key '{System.Management.Automation.Language.CodeGeneration.EscapeSingleQuotedStringContent(liveKey)}' (or Complete-PQTask to end it at once), or Wait-PQTask until it finishes; then try again.",
            };
        if (e is QueueNotInitializedException)
            record.ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Run Initialize-PQQueue (once, with rights to create tables)." };
        return record;
    }

    /// <summary>A bad argument as an error: the message without .NET's " (Parameter 'options')", which names a C# parameter, not a cmdlet's.</summary>
    public static ErrorRecord InvalidArgumentError(ArgumentException e, object? target) =>
        new(WithoutParameterName(e), InvalidArgument, ErrorCategory.InvalidArgument, target);

    private static ArgumentException WithoutParameterName(ArgumentException e) =>
        ArgumentText.WithoutParameterName(e) is var text && text != e.Message ? new ArgumentException(text, e) : e;

    // The server could not be reached at all (refused, unreachable, name not found, timed out while connecting).
    private static bool IsConnectFailure(Exception e)
    {
        if (e is not DbException) return false;
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is System.Net.Sockets.SocketException) return true;
        return e.Message.StartsWith("Failed to connect to", StringComparison.Ordinal)                 // Npgsql
            || e.Message.Contains("error occurred while establishing a connection", StringComparison.Ordinal); // SqlClient
    }

    /// <summary>Errors after which the command cannot go on with other items.</summary>
    public static bool IsTerminating(Exception e) => e is QueueNotInitializedException or ConfigException or DbException;
}

