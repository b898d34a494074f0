namespace PerfectQueue.PowerShell.Hosting;

/// <summary>
/// Where a worker's lines go: a file (-LogPath, or the config's log key), else the host. The file is opened
/// for appending and shared, so log rotation can move it away; <see cref="Reopen"/> (SIGUSR2) then starts a
/// new file at the same path. Lines carry the local time and never the connection's secrets (the engine logs
/// masked descriptions only).
/// </summary>
internal sealed class WorkerLog : IDisposable
{
    private readonly Action<string> _toHost;
    private readonly object _gate = new();
    private string? _path;
    private StreamWriter? _file;

    public WorkerLog(string? path, Action<string> toHost)
    {
        _toHost = toHost;
        _path = path;
        _file = path is null ? null : Open(path);
    }

    /// <summary>The log file's full path, or null when lines go to the host.</summary>
    public string? Path => _path;

    public void Write(string message)
    {
        var line = $"{DateTime.Now:yyyy-MM-dd HH:mm:ss.fff} {message}";
        lock (_gate)
        {
            if (_file is null) { _toHost(line); return; }
            try
            {
                _file.WriteLine(line);
                _file.Flush();
            }
            catch (IOException e)
            {
                // A full disk must not stop the tasks: say so where someone may see it.
                _toHost($"{line} (not written to {_path}: {e.Message})");
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
