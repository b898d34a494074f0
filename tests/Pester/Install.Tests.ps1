# The package as a user gets it: out/PerfectQueue.<version>.nupkg (build.ps1 package, which build.ps1 test runs
# first and which sets PQ_PACKAGE_PATH), installed with Install-PSResource from a file repository into a clean
# home, then imported by name in a fresh pwsh that drains a task.

BeforeAll {
    $script:Package = $env:PQ_PACKAGE_PATH
    if (-not $Package -or -not (Test-Path $Package)) {
        throw "Set PQ_PACKAGE_PATH to the package (run: dotnet pwsh ./build.ps1 test, or build.ps1 package). Got: '$Package'."
    }
    $script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).ProviderPath

    # A child pwsh with its own home (where PSResourceGet keeps its repository list and CurrentUser installs go) and
    # the default module path, so nothing of this machine's modules or of out/ can answer for the installed copy.
    function script:Invoke-CleanPwsh([string] $Home_, [string] $Script) {
        $file = Join-Path $TestDrive "child-$([guid]::NewGuid().ToString('N')).ps1"
        Set-Content $file $Script
        $info = [Diagnostics.ProcessStartInfo]::new('dotnet')
        foreach ($a in (Join-Path $PSHOME 'pwsh.dll'), '-NoProfile', '-NonInteractive', '-File', $file) { $info.ArgumentList.Add($a) }
        $info.Environment['HOME'] = $Home_
        $info.Environment['LOCALAPPDATA'] = Join-Path $Home_ 'AppData/Local'
        $info.Environment['APPDATA'] = Join-Path $Home_ 'AppData/Roaming'
        foreach ($name in 'PSModulePath', 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'PQ_MODULE_PATH', 'PERFECTQUEUE_URL') { $null = $info.Environment.Remove($name) }
        $info.WorkingDirectory = $Home_   # PSResourceGet may leave a NuGet/NuGet.Config in the working directory
        $info.RedirectStandardOutput = $true
        $info.RedirectStandardError = $true
        $process = [Diagnostics.Process]::Start($info)
        $output = $process.StandardOutput.ReadToEndAsync()
        $errors = $process.StandardError.ReadToEndAsync()
        if (-not $process.WaitForExit(180000)) { $process.Kill($true); throw "The child pwsh did not end within 180 s." }
        [pscustomobject]@{ ExitCode = $process.ExitCode; Output = $output.Result; Errors = $errors.Result }
    }
}

Describe 'The package' {
    It 'is named for the version and holds the module with only the supported native runtimes' {
        $props = [xml](Get-Content (Join-Path $RepoRoot 'Directory.Build.props') -Raw)
        $version = $props.SelectSingleNode('/Project/PropertyGroup/Version').InnerText
        Split-Path $Package -Leaf | Should -Be "PerfectQueue.$version.nupkg"

        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($Package)
        try { $entries = @($zip.Entries | ForEach-Object FullName) }
        finally { $zip.Dispose() }
        $entries | Should -Contain 'PerfectQueue.psd1'
        $entries | Should -Contain 'PerfectQueue.PowerShell.dll'
        $entries | Should -Contain 'lib/PerfectQueue.dll'
        $entries | Should -Contain 'LICENSE'
        $entries | Where-Object { $_ -like '*System.Management.Automation.dll' } | Should -BeNullOrEmpty
        $runtimes = $entries | Where-Object { $_ -like 'lib/runtimes/*' } | ForEach-Object { ($_ -split '/')[2] } | Sort-Object -Unique
        $runtimes | Should -Be @('linux-arm', 'linux-arm64', 'linux-musl-x64', 'linux-x64', 'osx-arm64', 'osx-x64', 'unix', 'win', 'win-arm64', 'win-x64', 'win-x86')
        # SQLite's native library for each platform pwsh 7.6 is released for (the embedded default must load everywhere).
        foreach ($native in 'lib/runtimes/linux-x64/native/libe_sqlite3.so', 'lib/runtimes/linux-arm64/native/libe_sqlite3.so',
            'lib/runtimes/linux-musl-x64/native/libe_sqlite3.so', 'lib/runtimes/osx-arm64/native/libe_sqlite3.dylib',
            'lib/runtimes/osx-x64/native/libe_sqlite3.dylib', 'lib/runtimes/win-x64/native/e_sqlite3.dll', 'lib/runtimes/win-arm64/native/e_sqlite3.dll') {
            $entries | Should -Contain $native
        }
    }

    It 'installs by name with Install-PSResource into a clean home, imports by name in a fresh pwsh and drains a task' {
        $repository = Join-Path $TestDrive 'repository'
        $null = New-Item -ItemType Directory $repository
        Copy-Item $Package $repository
        $userHome = (New-Item -ItemType Directory (Join-Path $TestDrive 'home')).FullName

        $install = Invoke-CleanPwsh $userHome @"
`$ErrorActionPreference = 'Stop'
if (Get-Module -ListAvailable PerfectQueue) { throw 'PerfectQueue is visible before the install: the home is not clean.' }
Register-PSResourceRepository -Name PQTest -Uri '$repository' -Trusted
Install-PSResource PerfectQueue -Repository PQTest -Scope CurrentUser
(Get-InstalledPSResource PerfectQueue).InstalledLocation
"@
        $install.ExitCode | Should -Be 0 -Because "$($install.Output)`n$($install.Errors)"

        $queueFile = Join-Path $TestDrive 'installed.db'
        $run = Invoke-CleanPwsh $userHome @"
`$ErrorActionPreference = 'Stop'
Import-Module PerfectQueue
Connect-PQQueue 'sqlite:///$queueFile'
Submit-PQTask -Key installed-1 -Type greet -Data @{ name = 'ops' }
`$summary = Start-PQWorker -UntilEmpty -Handler @{ greet = { param(`$Task) "hello `$(`$Task.Data.name)" } } 6>`$null
[pscustomobject]@{
    ModuleBase = (Get-Module PerfectQueue).ModuleBase
    Available  = @(Get-Module -ListAvailable PerfectQueue).Count
    Succeeded  = `$summary.Succeeded
    Outcome    = [string] (Get-PQTask -Key installed-1).Outcome
} | ConvertTo-Json -Compress
"@
        $run.ExitCode | Should -Be 0 -Because "$($run.Output)`n$($run.Errors)"
        $result = ($run.Output.Trim() -split "`n")[-1] | ConvertFrom-Json
        $result.ModuleBase | Should -BeLike "$userHome*"
        $result.Available | Should -Be 1
        $result.Succeeded | Should -Be 1
        $result.Outcome | Should -Be 'Succeeded'
    }
}
