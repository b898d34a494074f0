using System.Diagnostics;
using Npgsql;
using PerfectQueue.Storage.Postgres;
using Xunit;
using Xunit.Abstractions;

namespace PerfectQueue.Tests.Postgres;

/// <summary>
/// A PostgreSQL cluster of this test's own (never the shared one), restarted between two commands of one open
/// queue (issue 12): the pooled connections are dead afterwards, and the next read must still succeed the
/// first time. Needs Debian's PostgreSQL binaries and root (for runuser), as build.ps1 test does.
/// </summary>
public sealed class PostgresRestartTests(ITestOutputHelper output) : IDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private readonly string _dir = Directory.CreateTempSubdirectory("pq-restart-").FullName;
    private readonly int _port = 56000 + Random.Shared.Next(0, 900);
    private bool _started;

    private void PgCtl(params string[] args) => Run("runuser", ["-u", "postgres", "--", $"{Bin}/pg_ctl", "-D", $"{_dir}/data", .. args]);

    // Output goes to a file, not a pipe: the server that pg_ctl starts would keep a pipe open for ever.
    private void Run(string file, string[] args)
    {
        var log = Path.Combine(_dir, "run.log");
        var info = new ProcessStartInfo("sh") { ArgumentList = { "-c", "\"$0\" \"$@\" >>" + log + " 2>&1", file } };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), $"{file} did not finish");
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} failed: {(File.Exists(log) ? File.ReadAllText(log) : "")}");
    }

    private bool StartCluster()
    {
        if (!File.Exists($"{Bin}/initdb") || Environment.UserName != "root")
        {
            output.WriteLine($"NOT RUN: needs {Bin} (apt-get install postgresql) and root.");
            return false;
        }
        Run("chown", ["postgres:postgres", _dir]);
        Run("runuser", ["-u", "postgres", "--", $"{Bin}/initdb", "-D", $"{_dir}/data", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"]);
        PgCtl("-l", $"{_dir}/log", "-w", "-t", "60", "-o", $"-p {_port} -c listen_addresses=127.0.0.1 -k {_dir} -c fsync=off", "start");
        _started = true;
        return true;
    }

    public void Dispose()
    {
        if (_started) try { PgCtl("-m", "immediate", "-w", "stop"); } catch (Exception e) { output.WriteLine(e.Message); }
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [Fact]
    public void Reads_after_a_server_restart_succeed_the_first_time()
    {
        if (!StartCluster()) return;
        using var q = Queue.Open(new QueueConfig { Url = $"postgresql://postgres@127.0.0.1:{_port}/postgres", Table = "restart" });
        q.Initialize();
        q.Submit("k", "t");
        // Several pooled connections, all of which the restart kills.
        Parallel.For(0, 4, _ => Assert.Single(q.List()));
        Assert.Equal(1, q.Summarize().Total);

        PgCtl("-m", "fast", "-w", "-t", "60", "restart");

        Assert.Equal(1, q.Summarize().Total);          // Measure-PQQueue's read, the first command after the restart
        Assert.Equal("k", Assert.Single(q.List()).Key);
        Assert.True(q["k"].Exists());
        Assert.Equal("k", q.Poll()!.Key);             // acquire is safe to run again too
    }
}
