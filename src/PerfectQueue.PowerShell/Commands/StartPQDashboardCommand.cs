using System.Collections.Concurrent;
using System.Management.Automation;
using System.Runtime.InteropServices;
using System.Security;
using PerfectQueue.Dashboard;
using PerfectQueue.PowerShell.Hosting;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// Serves the dashboard (docs/dashboard.md): a page that shows the queue's counts, tasks, attempts, workers,
/// schedules and pauses, refreshed live, with the cmdlets' actions behind a confirmation. Loopback only unless
/// an access token is given; -ReadOnly serves no action. Runs until Ctrl+C, or as a job with -AsJob.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "PQDashboard", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DashboardJob))]
public sealed class StartPQDashboardCommand : PQCmdlet
{
    /// <summary>The TCP port; 0 picks a free one.</summary>
    [Parameter]
    [ValidateRange(0, 65535)]
    public int Port { get; set; } = DashboardOptions.DefaultPort;

    /// <summary>Where to listen: 127.0.0.1 (the default), localhost, another address of this machine, or * for all.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string Address { get; set; } = "127.0.0.1";

    /// <summary>Views only: the page shows no action and the server refuses every change.</summary>
    [Parameter]
    public SwitchParameter ReadOnly { get; set; }

    /// <summary>The secret a browser signs in with (required for a non-loopback -Address).</summary>
    [Parameter]
    [SecretTransformation]
    public SecureString? AccessToken { get; set; }

    /// <summary>The address browsers use when a TLS or reverse proxy is in front (https://queue.example.com/).</summary>
    [Parameter]
    [ValidateNotNull]
    public Uri? PublicUrl { get; set; }

    /// <summary>How often the page refreshes (seconds or a TimeSpan; default 2 s).</summary>
    [Parameter]
    [DurationTransformation]
    public TimeSpan? RefreshInterval { get; set; }

    /// <summary>Run as a job of this session (Stop-Job stops it).</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    /// <summary>The job's name (with -AsJob).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? JobName { get; set; }

    protected override void EndProcessing()
    {
        if (JobName is not null && !AsJob)
            ThrowTerminatingError(PQErrors.InvalidArgumentError(new ArgumentException("-JobName names the job of -AsJob: give -AsJob too."), JobName));
        var shared = CurrentQueue();
        var options = new DashboardOptions
        {
            Address = Address, Port = Port, ReadOnly = ReadOnly,
            AccessToken = SecretTransformationAttribute.Reveal(AccessToken),
            Refresh = RefreshInterval ?? TimeSpan.FromSeconds(2),
            PublicUrl = PublicUrl,
        };
        var where = $"{(Address.Contains(':') ? $"[{Address.Trim('[', ']')}]" : Address)}:{Port}";
        if (!ShouldProcess($"{shared.Description} on http://{where}/{(ReadOnly ? " (read-only)" : "")}", "Start dashboard")) return;

        // The dashboard has its own queue object: Disconnect-PQQueue in this session must not close it under a job.
        var queue = Queue.Open(shared.Settings.Clone());
        DashboardServer server;
        try { server = DashboardServer.Start(queue, options); }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            queue.Dispose();
            ThrowTerminatingError(e is ArgumentException a ? PQErrors.InvalidArgumentError(a, Address)
                : new ErrorRecord(e, PQErrors.DashboardNotStarted, ErrorCategory.ResourceUnavailable, where));
            return;
        }
        if (!server.IsLoopback)
            WriteWarning($"The dashboard listens on {Address}: anyone who can reach this machine's port {server.Url.Port} and has the access token can use it. It speaks plain HTTP: put it behind a TLS proxy on an untrusted network.");

        if (AsJob)
        {
            var job = new DashboardJob(JobCommand(), JobName, server, queue);
            JobRepository.Add(job);
            job.Start();
            WriteObject(job);
            return;
        }
        RunInForeground(server, queue);
    }

    // Get-Job shows the job's command: rebuilt from the parameters, so the access token (and a URL's password
    // given inline to -Queue) never appears in it, whatever the command line held.
    private string JobCommand()
    {
        var parts = new List<string> { MyInvocation.MyCommand.Name };
        foreach (var (name, value) in MyInvocation.BoundParameters)
            parts.Add(name switch
            {
                nameof(AccessToken) => "-AccessToken ***",
                nameof(Queue) => "-Queue <queue>",
                _ when value is SwitchParameter { IsPresent: true } => "-" + name,
                _ when value is SwitchParameter => $"-{name}:$false",
                _ => $"-{name} {UrlText.Mask(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture))}",
            });
        return string.Join(' ', parts);
    }

    private void RunInForeground(DashboardServer server, Queue queue)
    {
        // Only this thread may write to the pipeline: the server's threads hand their lines over.
        var lines = new BlockingCollection<string>();
        server.Log += line => { try { lines.Add(line); } catch (InvalidOperationException) { } };
        // Ctrl+C (StopProcessing), and SIGINT or SIGTERM from a service manager, end it: the run returns and exits 0.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(StopToken);
        var signalled = false;
        void OnSignal(PosixSignalContext context) { context.Cancel = true; signalled = true; stop.Cancel(); }
        using var sigint = TrySignal(PosixSignal.SIGINT, OnSignal);
        using var sigterm = OperatingSystem.IsWindows() ? null : TrySignal(PosixSignal.SIGTERM, OnSignal);
        var run = Task.Run(() => server.RunAsync(stop.Token));
        _ = run.ContinueWith(_ => lines.CompleteAdding(), TaskScheduler.Default);
        var stopped = false;
        Write($"Dashboard of {queue.Description} at {server.Url}{(server.ReadOnly ? " (read-only)" : "")}. Ctrl+C stops it.");
        foreach (var line in lines.GetConsumingEnumerable()) Write(line);
        try { run.GetAwaiter().GetResult(); }
        finally
        {
            server.Dispose();
            queue.Dispose();
        }
        if (signalled && !StopToken.IsCancellationRequested) { Write("Dashboard stopped."); return; }
        if (stopped || StopToken.IsCancellationRequested) throw new PipelineStoppedException();

        static PosixSignalRegistration? TrySignal(PosixSignal signal, Action<PosixSignalContext> handle)
        {
            try { return PosixSignalRegistration.Create(signal, handle); }
            catch (PlatformNotSupportedException) { return null; }
        }

        void Write(string line)
        {
            if (stopped) return;
            try { WriteInformation(new HostInformationMessage { Message = line }, ["PSHOST", "PerfectQueue"]); }
            catch (PipelineStoppedException) { stopped = true; }
        }
    }
}
