<#
.SYNOPSIS
    Builds, tests and demonstrates the PerfectQueue module.
.DESCRIPTION
    Run from anywhere as: dotnet pwsh ./build.ps1 <task>   (after `dotnet tool restore`)
      build  builds the solution (Release) and assembles the importable module at out/PerfectQueue/
      test   package, then every xUnit test and every Pester test (tests/Pester/*.Tests.ps1); the last
             line printed is "N passed, M failed[, K skipped]"; exits non-zero on a failure or when
             no test ran. Starts a throwaway PostgreSQL cluster and a throwaway MariaDB server on free
             loopback ports in temp folders (or uses PQ_TEST_POSTGRES / PQ_TEST_MYSQL) and stops them at the end
             and installs playwright-core (npm) into a temp folder for the dashboard's tests in Chromium
      package  build, then out/PerfectQueue.<version>.nupkg with PSResourceGet's Publish-PSResource, out/ serving as
             the local file repository (docs/packaging.md); the user's own repository list is not touched
      demo   build, then build/demo.ps1 against the assembled module
      bench  build, then submit and drain throughput of PerfectQueue (compiled and scriptblock handlers) and of
             Hangfire, on SQLite and PostgreSQL (a throwaway fsync-on cluster, or the server in PQ_BENCH_POSTGRES), of
             graphile-worker 0.18.0 on the same PostgreSQL when node and npm exist (installed into a temp folder for the
             run), and of PerfectQueue on MariaDB (a throwaway durable server, or the server in PQ_BENCH_MYSQL);
             prints the table and issue 13's target ratios and writes docs/benchmarks.md. -Count N sets the tasks per
             case (default 20000)
      clean  removes out/
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('build', 'package', 'test', 'demo', 'bench', 'clean')]
    [string] $Task = 'build',

    # bench: tasks per case.
    [ValidateRange(1, 1000000)]
    [int] $Count = 20000
)

$ErrorActionPreference = 'Stop'
$PSNativeCommandUseErrorActionPreference = $true   # a failing dotnet/pwsh call stops the script
Set-StrictMode -Version Latest

$Configuration = 'Release'
$Root = $PSScriptRoot
$Out = Join-Path $Root 'out'
$ModuleDir = Join-Path $Out 'PerfectQueue'
$ResultsDir = Join-Path $Out 'test-results'

function Invoke-Build {
    dotnet build (Join-Path $Root 'PerfectQueue.sln') -c $Configuration --nologo

    # MSBuild says where the cmdlet assembly is and what <Version> is (Directory.Build.props: the one source).
    $props = dotnet msbuild (Join-Path $Root 'src/PerfectQueue.PowerShell/PerfectQueue.PowerShell.csproj') `
        -p:Configuration=$Configuration -getProperty:TargetPath -getProperty:Version | ConvertFrom-Json
    $cmdletDll = $props.Properties.TargetPath
    $version = $props.Properties.Version

    if (Test-Path $ModuleDir) { Remove-Item $ModuleDir -Recurse -Force }
    $null = New-Item -ItemType Directory $ModuleDir

    # Root: the cmdlet assembly and everything under module/ (manifest, format/type files, help).
    # ...and the loader (a nested module) built beside it.
    Get-ChildItem (Split-Path $cmdletDll) -Filter 'PerfectQueue.PowerShell*' | Where-Object Extension -In '.dll', '.pdb' | Copy-Item -Destination $ModuleDir
    Copy-Item (Join-Path $Root 'module/*') $ModuleDir -Recurse
    Copy-Item (Join-Path $Root 'LICENSE') $ModuleDir

    # lib/: the engine as published without a runtime id (deps.json + runtimes/<rid>/), loaded in its own context.
    dotnet publish (Join-Path $Root 'src/PerfectQueue/PerfectQueue.csproj') -c $Configuration --no-build --nologo -o (Join-Path $ModuleDir 'lib')
    Remove-UnsupportedRuntimes (Join-Path $ModuleDir 'lib')

    # ModuleVersion takes the numeric part; a suffix (0.2.0-beta1) becomes PSData.Prerelease.
    $numeric, $prerelease = $version -split '-', 2
    $manifest = Join-Path $ModuleDir 'PerfectQueue.psd1'
    $text = Get-Content $manifest -Raw
    if ($text -notmatch "ModuleVersion\s*=\s*'0\.0\.0'") { throw "$manifest has no ModuleVersion = '0.0.0' placeholder." }
    $text = $text -replace "ModuleVersion\s*=\s*'0\.0\.0'", "ModuleVersion        = '$numeric'"
    if ($prerelease) { $text = $text -replace 'PSData\s*=\s*@\{', "PSData = @{`n            Prerelease   = '$($prerelease -replace '[^A-Za-z0-9]', '')'" }
    $notes = Get-ReleaseNotes $version
    if ($text -notmatch "ReleaseNotes\s*=\s*'CHANGELOG\.md'") { throw "$manifest has no ReleaseNotes = 'CHANGELOG.md' placeholder." }
    $text = $text.Replace("'CHANGELOG.md'", "'" + ($notes -replace "'", "''") + "'")
    Set-Content $manifest $text -NoNewline

    # pwsh brings its own System.Management.Automation; a shipped copy would break the module.
    $sma = Get-ChildItem $ModuleDir -Recurse -Filter 'System.Management.Automation.dll'
    if ($sma) { throw "The module folder must not contain System.Management.Automation.dll: $($sma.FullName -join ', ')" }
    $null = Test-ModuleManifest $manifest

    # Help (en-US/*.dll-Help.xml, about_*.help.txt) from docs/ and the cmdlets' metadata; fails when they disagree.
    # A child pwsh: it imports the module, and an imported binary module locks its dll.
    dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $Root 'build/New-PQHelp.ps1') -ModulePath $ModuleDir
    $env:PQ_MODULE_PATH = $ModuleDir
    Write-Host "Module $version assembled at $ModuleDir"
}

# The platforms PowerShell 7.6 itself is released for (docs/packaging.md): the native libraries of every other
# runtime id (Android, iOS, WebAssembly, s390x, ...) are dropped from lib/runtimes/ and from the deps.json the
# loader resolves them with, so the module stays one portable folder, a third of its size. 'unix' and 'win' hold
# the managed assemblies SqlClient and System.* pick per OS family.
$SupportedRuntimes = @('win', 'win-x64', 'win-x86', 'win-arm64', 'osx-x64', 'osx-arm64',
    'unix', 'linux-x64', 'linux-arm64', 'linux-arm', 'linux-musl-x64')

function Remove-UnsupportedRuntimes([string] $lib) {
    $depsPath = Join-Path $lib 'PerfectQueue.deps.json'
    $deps = Get-Content $depsPath -Raw | ConvertFrom-Json -AsHashtable
    foreach ($target in $deps.targets.Values) {
        foreach ($library in $target.Values) {
            if (-not $library.Contains('runtimeTargets')) { continue }
            foreach ($asset in @($library.runtimeTargets.Keys)) {
                if ($library.runtimeTargets[$asset].rid -notin $SupportedRuntimes) { $library.runtimeTargets.Remove($asset) }
            }
        }
    }
    $deps | ConvertTo-Json -Depth 32 | Set-Content $depsPath
    foreach ($folder in Get-ChildItem (Join-Path $lib 'runtimes') -Directory) {
        if ($folder.Name -notin $SupportedRuntimes) { Remove-Item $folder.FullName -Recurse -Force }
    }
}

# This version's section of CHANGELOG.md (its "## [version]" heading to the next "## "), for the manifest's ReleaseNotes.
function Get-ReleaseNotes([string] $version) {
    $lines = Get-Content (Join-Path $Root 'CHANGELOG.md')
    $start = [Array]::FindIndex([string[]] $lines, [Predicate[string]] { param($l) $l -like "## ``[$version``]*" })
    if ($start -lt 0) { throw "CHANGELOG.md has no '## [$version]' section: add one for the version in Directory.Build.props." }
    $end = [Array]::FindIndex([string[]] $lines, $start + 1, [Predicate[string]] { param($l) $l -like '## *' })
    if ($end -lt 0) { $end = $lines.Count }
    ($lines[$start..($end - 1)] -join "`n").Trim()
}

# The package: PSResourceGet's own Publish-PSResource (it ships with pwsh 7.6) packs the assembled module folder into
# out/PerfectQueue.<version>.nupkg, out/ being registered as a file repository for that one call. It runs in a child
# pwsh whose home is a temporary folder, where PSResourceGet keeps its repository list: the user's own list is
# never read or changed.
function Invoke-Package {
    Invoke-Build
    Get-ChildItem $Out -Filter 'PerfectQueue.*.nupkg' | Remove-Item
    $script = '$ErrorActionPreference = "Stop"; ' +
        'Register-PSResourceRepository -Name PerfectQueueBuild -Uri $env:PQ_PACKAGE_REPOSITORY -Trusted; ' +
        'Publish-PSResource -Path $env:PQ_PACKAGE_MODULE -Repository PerfectQueueBuild'
    Invoke-IsolatedPwsh $script @{ PQ_PACKAGE_REPOSITORY = $Out; PQ_PACKAGE_MODULE = $ModuleDir }
    $package = @(Get-ChildItem $Out -Filter 'PerfectQueue.*.nupkg')
    if ($package.Count -ne 1) { throw "Publish-PSResource left $($package.Count) packages in $Out, expected one." }
    $env:PQ_PACKAGE_PATH = $package[0].FullName
    Write-Host ("Package {0} ({1:N1} MB)" -f $package[0].FullName, ($package[0].Length / 1MB))
}

# Runs a command in a child pwsh with a temporary, empty home (HOME on Linux and macOS; LOCALAPPDATA and APPDATA on
# Windows) and the default module path, in that folder, which is removed afterwards.
function Invoke-IsolatedPwsh([string] $Command, [hashtable] $Environment = @{}) {
    $isolated = (New-Item -ItemType Directory (Join-Path ([IO.Path]::GetTempPath()) "pq-home-$PID-$(Get-Random)")).FullName
    $variables = @{
        HOME = $isolated; LOCALAPPDATA = (Join-Path $isolated 'AppData/Local'); APPDATA = (Join-Path $isolated 'AppData/Roaming')
        XDG_DATA_HOME = $null; XDG_CONFIG_HOME = $null; XDG_CACHE_HOME = $null; PSModulePath = $null
    } + $Environment
    $saved = @{}
    foreach ($name in $variables.Keys) { $saved[$name] = [Environment]::GetEnvironmentVariable($name); [Environment]::SetEnvironmentVariable($name, $variables[$name]) }
    # Run from the temporary folder too: Publish-PSResource leaves a NuGet/NuGet.Config in its working directory.
    Push-Location $isolated
    try { dotnet (Join-Path $PSHOME 'pwsh.dll') -NoProfile -NonInteractive -Command $Command }
    finally {
        Pop-Location
        foreach ($name in $saved.Keys) { [Environment]::SetEnvironmentVariable($name, $saved[$name]) }
        Remove-Item $isolated -Recurse -Force -ErrorAction SilentlyContinue
    }
}

function Get-Text($node) { if ($node) { $node.InnerText.Trim() } else { '' } }

# The test functions return one object per test: Suite, Name, Outcome (Passed/Failed/Skipped), Message;
# what the tools print goes to the host (Out-Host), not into those results.
function Invoke-XUnit {
    $solutionProjects = dotnet sln (Join-Path $Root 'PerfectQueue.sln') list | Where-Object { $_ -match '\.csproj$' }
    $testProjects = $solutionProjects | ForEach-Object { Join-Path $Root $_.Trim() } |
        Where-Object { (Get-Content $_ -Raw) -match 'Microsoft\.NET\.Test\.Sdk|<IsTestProject>\s*true' }
    foreach ($project in $testProjects) {
        $name = [IO.Path]::GetFileNameWithoutExtension($project)
        $trx = Join-Path $ResultsDir "$name.trx"
        # Failing tests make dotnet test exit 1; the TRX file, not the exit code, tells what happened.
        & { $PSNativeCommandUseErrorActionPreference = $false
            dotnet test $project -c $Configuration --no-build --nologo --logger "trx;LogFileName=$name.trx" --results-directory $ResultsDir | Out-Host }
        $exitCode = $LASTEXITCODE
        $results = @(if (Test-Path $trx) {
            $doc = [xml](Get-Content $trx -Raw)
            $ns = [Xml.XmlNamespaceManager]::new($doc.NameTable)
            $ns.AddNamespace('t', 'http://microsoft.com/schemas/VisualStudio/TeamTest/2010')
            foreach ($node in $doc.SelectNodes('//t:UnitTestResult', $ns)) {
                [pscustomobject]@{
                    Suite   = 'xUnit'
                    Name    = $node.testName
                    Outcome = switch ($node.outcome) { 'Passed' { 'Passed' } 'NotExecuted' { 'Skipped' } default { 'Failed' } }
                    Message = Get-Text $node.SelectSingleNode('t:Output/t:ErrorInfo/t:Message', $ns)   # failure or skip reason
                }
            }
        })
        $results
        if ($exitCode -ne 0 -and -not ($results | Where-Object Outcome -EQ 'Failed')) {
            [pscustomobject]@{ Suite = 'xUnit'; Name = $name; Outcome = 'Failed'; Message = "dotnet test exited with code $exitCode and reported no failed test (see its output above)." }
        }
    }
}

function Invoke-PesterTests {
    # Pester comes from NuGet (no PowerShell Gallery here): build/PesterRestore downloads the pinned version.
    $restoreProject = Join-Path $Root 'build/PesterRestore/PesterRestore.csproj'
    dotnet restore $restoreProject --nologo | Out-Host
    if ((Get-Content $restoreProject -Raw) -notmatch 'Include="Pester"\s+Version="\[([^\]]+)\]"') { throw "No Pester version in $restoreProject." }
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
    $env:PQ_PESTER_PATH = Join-Path $packages "pester/$($Matches[1])/tools/Pester.psd1"
    $env:PQ_PESTER_TESTS = Join-Path $Root 'tests/Pester'
    $env:PQ_PESTER_RESULT = Join-Path $ResultsDir 'pester.xml'

    # A child pwsh: an imported binary module locks its dll and cannot be unloaded from this process.
    $runner = 'Import-Module $env:PQ_PESTER_PATH; $c = New-PesterConfiguration; ' +
        '$c.Run.Path = $env:PQ_PESTER_TESTS; $c.Output.Verbosity = "Detailed"; $c.TestResult.Enabled = $true; ' +
        '$c.TestResult.OutputFormat = "NUnit3"; $c.TestResult.OutputPath = $env:PQ_PESTER_RESULT; ' +
        'if ($env:CI) { $c.Output.RenderMode = "Plaintext" }; Invoke-Pester -Configuration $c'
    & { $PSNativeCommandUseErrorActionPreference = $false
        dotnet pwsh -NoProfile -NonInteractive -Command $runner | Out-Host }

    if (-not (Test-Path $env:PQ_PESTER_RESULT)) {
        return [pscustomobject]@{ Suite = 'Pester'; Name = 'Pester run'; Outcome = 'Failed'; Message = "No result file (child pwsh exited with code $LASTEXITCODE)." }
    }
    $xml = [xml](Get-Content $env:PQ_PESTER_RESULT -Raw)
    foreach ($case in $xml.SelectNodes('//test-case')) {
        [pscustomobject]@{
            Suite   = 'Pester'
            Name    = $case.fullname
            Outcome = switch ($case.result) { 'Passed' { 'Passed' } { $_ -in 'Skipped', 'Inconclusive' } { 'Skipped' } default { 'Failed' } }
            Message = Get-Text $case.SelectSingleNode('failure/message|reason/message')
        }
    }
    # A test file that does not parse or throws at top level fails as a suite without test cases.
    foreach ($suite in $xml.SelectNodes('//test-suite[failure and not(.//test-case)]')) {
        [pscustomobject]@{ Suite = 'Pester'; Name = $suite.fullname; Outcome = 'Failed'; Message = Get-Text $suite.SelectSingleNode('failure/message') }
    }
}

# A throwaway PostgreSQL cluster on loopback for the server-backed tests, unless PQ_TEST_POSTGRES already
# names a server. Without PostgreSQL installed the PostgreSQL tests say they skipped (and fail under CI).
# -Durable (the benchmarks): fsync on, and the URL goes to PQ_BENCH_POSTGRES instead.
function Start-TestPostgres([switch] $Durable) {
    $variable = if ($Durable) { 'PQ_BENCH_POSTGRES' } else { 'PQ_TEST_POSTGRES' }
    if ([Environment]::GetEnvironmentVariable($variable)) { Write-Host "PostgreSQL: the server in $variable."; return $null }
    $initdb = Get-ChildItem '/usr/lib/postgresql/*/bin/initdb', '/usr/local/pgsql/bin/initdb' -ErrorAction SilentlyContinue |
        Sort-Object { if ($_.FullName -match '/postgresql/(\d+)/') { [int]$Matches[1] } else { 0 } } | Select-Object -Last 1
    if (-not $initdb) { Write-Host 'PostgreSQL is not installed: its tests will report why they did not run.'; return $null }
    $bin = $initdb.DirectoryName
    $dir = (New-Item -ItemType Directory (Join-Path ([IO.Path]::GetTempPath()) "pq-pg-$PID-$(Get-Random)")).FullName
    $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0); $listener.Start()
    $port = $listener.LocalEndpoint.Port; $listener.Stop()
    # initdb refuses to run as root: as root, run the server as the postgres user.
    $prefix = if ((id -u) -eq '0') { chown postgres:postgres $dir; @('runuser', '-u', 'postgres', '--') } else { @() }
    $run = { param([string[]] $command) $all = $prefix + $command; & $all[0] $all[1..($all.Count - 1)] | Out-Null }.GetNewClosure()
    & $run @("$bin/initdb", '-D', "$dir/data", '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale')
    # fsync off: these are functional tests; benchmarks keep it on.
    $fsync = if ($Durable) { 'on' } else { 'off' }
    & $run @("$bin/pg_ctl", '-D', "$dir/data", '-l', "$dir/log", '-w', '-t', '60', '-o',
        "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=$fsync -c max_connections=300", 'start')
    Set-Item "Env:$variable" "postgresql://postgres@127.0.0.1:$port/postgres"
    Write-Host "Started a throwaway PostgreSQL cluster on 127.0.0.1:$port ($dir, fsync $fsync)."
    [pscustomobject]@{ Run = $run; Bin = $bin; Dir = $dir; Variable = $variable }
}

