using System.Management.Automation;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// Start-PQWorker -AsJob: the worker runs on a thread of this process as a PowerShell job. Its log lines are
/// the job's information records (shown by Receive-Job), its summary is the job's output. Stop-Job stops it
/// gracefully (running tasks end, up to the graceful kill limit; the job is Stopping meanwhile, then Stopped);
/// a second Stop-Job stops it immediately.
/// </summary>
public sealed class WorkerJob : Job
{
    private readonly WorkerHost _host;
    private readonly ManualResetEventSlim _done = new();
    private volatile bool _stopAsked;

    internal WorkerJob(string command, string? name, WorkerHost host) : base(command, name)
    {
        _host = host;
        PSJobTypeName = "PerfectQueueWorker";
    }

    internal void Start()
    {
        SetJobState(JobState.Running);
        _ = Task.Run(async () =>
        {
            try
            {
                var summary = await _host.RunAsync().ConfigureAwait(false);
                Output.Add(PSObject.AsPSObject(summary));
                SetJobState(_stopAsked ? JobState.Stopped : JobState.Completed);
            }
            catch (Exception e)
            {
                Error.Add(PQErrors.For(e, _host.Log.Path));
                SetJobState(JobState.Failed);
            }
            finally
            {
                _host.Dispose();
                _done.Set();
            }
        });
    }

    /// <summary>Writes a log line as the job's information record (Receive-Job shows it, like Write-Host in a job).</summary>
    internal void WriteLine(string line)
    {
        try { Information.Add(new InformationRecord(new HostInformationMessage { Message = line }, "Start-PQWorker") { Tags = { "PSHOST", "PerfectQueue" } }); }
        catch (InvalidOperationException) { /* the job was removed */ }
    }

    /// <summary>
    /// The first Stop-Job stops the worker gracefully and returns at once (the job is Stopping until its
    /// running tasks have ended; Wait-Job waits for that); a second one stops it immediately, releasing them.
    /// </summary>
    public override void StopJob()
    {
        if (_done.IsSet) return;
        if (!_stopAsked)
        {
            _stopAsked = true;
            SetJobState(JobState.Stopping);
            _host.StopGracefully("Stop-Job");
        }
        else
        {
            _host.StopNow("second Stop-Job");
        }
    }

    public override string StatusMessage => _host.IsStopping ? "stopping" : "";

    public override bool HasMoreData => Output.Count > 0 || Error.Count > 0 || Information.Count > 0;

    public override string Location => Environment.MachineName;

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_done.IsSet)
        {
            // Remove-Job -Force on a running worker: stop it now and wait until its tasks are released, so none
            // is left leased until its alive time runs out.
            _stopAsked = true;
            _host.StopNow("Remove-Job");
            _done.Wait();
        }
        base.Dispose(disposing);
    }
}
