using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>
/// How Connect-PQQueue and Open-PQQueue name a queue (-Url, -ConnectionString + -Provider, or -ConfigPath +
/// -Environment; -Table), kept in one place so the two cannot drift apart.
/// </summary>
public abstract class QueueSelectionCmdlet : PSCmdlet
{
    protected const string UrlSet = "Url";
    protected const string ConnectionStringSet = "ConnectionString";
    protected const string ConfigSet = "Config";

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

    /// <summary>The environment in -ConfigPath. Default: $env:PERFECTQUEUE_ENVIRONMENT, then $env:RAILS_ENV, then development.</summary>
    [Parameter(ParameterSetName = ConfigSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ConfigEnvironmentCompleter))]
    public string? Environment { get; set; }

    /// <summary>The queue's table (default: perfectqueue, or the config file's).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueueTableCompleter))]
    public string? Table { get; set; }

    /// <summary>The queue the parameters name (shared with every command that names the same settings); bad input ends the command.</summary>
    protected Queue OpenSelectedQueue()
    {
        try
        {
            QueueConfig config;
            switch (ParameterSetName)
            {
                case ConfigSet:
                    var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ConfigPath);
                    (config, var environment, var why) = QueueConfigFile.LoadChoosingEnvironment(path, Environment);
                    WriteVerbose($"{path}: environment {environment} ({why}).");
                    break;
                case ConnectionStringSet:
                    config = new QueueConfig { ConnectionString = ConnectionString, Provider = Provider };
                    break;
                default:
                    config = new QueueConfig { Url = ResolveSqlitePath(Url) };
                    break;
            }
            if (Table is not null) config.Table = Table;
            if (config.Url is { } url) config.Url = ResolveSqlitePath(url);
            return PQSession.Open(config);
        }
        catch (Exception e) when (e is PerfectQueueException or ArgumentException or System.Data.Common.DbException)
        {
            ThrowTerminatingError(PQErrors.For(e, ParameterSetName));
            throw; // not reached
        }
    }

    // A relative SQLite path is relative to PowerShell's current location, not the process's directory.
    private string ResolveSqlitePath(string url) =>
        QueueConfig.ResolveSqliteUrl(url, SessionState.Path.GetUnresolvedProviderPathFromPSPath);
}