function Stop-TestPostgres($cluster) {
    if (-not $cluster) { return }
    & { $PSNativeCommandUseErrorActionPreference = $false
        & $cluster.Run @("$($cluster.Bin)/pg_ctl", '-D', "$($cluster.Dir)/data", '-m', 'immediate', '-w', 'stop') }
    Remove-Item $cluster.Dir -Recurse -Force -ErrorAction SilentlyContinue
    Remove-Item "Env:$($cluster.Variable)"
}

# A throwaway MariaDB server on loopback for the MySQL/MariaDB tests, unless PQ_TEST_MYSQL already names a
# server. Without MariaDB installed those tests say they skipped (and fail under CI). Built for speed, not
# durability: no binary log, the redo log flushed once a second, no doublewrite buffer.
# -Durable (the benchmarks): the redo log flushed at every commit and the doublewrite buffer on (InnoDB's
# defaults), and the URL goes to PQ_BENCH_MYSQL instead.
function Start-TestMariaDb([switch] $Durable) {
    $variable = if ($Durable) { 'PQ_BENCH_MYSQL' } else { 'PQ_TEST_MYSQL' }
    if ([Environment]::GetEnvironmentVariable($variable)) { Write-Host "MySQL/MariaDB: the server in $variable."; return $null }
    $find = { param([string] $name, [string[]] $paths)
        $found = @($paths | Where-Object { Test-Path $_ -PathType Leaf }) + @((Get-Command $name -CommandType Application -ErrorAction SilentlyContinue).Source)
        @($found | Where-Object { $_ })[0] }
    $server = & $find 'mariadbd' @('/usr/sbin/mariadbd', '/usr/local/mysql/bin/mariadbd')
    $installDb = & $find 'mariadb-install-db' @('/usr/bin/mariadb-install-db', '/usr/local/mysql/scripts/mariadb-install-db')
    $client = & $find 'mariadb' @('/usr/bin/mariadb', '/usr/local/mysql/bin/mariadb')
    if (-not ($server -and $installDb -and $client)) {
        Write-Host 'MariaDB is not installed (mariadbd, mariadb-install-db, mariadb): the MySQL tests will report why they did not run.'; return $null
    }
    $dir = (New-Item -ItemType Directory (Join-Path ([IO.Path]::GetTempPath()) "pq-mariadb-$PID-$(Get-Random)")).FullName
    $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0); $listener.Start()
    $port = $listener.LocalEndpoint.Port; $listener.Stop()
    # mariadbd refuses to run as root unless told: as root, it runs as the mysql user the package made.
    $user = @()
    if ((id -u) -eq '0') {
        $account = & { $PSNativeCommandUseErrorActionPreference = $false; id -u mysql 2>$null }
        $user = @(if ($account) { chown mysql:mysql $dir; '--user=mysql' } else { '--user=root' })
    }
    $data = "$dir/data"; $socket = "$dir/mysqld.sock"; $pidFile = "$dir/mysqld.pid"
    & $installDb --no-defaults "--datadir=$data" @user --auth-root-authentication-method=normal --skip-test-db `
        --skip-name-resolve > "$dir/install.log" 2>&1
    if ($LASTEXITCODE -ne 0) { throw "mariadb-install-db failed (exit $LASTEXITCODE); see $dir/install.log." }
    $durability = if ($Durable) { @('--innodb-flush-log-at-trx-commit=1', '--innodb-doublewrite=1') } else { @('--innodb-flush-log-at-trx-commit=2', '--innodb-doublewrite=0') }
    $arguments = @('--no-defaults', "--datadir=$data", "--socket=$socket", "--pid-file=$pidFile", "--port=$port",
        '--bind-address=127.0.0.1', '--skip-name-resolve', '--skip-log-bin') + $durability + @('--innodb-buffer-pool-size=128M', '--max-connections=300',
        '--character-set-server=utf8mb4', "--tmpdir=$dir", "--log-error=$dir/error.log") + $user
    # Through sh, detached from this script's output (like pg_ctl): nothing of it holds a pipe open.
    $quoted = (@($server) + $arguments | ForEach-Object { "'" + ($_ -replace "'", "'\''") + "'" }) -join ' '
    sh -c "$quoted < /dev/null > /dev/null 2>&1 &"
    $database = 'perfectqueue_test'
    $deadline = [DateTime]::UtcNow.AddSeconds(60)
    $ready = $false
    while (-not $ready -and [DateTime]::UtcNow -lt $deadline) {
        Start-Sleep -Milliseconds 250
        & { $PSNativeCommandUseErrorActionPreference = $false
            & $client --no-defaults "--socket=$socket" -uroot -e "CREATE DATABASE IF NOT EXISTS $database CHARACTER SET utf8mb4" 2>$null }
        $ready = $LASTEXITCODE -eq 0
    }
    $instance = [pscustomobject]@{ Dir = $dir; PidFile = $pidFile; Variable = $variable }
    if (-not $ready) {
        $log = if (Test-Path "$dir/error.log") { (Get-Content "$dir/error.log" -Tail 20) -join "`n" } else { '(no error log)' }
        Stop-TestMariaDb $instance
        throw "The throwaway MariaDB did not accept connections within 60 s:`n$log"
    }
    Set-Item "Env:$variable" "mysql://root@127.0.0.1:$port/$database"
    $version = & $client --no-defaults "--socket=$socket" -uroot -N -B -e 'SELECT VERSION()'
    Write-Host "Started a throwaway MariaDB $version on 127.0.0.1:$port ($dir, database $database)."
    $instance
}

