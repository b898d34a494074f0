namespace PerfectQueue.Application;

/// <summary>
/// A compiled task handler, as the original's <c>PerfectQueue::Application::Base</c>: derive from it,
/// override <see cref="RunAsync"/> (or <see cref="Run"/>), and route task types to it with a
/// <see cref="Dispatch"/>. A new instance runs each task. Returning normally finishes the task Succeeded
/// (with <see cref="Result"/> as its message); throwing retries it with the error as its message (Failed at
/// max_attempts). The handler may also finish, retry or release the task itself through <see cref="CurrentTask"/>.
/// </summary>
public abstract class Base
{
    /// <summary>The task this instance runs. (Not named Task, so that Task.Delay and friends still mean System.Threading.Tasks.Task in handlers.)</summary>
    public AcquiredTask CurrentTask { get; internal set; } = null!;

    /// <summary>The task's data.</summary>
    public System.Text.Json.Nodes.JsonObject Data => CurrentTask.Data;

    /// <summary>Kept as the finish message when the handler returns normally.</summary>
    public string? Result { get; set; }

    /// <summary>
    /// Runs the task. <paramref name="cancellationToken"/> fires when cancel is requested for the task, when it
    /// was lost to another worker, or when the worker stops immediately: return or throw soon after. A handler
    /// that ignores it is abandoned after the grace period (a compiled handler cannot be killed; its task is
    /// still concluded correctly).
    /// </summary>
    public virtual Task RunAsync(CancellationToken cancellationToken)
    {
        Run();
        return Task.CompletedTask;
    }

    /// <summary>The synchronous form; override this or <see cref="RunAsync"/>.</summary>
    public virtual void Run() =>
        throw new NotImplementedException($"{GetType().FullName} must override Run() or RunAsync(CancellationToken).");
}
