using System.Net;
using System.Net.Sockets;

namespace PerfectQueue.Tests;

/// <summary>
/// A TCP proxy on loopback in front of a real server, which a test can pause: while paused, bytes are read
/// but not forwarded in either direction (new connections are accepted and held the same way), as a network
/// partition or a stalled database looks to a client. Resume forwards what was held.
/// </summary>
public sealed class PausableTcpProxy : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly List<TcpClient> _clients = [];
    private readonly CancellationTokenSource _closing = new();
    private TaskCompletionSource _open = Opened();

    public PausableTcpProxy(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
        _listener.Start();
        _ = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    public void Pause() => Interlocked.CompareExchange(ref _open, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), _open);

    public void Resume() => Volatile.Read(ref _open).TrySetResult();

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (!_closing.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_closing.Token);
                _ = ServeAsync(client);
            }
        }
        catch (Exception) { /* closing */ }
    }

    private async Task ServeAsync(TcpClient client)
    {
        var server = new TcpClient();
        lock (_clients) { _clients.Add(client); _clients.Add(server); }
        try
        {
            await server.ConnectAsync(_targetHost, _targetPort, _closing.Token);
            var up = PumpAsync(client.GetStream(), server.GetStream());
            var down = PumpAsync(server.GetStream(), client.GetStream());
            await Task.WhenAny(up, down);
        }
        catch (Exception) { /* a side closed */ }
        finally
        {
            client.Dispose();
            server.Dispose();
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer, _closing.Token);
                if (n == 0) return;
                await Volatile.Read(ref _open).Task.WaitAsync(_closing.Token);   // held while paused
                await to.WriteAsync(buffer.AsMemory(0, n), _closing.Token);
            }
        }
        catch (Exception) { /* a side closed */ }
    }

    public void Dispose()
    {
        _closing.Cancel();
        _listener.Stop();
        lock (_clients) foreach (var c in _clients) c.Dispose();
        Resume();
    }
}