function Stop-TestMariaDb($instance) {
    if (-not $instance) { return }
    if (Test-Path $instance.PidFile) {
        $serverPid = [int](Get-Content $instance.PidFile -Raw).Trim()
        # A throwaway server: killed, not shut down (like pg_ctl -m immediate), then waited for.
        $process = Get-Process -Id $serverPid -ErrorAction SilentlyContinue
        if ($process) { $process.Kill(); [void]$process.WaitForExit(30000) }
    }
    Remove-Item $instance.Dir -Recurse -Force -ErrorAction SilentlyContinue
    Remove-Item "Env:$($instance.Variable)" -ErrorAction SilentlyContinue
}

# The dashboard's browser tests (tests/Pester/Dashboard.Browser.Tests.ps1) drive Debian's Chromium with playwright-core
# from npm, installed for the run into a temp folder with tests/browser/dashboard.mjs beside its node_modules (never
# into the repository or the module). Without node, npm or Chromium those tests say why they skipped (and fail under CI).
function Install-BrowserDriver {
    $chromium = if ($env:PQ_CHROMIUM) { $env:PQ_CHROMIUM } else { '/usr/bin/chromium' }
    $missing = @()
    if (-not (Get-Command node -ErrorAction Ignore)) { $missing += 'node' }
    if (-not (Get-Command npm -ErrorAction Ignore)) { $missing += 'npm' }
    if (-not (Test-Path $chromium)) { $missing += "Chromium ($chromium; apt-get install chromium)" }
    if ($missing) { $env:PQ_BROWSER_MISSING = "not installed here: $($missing -join ', ')"; return $null }
    $dir = Join-Path ([IO.Path]::GetTempPath()) ("pq-browser-" + [guid]::NewGuid().ToString('N').Substring(0, 8))
    New-Item -ItemType Directory $dir | Out-Null
    Copy-Item (Join-Path $Root 'tests/browser/package.json'), (Join-Path $Root 'tests/browser/dashboard.mjs') $dir
    & { $PSNativeCommandUseErrorActionPreference = $false
        Push-Location $dir
        try { npm install --no-audit --no-fund --loglevel=error | Out-Host } finally { Pop-Location } }
    if ($LASTEXITCODE -ne 0 -or -not (Test-Path (Join-Path $dir 'node_modules/playwright-core'))) {
        $env:PQ_BROWSER_MISSING = "npm could not install playwright-core (exit code $LASTEXITCODE)"
        return $dir
    }
    $env:PQ_BROWSER_DRIVER = Join-Path $dir 'dashboard.mjs'
    $env:PQ_CHROMIUM = $chromium
    $dir
}

