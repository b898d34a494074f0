namespace PerfectQueue.Dashboard;

/// <summary>How <see cref="DashboardServer"/> listens and what it allows (docs/dashboard.md).</summary>
public sealed class DashboardOptions
{
    /// <summary>The port when none is given.</summary>
    public const int DefaultPort = 7380;

    /// <summary>The shortest access token accepted: a guessable token on a network address is no protection.</summary>
    public const int MinAccessTokenLength = 16;

    /// <summary>
    /// Where to listen: an IP address, "localhost", or "*" (every address). Default: 127.0.0.1. Any address that is
    /// not loopback needs <see cref="AccessToken"/>.
    /// </summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary>The TCP port; 0 picks a free one (<see cref="DashboardServer.Url"/> tells which).</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Serve the views only: no action is shown, and every state-changing request is refused.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>
    /// A secret a browser gives once on the sign-in page (kept as an HttpOnly cookie), or a client as
    /// "Authorization: Bearer …". Required on a non-loopback address; optional on loopback.
    /// </summary>
    public string? AccessToken { get; init; }

    /// <summary>
    /// The address browsers use when a proxy (TLS, a path-less reverse proxy) is in front, e.g. https://queue.example.com/:
    /// its origin is accepted on changes, and with https the session cookie is marked Secure. The proxy passes the
    /// dashboard's own Host (nginx's default, $proxy_host).
    /// </summary>
    public Uri? PublicUrl { get; init; }

    /// <summary>How often the page refreshes its view.</summary>
    public TimeSpan Refresh { get; init; } = TimeSpan.FromSeconds(2);
}
