using System.Collections.Specialized;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PerfectQueue.Dashboard;

/// <summary>
/// The dashboard: a page and a JSON API over one queue, served by <see cref="HttpListener"/> (no ASP.NET Core in
/// pwsh, and no new dependency). This class is the transport and its safety rules: where it listens, sign-in,
/// the anti-forgery check on every state change, the DNS-rebinding check on loopback, the response headers, and
/// errors as JSON. What each endpoint does is <see cref="DashboardApi"/>. docs/dashboard.md has the whole story.
/// </summary>
public sealed class DashboardServer : IDisposable
{
    internal const string AntiForgeryHeader = "X-PQ-AntiForgery";
    /// <summary>The session cookie's name, with the port in it: browsers send a cookie to every port of a host.</summary>
    internal string SessionCookie => "pq_session_" + Url.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
    private const int MaxBodyBytes = 64 * 1024;
    private const int MaxConcurrentRequests = 16;
    private static readonly TimeSpan BodyTimeout = TimeSpan.FromSeconds(10);

    // Scripts and styles only from the module itself: a value that reached the page as markup could still run nothing.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    private readonly HttpListener _listener;
    private readonly DashboardApi _api;
    private readonly DashboardOptions _options;
    private readonly byte[]? _accessTokenHash;
    private readonly string _sessionValue = RandomToken();
    private readonly SemaphoreSlim _slots = new(MaxConcurrentRequests);
    private int _disposed;

    /// <summary>Where the dashboard is served, e.g. http://127.0.0.1:7380/.</summary>
    public Uri Url { get; }

    /// <summary>True when only this machine can reach it (a loopback address).</summary>
    public bool IsLoopback { get; }

    /// <summary>Serve views only (<see cref="DashboardOptions.ReadOnly"/>).</summary>
    public bool ReadOnly => _options.ReadOnly;

    /// <summary>Whether a browser must sign in with the access token.</summary>
    public bool RequiresSignIn => _accessTokenHash is not null;

    /// <summary>One line per action taken and per request that failed on the server's side (never a secret).</summary>
    public event Action<string>? Log;

    private DashboardServer(Queue queue, DashboardOptions options, HttpListener listener, Uri url, bool loopback)
    {
        _options = options;
        _listener = listener;
        Url = url;
        IsLoopback = loopback;
        _accessTokenHash = options.AccessToken is { } token ? SHA256.HashData(Encoding.UTF8.GetBytes(token)) : null;
        _api = new DashboardApi(queue, options, RandomToken(), line => Log?.Invoke(line));
    }

    /// <summary>
    /// Checks the options and starts listening (requests are served once <see cref="RunAsync"/> runs). Throws
    /// <see cref="ArgumentException"/> for a bad address, port or token, and <see cref="InvalidOperationException"/>
    /// when the port cannot be bound.
    /// </summary>
    public static DashboardServer Start(Queue queue, DashboardOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        options ??= new DashboardOptions();
        if (options.Port is < 0 or > 65535)
            throw new ArgumentException($"The port must be 1 to 65535, or 0 for a free one (got {options.Port}).", nameof(options));
        if (options.Refresh < TimeSpan.FromMilliseconds(200) || options.Refresh > TimeSpan.FromHours(1))
            throw new ArgumentException($"The refresh interval must be 200 ms to 1 hour (got {options.Refresh}).", nameof(options));
        var (host, bind, loopback) = ParseAddress(options.Address);
        if (options.AccessToken is { } token && (token.Length < DashboardOptions.MinAccessTokenLength || string.IsNullOrWhiteSpace(token)))
            throw new ArgumentException(
                $"The access token must be at least {DashboardOptions.MinAccessTokenLength} characters: a short one is guessed. " +
                "Make one with: [Convert]::ToBase64String([Security.Cryptography.RandomNumberGenerator]::GetBytes(24))", nameof(options));
        if (!loopback && options.AccessToken is null)
            throw new ArgumentException(
                $"The dashboard listens on '{options.Address}', which other machines can reach, so it needs an access token: " +
                "give -AccessToken (at least 16 characters), or listen on loopback (the default, 127.0.0.1) and reach it through an SSH tunnel.",
                nameof(options));

        if (options.PublicUrl is { } publicUrl && !(publicUrl.IsAbsoluteUri && publicUrl.Scheme is "http" or "https"))
            throw new ArgumentException($"The public URL must be an absolute http or https address, such as https://queue.example.com/ (got '{publicUrl}').", nameof(options));

        // Port 0: a free port found by a probe can be taken before the listener binds it; try a few.
        for (var attempt = 1; ; attempt++)
        {
            var port = options.Port == 0 ? FreePort(bind) : options.Port;
            var listener = new HttpListener { IgnoreWriteExceptions = true };
            listener.Prefixes.Add($"http://{host}:{port}/");
            // On loopback the page answers to both names a user types; the listener matches the Host header itself.
            if (host == "127.0.0.1") listener.Prefixes.Add($"http://localhost:{port}/");
            try { listener.Start(); }
            catch (Exception e) when (e is HttpListenerException or SocketException)
            {
                listener.Close();
                if (options.Port == 0 && attempt < 5) continue;
                throw new InvalidOperationException(
                    $"The dashboard cannot listen on {options.Address} port {port}: {e.Message}. Another program may use the port: choose another with -Port (0 picks a free one).", e);
            }
            var shown = host is "+" ? Environment.MachineName.ToLowerInvariant() : host;
            return new DashboardServer(queue, options, listener, new Uri($"http://{shown}:{port}/"), loopback);
        }
    }

