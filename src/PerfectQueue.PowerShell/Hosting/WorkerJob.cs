using System.Management.Automation;
using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// Start-PQWorker -AsJob: the worker runs on a thread of this process as a PowerShell job. Its log lines are
/// the job's information records (shown by Receive-Job), its summary is the job's output. Without -LogPath the
/// job keeps only the newest <see cref="MaxLogLines"/> lines until Receive-Job takes them (a worker runs for
/// days; its log must not grow the session's memory for ever), and a first line says how many were dropped. Stop-Job stops it
/// gracefully (running tasks end, up to the graceful kill limit; the job is Stopping meanwhile, then Stopped);
/// a second Stop-Job stops it immediately.
/// </summary>
public sealed class WorkerJob : Job
{
    /// <summary>How many log lines a job keeps until Receive-Job takes them.</summary>
    public const int MaxLogLines = 1000;

    private readonly WorkerHost _host;
    private readonly ManualResetEventSlim _done = new();
    private readonly object _logGate = new();
    private InformationRecord? _droppedNote;
    private long _dropped;
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
                Error.Add(PQErrors.For(e, _host.Log.Path, _host.QueueDescription));
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
        try
        {
            lock (_logGate)
            {
                var lines = Information;
                if (lines.Count >= MaxLogLines)
                {
                    try
                    {
                        // Receive-Job takes the note with the lines; after that the count starts again.
                        var noted = _droppedNote is not null && ReferenceEquals(lines[0], _droppedNote);
                        if (!noted) _dropped = 0;
                        lines.RemoveAt(noted ? 1 : 0);
                        _dropped++;
                        _droppedNote = Record($"... {_dropped} older log line(s) dropped: a job keeps its newest {MaxLogLines} until Receive-Job takes them. Give -LogPath to keep every line.");
                        if (noted) lines[0] = _droppedNote;
                        else lines.Insert(0, _droppedNote);
                    }
                    catch (ArgumentOutOfRangeException) { /* Receive-Job took the lines meanwhile: nothing to drop */ }
                }
                lines.Add(Record(line));
            }
        }
        catch (InvalidOperationException) { /* the job was removed */ }
    }

    private static InformationRecord Record(string line) =>
        new(new HostInformationMessage { Message = line }, "Start-PQWorker") { Tags = { "PSHOST", "PerfectQueue" } };

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
