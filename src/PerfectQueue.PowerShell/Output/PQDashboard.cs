using PerfectQueue.Dashboard;

namespace PerfectQueue.PowerShell;

/// <summary>A running dashboard, as Start-PQDashboard -AsJob's job outputs it first (Receive-Job shows where to open it).</summary>
public sealed class PQDashboard
{
    internal PQDashboard(DashboardServer server, Queue queue)
    {
        Url = server.Url;
        ReadOnly = server.ReadOnly;
        IsLoopback = server.IsLoopback;
        RequiresSignIn = server.RequiresSignIn;
        Queue = queue.Description;
    }

    /// <summary>Where to open it.</summary>
    public Uri Url { get; }
    /// <summary>Views only: no action is served.</summary>
    public bool ReadOnly { get; }
    /// <summary>Only this machine can reach it.</summary>
    public bool IsLoopback { get; }
    /// <summary>A browser signs in with the access token first.</summary>
    public bool RequiresSignIn { get; }
    /// <summary>The queue it shows (its password masked).</summary>
    public string Queue { get; }

    public override string ToString() => Url.ToString();
}
