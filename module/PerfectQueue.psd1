@{
    # The cmdlet assembly. It loads the engine (lib/PerfectQueue.dll) into its own AssemblyLoadContext.
    RootModule           = 'PerfectQueue.PowerShell.dll'

    # build.ps1 replaces this with <Version> from Directory.Build.props (the one version source).
    ModuleVersion        = '0.0.0'

    GUID                 = 'be368584-f7c1-4c0a-b414-fd67895b2022'
    Author               = 'PerfectQueue for PowerShell contributors'
    CompanyName          = 'PerfectQueue for PowerShell contributors'
    Copyright            = '(c) PerfectQueue for PowerShell contributors.'
    Description          = 'A highly available, durable task queue on a relational database (SQL Server, PostgreSQL, SQLite), driven from PowerShell: submit, list, cancel and process tasks with at-least-once delivery.'

    PowerShellVersion    = '7.6'
    CompatiblePSEditions = @('Core')

    # Explicit lists: PowerShell does not have to scan the module to know what it exports.
    CmdletsToExport      = @()
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()

    PrivateData          = @{
        PSData = @{
            Tags         = @('Queue', 'TaskQueue', 'JobQueue', 'Worker', 'PerfectQueue', 'SqlServer', 'PostgreSQL', 'SQLite', 'Automation', 'PSEdition_Core', 'Linux', 'Windows', 'MacOS')
            ReleaseNotes = 'See the project''s docs/ for changes.'
            # build.ps1 sets Prerelease here when <Version> has a suffix (e.g. 0.2.0-beta1).
        }
    }
}
