using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>Chooses the queue this session's PerfectQueue commands use (the original's PerfectQueue.open).</summary>
[Cmdlet(VerbsCommunications.Connect, "PQQueue", DefaultParameterSetName = UrlSet)]
[OutputType(typeof(Queue))]
public sealed class ConnectPQQueueCommand : PSCmdlet
{
    private const string UrlSet = "Url";
    private const string ConnectionStringSet = "ConnectionString";
    private const string ConfigSet = "Config";

    /// <summary>sqlite:///relative.db, sqlite:////absolute.db, postgresql://user:pass@host/db, sqlserver://user:pass@host/db.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = UrlSet)]
    [ValidateNotNullOrEmpty]
    public string Url { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ConnectionStringSet)]
    [ValidateNotNullOrEmpty]
    public string ConnectionString { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ConnectionStringSet)]
    [ValidateSet(typeof(ProviderNames))]
    public string Provider { get; set; } = "";

    /// <summary>A YAML or JSON config file in the original's layout (environments of keys).</summary>
    [Parameter(Mandatory = true, ParameterSetName = ConfigSet)]
    [ValidateNotNullOrEmpty]
    public string ConfigPath { get; set; } = "";

    [Parameter(ParameterSetName = ConfigSet)]
    [ValidateNotNullOrEmpty]
    public string Environment { get; set; } = QueueConfigFile.DefaultEnvironment;

    /// <summary>The queue's table (default: perfectqueue, or the config file's).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Table { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void EndProcessing()
    {
        Queue queue;
        try
        {
            var config = ParameterSetName switch
            {
                ConfigSet => QueueConfigFile.Load(SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath),
                    MyInvocation.BoundParameters.ContainsKey(nameof(Environment)) ? Environment : null),
                ConnectionStringSet => new QueueConfig { ConnectionString = ConnectionString, Provider = Provider },
                _ => new QueueConfig { Url = ResolveSqlitePath(Url) },
            };
            if (Table is not null) config.Table = Table;
            if (config.Url is { } url) config.Url = ResolveSqlitePath(url);
            queue = PQSession.Open(config);
        }
        catch (Exception e) when (e is PerfectQueueException or ArgumentException or System.Data.Common.DbException)
        {
            ThrowTerminatingError(PQErrors.For(e, ParameterSetName));
            return;
        }
        PQSession.SetDefault(queue);
        WriteVerbose($"This session's PerfectQueue commands now use {queue.Description}.");
        if (PassThru) WriteObject(queue);
    }

    // A relative SQLite path is relative to PowerShell's current location, not the process's directory.
    private string ResolveSqlitePath(string url) =>
        QueueConfig.ResolveSqliteUrl(url, SessionState.Path.GetUnresolvedProviderPathFromPSPath);
}