    private static (string Host, IPAddress Bind, bool Loopback) ParseAddress(string? address)
    {
        var a = address?.Trim();
        if (string.IsNullOrEmpty(a)) return ("127.0.0.1", IPAddress.Loopback, true);
        if (a is "*" or "+" or "0.0.0.0" or "::" or "[::]") return ("+", IPAddress.Any, false);
        if (a.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return ("localhost", IPAddress.Loopback, true);
        if (IPAddress.TryParse(a.Trim('[', ']'), out var ip))
            return (ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ip}]" : ip.ToString(), ip, IPAddress.IsLoopback(ip));
        throw new ArgumentException(
            $"'{address}' is not an address the dashboard can listen on: give an IP address of this machine, 'localhost', or '*' for every address.",
            nameof(address));
    }

    private static int FreePort(IPAddress bind)
    {
        var probe = new TcpListener(bind, 0);
        probe.Start();
        try { return ((IPEndPoint)probe.LocalEndpoint).Port; }
        finally { probe.Stop(); }
    }

    private static string RandomToken() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>Serves requests until <paramref name="ct"/> is cancelled, then stops listening.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var inFlight = new List<Task>();
        using var stop = ct.Register(() => { try { _listener.Stop(); } catch (ObjectDisposedException) { } });
        while (!ct.IsCancellationRequested)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync().ConfigureAwait(false); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                if (ct.IsCancellationRequested || Volatile.Read(ref _disposed) != 0) break;
                Log?.Invoke($"dashboard: accepting a request failed: {e.Message}");
                continue;
            }
            // The accept loop never waits for a slot: clients that stall cannot stop others from being answered.
            var served = Task.Run(async () =>
            {
                if (!await _slots.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false))
                {
                    try { await WriteAsync(context.Response, Reply.Error(503, "busy", "The dashboard is answering too many requests; try again shortly.")).ConfigureAwait(false); }
                    catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException or InvalidOperationException) { }
                    return;
                }
                try { await ServeAsync(context, ct).ConfigureAwait(false); }
                finally { _slots.Release(); }
            }, CancellationToken.None);
            lock (inFlight) { inFlight.RemoveAll(t => t.IsCompleted); inFlight.Add(served); }
        }
        Task[] pending;
        lock (inFlight) pending = [.. inFlight];
        await Task.WhenAll(pending).ConfigureAwait(false);
    }

    private async Task ServeAsync(HttpListenerContext context, CancellationToken ct)
    {
        var request = context.Request;
        var response = context.Response;
        Reply reply;
        try { reply = await RouteAsync(request, ct).ConfigureAwait(false); }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            reply = Reply.Error(503, "stopping", "The dashboard is stopping.");
        }
        catch (TimeoutException)
        {
            reply = Reply.Error(408, "request_timeout", $"The request's body did not arrive within {BodyTimeout.TotalSeconds:0} seconds.");
        }
        catch (Exception e)
        {
            Log?.Invoke($"dashboard: {request.HttpMethod} {request.Url?.AbsolutePath} failed: {e.GetType().Name}: {e.Message}");
            reply = Reply.Error(500, "server_error", "The dashboard failed to answer this request; its log says why.");
        }
        try { await WriteAsync(response, reply).ConfigureAwait(false); }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            // The browser went away, or the server is stopping: nothing more to answer.
        }
    }

    private async Task<Reply> RouteAsync(HttpListenerRequest request, CancellationToken ct)
    {
        var path = request.Url?.AbsolutePath ?? "/";
        var method = request.HttpMethod;
        if (IsLoopback && !IsLoopbackHost(request.Headers["Host"]))
            // A page elsewhere that rebinds its own name to 127.0.0.1 must not read or drive the dashboard.
            return Reply.Error(421, "bad_host", "This dashboard answers only to 127.0.0.1, localhost or [::1]: open it by one of those names.");

        if (path.StartsWith("/assets/", StringComparison.Ordinal))
            return method is "GET" or "HEAD" ? Asset(path["/assets/".Length..]) : MethodNotAllowed("GET");
        if (path == "/signin")
            return method == "POST" ? await SignInAsync(request).ConfigureAwait(false) : MethodNotAllowed("POST");

        var signedIn = IsSignedIn(request);
        if (path is "/" or "/index.html")
            return method is "GET" or "HEAD" ? Asset(signedIn ? "index.html" : "signin.html") : MethodNotAllowed("GET");
        if (!path.StartsWith("/api/", StringComparison.Ordinal))
            return Reply.Error(404, "not_found", $"Nothing is served at '{path}': the dashboard is at / and its API under /api/.");
        if (!signedIn)
            return Reply.Error(401, "sign_in_required", "Sign in with the dashboard's access token first (the page at /, or 'Authorization: Bearer <token>').");

        JsonObject? body = null;
        if (method == "POST")
        {
            if (_options.ReadOnly)
                return Reply.Error(403, "read_only", "This dashboard was started with -ReadOnly: it changes nothing.");
            if (ForgeryProblem(request) is { } problem) return Reply.Error(403, "forgery_check_failed", problem);
            var (parsed, bodyProblem) = await ReadBodyAsync(request).ConfigureAwait(false);
            if (bodyProblem is not null) return Reply.Error(bodyProblem.Value.Status, bodyProblem.Value.Id, bodyProblem.Value.Message);
            body = parsed;
        }
        else if (method is not "GET") return MethodNotAllowed("GET, POST");

        return await _api.HandleAsync(method, path["/api/".Length..], request.QueryString, body, ct).ConfigureAwait(false);
    }

    private static Reply MethodNotAllowed(string allowed) =>
        Reply.Error(405, "method_not_allowed", $"This address takes {allowed} only.") with { Allow = allowed };

    private static bool IsLoopbackHost(string? hostHeader)
    {
        if (string.IsNullOrEmpty(hostHeader)) return false;
        var host = hostHeader;
        if (host.StartsWith('[')) host = host[..(host.IndexOf(']') is var end and > 0 ? end + 1 : host.Length)];
        else if (host.LastIndexOf(':') is var colon and > 0) host = host[..colon];
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));
    }

    private bool IsSignedIn(HttpListenerRequest request)
    {
        if (_accessTokenHash is null) return true;
        if (request.Headers["Authorization"] is { } auth && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(auth[7..].Trim())), _accessTokenHash);
        return request.Cookies[SessionCookie]?.Value is { } cookie
            && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(cookie), Encoding.UTF8.GetBytes(_sessionValue));
    }

    private async Task<Reply> SignInAsync(HttpListenerRequest request)
    {
        if (_accessTokenHash is null) return Reply.Redirect("/");
        if (OriginProblem(request) is { } problem) return Reply.Error(403, "forgery_check_failed", problem);
        var form = await ReadFormAsync(request).ConfigureAwait(false);
        var given = form?["token"] ?? "";
        if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), _accessTokenHash))
        {
            Log?.Invoke($"dashboard: a sign-in from {request.RemoteEndPoint?.Address} was refused (wrong access token)");
            return Reply.Redirect("/?denied=1");
        }
        // The session value is random per server start: the token itself is never stored in the browser.
        var secure = _options.PublicUrl?.Scheme == "https" ? "; Secure" : "";
        return Reply.Redirect("/") with { SetCookie = $"{SessionCookie}={_sessionValue}; Path=/; HttpOnly; SameSite=Strict{secure}" };
    }

    private static async Task<NameValueCollection?> ReadFormAsync(HttpListenerRequest request)
    {
        if (request.ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) != true) return null;
        var (text, tooLong) = await ReadTextAsync(request).ConfigureAwait(false);
        return tooLong ? null : System.Web.HttpUtility.ParseQueryString(text);
    }

    /// <summary>
    /// Why a state-changing request may come from another site, or null: it must carry the page's anti-forgery token
    /// in a header (a form or an image on another site cannot set one) and, when the browser names its origin, come
    /// from this dashboard's.
    /// </summary>
    private string? ForgeryProblem(HttpListenerRequest request)
    {
        if (OriginProblem(request) is { } problem) return problem;
        var given = request.Headers[AntiForgeryHeader];
        return given is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(_api.AntiForgeryToken))
            ? null
            : $"A change needs the header {AntiForgeryHeader} with the token from GET /api/session (the page sends it): this request has none or another.";
    }

    private string? OriginProblem(HttpListenerRequest request)
    {
        var origin = request.Headers["Origin"];
        if (string.IsNullOrEmpty(origin)) return null;
        if (string.Equals(origin, "http://" + request.Headers["Host"], StringComparison.OrdinalIgnoreCase)) return null;
        // Behind a TLS proxy the browser names the proxy's origin (-PublicUrl).
        if (_options.PublicUrl is { } publicUrl && string.Equals(origin, publicUrl.GetLeftPart(UriPartial.Authority), StringComparison.OrdinalIgnoreCase)) return null;
        return $"This request comes from the page of another site ({origin}); the dashboard takes changes from its own page only." +
            (_options.PublicUrl is null ? " Behind a proxy, give Start-PQDashboard -PublicUrl with the address browsers use." : "");
    }

    private static async Task<(JsonObject? Body, (int Status, string Id, string Message)? Problem)> ReadBodyAsync(HttpListenerRequest request)
    {
        if (request.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) != true)
            return (null, (415, "unsupported_media_type", "Send the request's body as JSON (Content-Type: application/json)."));
        var (text, tooLong) = await ReadTextAsync(request).ConfigureAwait(false);
        if (tooLong) return (null, (413, "body_too_large", $"The request's body is over {MaxBodyBytes / 1024} KB."));
        if (string.IsNullOrWhiteSpace(text)) return (new JsonObject(), null);
        try
        {
            return JsonNode.Parse(text) is JsonObject o ? (o, null) : (null, (400, "bad_json", "The request's body must be a JSON object, such as {\"key\": \"nightly-1\"}."));
        }
        catch (JsonException e)
        {
            return (null, (400, "bad_json", $"The request's body is not valid JSON: {e.Message}"));
        }
    }

    private static async Task<(string Text, bool TooLong)> ReadTextAsync(HttpListenerRequest request)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        // A client that stops sending its body holds a slot for at most this long (WaitAsync: the listener's stream
        // does not watch a cancellation token once a read has started).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while ((read = await request.InputStream.ReadAsync(chunk).AsTask().WaitAsync(BodyTimeout - clock.Elapsed > TimeSpan.Zero ? BodyTimeout - clock.Elapsed : TimeSpan.Zero).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > MaxBodyBytes) return ("", true);
            buffer.Write(chunk, 0, read);
        }
        return (new UTF8Encoding(false, false).GetString(buffer.GetBuffer(), 0, (int)buffer.Length), false);
    }

    // ---- static files, embedded in the assembly (no CDN: many ops networks reach none) ----

    private static readonly Assembly Self = typeof(DashboardServer).Assembly;

    private static Reply Asset(string name)
    {
        if (name.Contains('/') || name.Contains('\\') || name.StartsWith('.')) return Reply.Error(404, "not_found", "No such file.");
        using var stream = Self.GetManifestResourceStream("dashboard/" + name);
        if (stream is null) return Reply.Error(404, "not_found", $"The dashboard has no file '{name}'.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        var type = Path.GetExtension(name) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".svg" => "image/svg+xml",
            _ => "application/octet-stream",
        };
        return new Reply(200, type, copy.ToArray());
    }

    private static async Task WriteAsync(HttpListenerResponse response, Reply reply)
    {
        response.StatusCode = reply.Status;
        response.ContentType = reply.ContentType;
        response.Headers["Content-Security-Policy"] = ContentSecurityPolicy;
        response.Headers["X-Content-Type-Options"] = "nosniff";
        response.Headers["X-Frame-Options"] = "DENY";
        response.Headers["Referrer-Policy"] = "same-origin"; // not no-referrer: with it a browser sends "Origin: null" on its own forms
        response.Headers["Cache-Control"] = "no-store";
        if (reply.Location is not null) response.Headers["Location"] = reply.Location;
        if (reply.SetCookie is not null) response.Headers["Set-Cookie"] = reply.SetCookie;
        if (reply.Allow is not null) response.Headers["Allow"] = reply.Allow;
        response.ContentLength64 = reply.Body.Length;
        await response.OutputStream.WriteAsync(reply.Body).ConfigureAwait(false);
        response.Close();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try { _listener.Stop(); } catch (ObjectDisposedException) { }
        _listener.Close();
    }
}

/// <summary>One answer of the dashboard: a status, a content type and bytes, and the few headers some answers need.</summary>
internal sealed record Reply(int Status, string ContentType, byte[] Body)
{
    public string? Location { get; init; }
    public string? SetCookie { get; init; }
    public string? Allow { get; init; }

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static Reply Ok(object payload, int status = 200) =>
        new(status, "application/json; charset=utf-8", JsonSerializer.SerializeToUtf8Bytes(payload, Json));

    /// <summary>A 4xx or 5xx answer: {"error": {"id": ..., "message": ...}}, never a stack trace.</summary>
    public static Reply Error(int status, string id, string message) => Ok(new { error = new { id, message } }, status);

    public static Reply Redirect(string to) => new(303, "text/plain; charset=utf-8", []) { Location = to };
}