function Invoke-Test {
    Invoke-Package   # the install test (tests/Pester/Install.Tests.ps1) installs it by name
    if (Test-Path $ResultsDir) { Remove-Item $ResultsDir -Recurse -Force }
    $cluster = $null; $mariadb = $null; $browser = $null
    try {
        $cluster = Start-TestPostgres
        $mariadb = Start-TestMariaDb
        $browser = Install-BrowserDriver
        $results = @(Invoke-XUnit) + @(Invoke-PesterTests)
    }
    finally {
        Stop-TestMariaDb $mariadb; Stop-TestPostgres $cluster
        if ($browser) { Remove-Item $browser -Recurse -Force -ErrorAction SilentlyContinue }
    }

    $passed = @($results | Where-Object Outcome -EQ 'Passed').Count
    $failed = @($results | Where-Object Outcome -EQ 'Failed')
    $skipped = @($results | Where-Object Outcome -EQ 'Skipped')
    Write-Host ''
    foreach ($t in $skipped) { Write-Host "SKIPPED [$($t.Suite)] $($t.Name): $($t.Message)" }
    foreach ($t in $failed) { Write-Host "FAILED  [$($t.Suite)] $($t.Name)`n    $($t.Message -replace "`n", "`n    ")" }
    if ($results.Count -eq 0) { Write-Host 'No test ran.' }
    Write-Host ("$passed passed, $($failed.Count) failed" + $(if ($skipped) { ", $($skipped.Count) skipped" }))
    if ($failed -or $results.Count -eq 0) { exit 1 }
}

