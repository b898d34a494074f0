@{
    # The cmdlet assembly. It loads the engine (lib/PerfectQueue.dll) into its own AssemblyLoadContext.
    RootModule           = 'PerfectQueue.PowerShell.dll'

    # Imported before the root module: installs the resolver that loads the engine into its own
    # AssemblyLoadContext, which must be in place before PowerShell reflects over the cmdlets.
    NestedModules        = @('PerfectQueue.PowerShell.Loader.dll')

    # build.ps1 replaces this with <Version> from Directory.Build.props (the one version source).
    ModuleVersion        = '0.0.0'

    GUID                 = 'be368584-f7c1-4c0a-b414-fd67895b2022'
    Author               = 'PerfectQueue for PowerShell contributors'
    CompanyName          = 'PerfectQueue for PowerShell contributors'
    Copyright            = '(c) PerfectQueue for PowerShell contributors.'
    Description          = 'A highly available, durable task queue on a relational database (SQLite, SQL Server, PostgreSQL, MySQL/MariaDB), driven from PowerShell: submit, list, cancel, schedule and process tasks with at-least-once delivery, unique task keys and workers that run scriptblock or compiled handlers.'

    PowerShellVersion    = '7.6'
    FormatsToProcess     = @('PerfectQueue.Format.ps1xml')
    CompatiblePSEditions = @('Core')

    # Explicit lists: PowerShell does not have to scan the module to know what it exports.
    CmdletsToExport      = @(
        'Connect-PQQueue', 'Disconnect-PQQueue', 'Initialize-PQQueue', 'Submit-PQTask', 'Get-PQTask', 'Test-PQTask',
        'Request-PQCancel', 'Complete-PQTask', 'Receive-PQTask', 'Wait-PQTask', 'Measure-PQQueue', 'Start-PQWorker',
        'Get-PQWorker', 'Stop-PQWorker', 'Open-PQQueue', 'Get-PQTaskHistory',
        'Register-PQSchedule', 'Get-PQSchedule', 'Set-PQSchedule', 'Unregister-PQSchedule', 'Suspend-PQSchedule', 'Resume-PQSchedule',
        'Suspend-PQQueue', 'Resume-PQQueue', 'Get-PQQueuePause',
        'Restart-PQTask', 'Remove-PQTask', 'Start-PQDashboard'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()

    PrivateData          = @{
        PSData = @{
            Tags         = @('Queue', 'TaskQueue', 'JobQueue', 'Worker', 'Scheduler', 'Cron', 'PerfectQueue', 'SqlServer', 'PostgreSQL', 'SQLite', 'MySQL', 'MariaDB', 'Automation', 'PSEdition_Core', 'Linux', 'Windows', 'MacOS')
            # The project's home and licence (docs/packaging.md: check both before publishing to a gallery).
            ProjectUri   = 'https://github.com/perfectqueue/perfectqueue-powershell'
            LicenseUri   = 'https://github.com/perfectqueue/perfectqueue-powershell/blob/main/LICENSE'
            # build.ps1 replaces this with this version's section of CHANGELOG.md.
            ReleaseNotes = 'CHANGELOG.md'
            # build.ps1 sets Prerelease here when <Version> has a suffix (e.g. 0.2.0-beta1).
        }
    }
}
