using System.Management.Automation;
using PerfectQueue.Dashboard;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// Start-PQDashboard -AsJob: the dashboard serves on a thread of this process as a PowerShell job. Its first output
/// is where to open it; its log lines (actions taken, server-side failures) are the job's information records,
/// the newest <see cref="MaxLogLines"/> kept until Receive-Job takes them. Stop-Job stops it.
/// </summary>
public sealed class DashboardJob : Job
{
    /// <summary>How many log lines a job keeps until Receive-Job takes them.</summary>
    public const int MaxLogLines = 1000;

    private readonly DashboardServer _server;
    private readonly Queue _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly ManualResetEventSlim _done = new();

    internal DashboardJob(string command, string? name, DashboardServer server, Queue queue) : base(command, name)
    {
        _server = server;
        _queue = queue;
        PSJobTypeName = "PerfectQueueDashboard";
        server.Log += WriteLine;
    }

    internal void Start()
    {
        SetJobState(JobState.Running);
        Output.Add(PSObject.AsPSObject(new PQDashboard(_server, _queue)));
        _ = Task.Run(async () =>
        {
            try
            {
                await _server.RunAsync(_stop.Token).ConfigureAwait(false);
                SetJobState(JobState.Stopped);
            }
            catch (Exception e)
            {
                Error.Add(PQErrors.For(e, _server.Url, _queue.Description));
                SetJobState(JobState.Failed);
            }
            finally
            {
                _server.Dispose();
                _queue.Dispose();
                _done.Set();
            }
        });
    }

    private void WriteLine(string line)
    {
        try
        {
            lock (_stop)
            {
                if (Information.Count >= MaxLogLines) Information.RemoveAt(0);
                Information.Add(new InformationRecord(new HostInformationMessage { Message = line }, "Start-PQDashboard") { Tags = { "PSHOST", "PerfectQueue" } });
            }
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentOutOfRangeException) { /* removed, or Receive-Job took the lines */ }
    }

    public override void StopJob()
    {
        if (_done.IsSet) return;
        SetJobState(JobState.Stopping);
        _stop.Cancel();
        _done.Wait(TimeSpan.FromSeconds(30));
    }

    public override string StatusMessage => _server.Url.ToString();

    public override bool HasMoreData => Output.Count > 0 || Error.Count > 0 || Information.Count > 0;

    public override string Location => _server.Url.ToString();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            if (!_done.IsSet) { _stop.Cancel(); _done.Wait(TimeSpan.FromSeconds(30)); }
            _stop.Dispose();
        }
        base.Dispose(disposing);
    }
}
