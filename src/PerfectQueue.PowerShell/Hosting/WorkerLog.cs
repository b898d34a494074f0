using PerfectQueue.Workers;

namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// Where a worker's lines go: a file (-LogPath, or the config's log key), else the host; and how they are written
/// (-LogFormat: text, or one JSON object per line). The file is opened for appending and shared, so log rotation can
/// move it away; <see cref="Reopen"/> (SIGUSR2) then starts a new file at the same path. Lines carry the local time
/// and never the connection's secrets (the engine logs masked descriptions only).
/// </summary>
internal sealed class WorkerLog : IDisposable
{
    private readonly Action<string> _toHost;
    private readonly object _gate = new();
    private string? _path;
    private StreamWriter? _file;
    private string? _session; // the last worker session seen: the host's own lines carry it too

    public WorkerLog(string? path, Action<string> toHost, WorkerLogFormat format = WorkerLogFormat.Text)
    {
        _toHost = toHost;
        _path = path;
        Format = format;
        _file = path is null ? null : Open(path);
    }

    /// <summary>The log file's full path, or null when lines go to the host.</summary>
    public string? Path => _path;

    /// <summary>How lines are written; a restart may change it with the configuration.</summary>
    public WorkerLogFormat Format { get; set; }

    /// <summary>A line of the host's own (a signal, a restart, the routes).</summary>
    public void Write(string message) => Write(new WorkerEvent(DateTimeOffset.Now, message) { Event = WorkerEvents.Host });

    /// <summary>An event of the worker or of its processors; one without a session gets the worker's.</summary>
    public void Write(WorkerEvent e)
    {
        if (e.Session is { } session) Volatile.Write(ref _session, session);
        else if (Volatile.Read(ref _session) is { } current) e = e with { Session = current };
        var line = WorkerEventFormat.Format(e, Format);
        lock (_gate)
        {
            if (_file is null) { _toHost(line); return; }
            try
            {
                _file.WriteLine(line);
                _file.Flush();
            }
            catch (IOException ex)
            {
                // A full disk must not stop the tasks: say so where someone may see it (in JSON, as an event of its own).
                if (Format == WorkerLogFormat.Json)
                {
                    _toHost(line);
                    _toHost(WorkerEventFormat.Format(new WorkerEvent(DateTimeOffset.Now, $"the line above was not written to {_path}: {ex.Message}")
                        { Event = WorkerEvents.Host, Level = WorkerEventLevel.Warning, Session = e.Session }, Format));
                }
                else _toHost($"{line} (not written to {_path}: {ex.Message})");
            }
        }
    }

    /// <summary>Closes the file and opens it anew at the same path, e.g. after rotation moved it away.</summary>
    public void Reopen() => UseFile(_path);

    /// <summary>Writes to <paramref name="path"/> from now on, or to the host when it is null.</summary>
    public void UseFile(string? path)
    {
        lock (_gate)
        {
            var next = path is null ? null : Open(path); // throws before anything is closed: the old file stays in use
            _file?.Dispose();
            _file = next;
            _path = path;
        }
    }

    private static StreamWriter Open(string path)
    {
        try
        {
            var folder = System.IO.Path.GetDirectoryName(path);
            if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
            var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite | FileShare.Delete };
            // Task keys, data and errors are in it: only its owner may read a new log file (an existing one keeps its mode).
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            var stream = new FileStream(path, options);
            return new StreamWriter(stream) { AutoFlush = false };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new ConfigException($"log: cannot open the log file '{path}' for appending ({e.Message}). Choose a writable path with -LogPath.", "log", e);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _file?.Dispose();
            _file = null;
        }
    }
}