# The benchmark program (bench/; the solution compiles it, but the module is assembled from the engine's publish, so
# its peer packages never reach out/PerfectQueue) runs
# against the assembled module and a PostgreSQL cluster with fsync on; it prints the table and writes docs/benchmarks.md.
# graphile-worker, the Node.js peer, is installed for the run into a temp folder (never into the repository or the
# module) with bench/graphile/graphile-bench.mjs copied beside its node_modules: an ES module finds packages from its
# own folder, not from NODE_PATH. Without node or npm, or when the install fails, its cases are skipped and the
# report says why.
function Invoke-Bench([bool] $CountGiven) {
    Invoke-Build
    $project = Join-Path $Root 'bench/PerfectQueue.Bench/PerfectQueue.Bench.csproj'
    dotnet build $project -c $Configuration --nologo
    $graphileWorkerVersion = '0.18.0'
    $cluster = $null; $mariadb = $null; $graphile = $null
    try {
        $cluster = Start-TestPostgres -Durable
        $mariadb = Start-TestMariaDb -Durable
        $command = 'dotnet pwsh ./build.ps1 bench' + $(if ($CountGiven) { " -Count $Count" })
        $arguments = @('--count', $Count, '--module', $ModuleDir, '--repo', $Root,
            '--output', (Join-Path $Root 'docs/benchmarks.md'), '--command', $command)
        if ($env:PQ_BENCH_POSTGRES) { $arguments += '--postgres', $env:PQ_BENCH_POSTGRES }
        else { Write-Host 'PostgreSQL is not installed and PQ_BENCH_POSTGRES is not set: no PostgreSQL cases.' }
        if ($env:PQ_BENCH_MYSQL) { $arguments += '--mysql', $env:PQ_BENCH_MYSQL }
        else { Write-Host 'MariaDB is not installed and PQ_BENCH_MYSQL is not set: no MariaDB cases.' }

        $missing = if (-not (Get-Command node -CommandType Application -ErrorAction SilentlyContinue)) { 'node is not on PATH' }
            elseif (-not (Get-Command npm -CommandType Application -ErrorAction SilentlyContinue)) { 'npm is not on PATH' }
            elseif (-not $env:PQ_BENCH_POSTGRES) { 'no PostgreSQL server' }
        if (-not $missing) {
            $graphile = (New-Item -ItemType Directory (Join-Path ([IO.Path]::GetTempPath()) "pq-graphile-$PID-$(Get-Random)")).FullName
            Set-Content (Join-Path $graphile 'package.json') '{ "private": true }'
            Copy-Item (Join-Path $Root 'bench/graphile/graphile-bench.mjs') $graphile
            & { $PSNativeCommandUseErrorActionPreference = $false
                npm install --prefix $graphile --no-audit --no-fund --no-package-lock --loglevel error "graphile-worker@$graphileWorkerVersion" | Out-Host }
            if ($LASTEXITCODE -ne 0) { $missing = "npm install graphile-worker@$graphileWorkerVersion failed (exit code $LASTEXITCODE)" }
            else { Write-Host "graphile-worker $graphileWorkerVersion installed in $graphile (node $(node --version))." }
        }
        if ($missing) { Write-Host "graphile-worker cases skipped: $missing."; $arguments += '--graphile-missing', $missing }
        else { $arguments += '--graphile', $graphile }

        dotnet run --project $project -c $Configuration --no-build -- @arguments
    }
    finally {
        Stop-TestMariaDb $mariadb; Stop-TestPostgres $cluster
        if ($graphile) { Remove-Item $graphile -Recurse -Force -ErrorAction SilentlyContinue }
    }
}

Push-Location $Root   # `dotnet pwsh` finds the local tool manifest from the repository root
try {
    switch ($Task) {
        'build' { Invoke-Build }
        'package' { Invoke-Package }
        'test' { Invoke-Test }
        'demo' {
            Invoke-Build
            dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $Root 'build/demo.ps1') -ModulePath $ModuleDir
        }
        'bench' { Invoke-Bench -CountGiven $PSBoundParameters.ContainsKey('Count') }
        'clean' { if (Test-Path $Out) { Remove-Item $Out -Recurse -Force }; Write-Host "Removed $Out" }
    }
}
finally {
    Pop-Location
}
