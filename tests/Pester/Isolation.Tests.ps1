# The module's database drivers live in their own AssemblyLoadContext, so a session that already loaded
# other versions of Dapper or Microsoft.Data.SqlClient (the SqlServer and dbatools modules do) can still
# import and use it, and the reverse. Each case runs in a fresh pwsh: assemblies cannot be unloaded.

BeforeAll {
    $script:NuGet = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
    $script:OtherDapper = Join-Path $NuGet 'dapper/2.0.123/lib/net5.0/Dapper.dll'
    $rid = if ($IsWindows) { 'win' } else { 'unix' }
    $script:OtherSqlClient = Join-Path $NuGet "microsoft.data.sqlclient/5.2.2/runtimes/$rid/lib/net8.0/Microsoft.Data.SqlClient.dll"

    # Runs $body in a fresh pwsh with the other versions loaded before (-OthersFirst) or after the module.
    function Invoke-Session([switch] $OthersFirst) {
        $script = Join-Path $TestDrive "session-$([guid]::NewGuid().ToString('N')).ps1"
        Set-Content $script @'
param($ModulePath, $Dapper, $SqlClient, [int] $OthersFirst, $Db)
$ErrorActionPreference = 'Stop'
function Load-Others { Add-Type -Path $Dapper; Add-Type -Path $SqlClient }
if ($OthersFirst) { Load-Others }
Import-Module $ModulePath
if (-not $OthersFirst) { Load-Others }
# The other copies are usable by their owners in the same session...
$builder = [Microsoft.Data.SqlClient.SqlConnectionStringBuilder]::new('Server=x;Database=y')
# ...and PerfectQueue works with its own.
Connect-PQQueue "sqlite:///$Db"
Submit-PQTask k1 t @{ n = 1 }
Receive-PQTask | Complete-PQTask
$outcome = (Get-PQTask k1).Outcome.ToString()
$sqlError = try { Initialize-PQQueue -Queue ([PerfectQueue.Queue]::Open('sqlserver://u:p@127.0.0.1:1/db?connect%20timeout=2')); 'no error' } catch { $_.Exception.GetType().FullName }
$loaded = foreach ($name in 'Dapper', 'Microsoft.Data.SqlClient') {
    foreach ($a in [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq $name }) {
        [pscustomobject]@{ Name = $name; Context = [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($a).Name; Location = $a.Location }
    }
}
[pscustomobject]@{ Outcome = $outcome; SqlError = $sqlError; Builder = $builder.DataSource; Loaded = @($loaded) } | ConvertTo-Json -Depth 4 -Compress
'@
        $json = & dotnet (Join-Path $PSHOME 'pwsh.dll') -NoProfile -NonInteractive -File $script `
            $env:PQ_MODULE_PATH $OtherDapper $OtherSqlClient ([int]$OthersFirst.IsPresent) (Join-Path $TestDrive "q-$([guid]::NewGuid().ToString('N')).db") 2>&1
        if ($LASTEXITCODE -ne 0) { throw "The session failed: $json" }
        ($json | Select-Object -Last 1) | ConvertFrom-Json
    }
}

Describe 'Other versions of Dapper and Microsoft.Data.SqlClient in the same session' {
    It 'has the other versions to load (restored by build/PesterRestore)' {
        $OtherDapper | Should -Exist
        $OtherSqlClient | Should -Exist
    }

    It 'works when <When>' -ForEach @(
        @{ When = 'they were loaded before Import-Module'; OthersFirst = $true }
        @{ When = 'they are loaded after Import-Module'; OthersFirst = $false }
    ) {
        $r = Invoke-Session -OthersFirst:$OthersFirst
        $r.Outcome | Should -Be 'Succeeded'
        $r.Builder | Should -Be 'x'
        # The engine used its own SqlClient (a real network error, not a type clash or the platform stub).
        $r.SqlError | Should -Be 'Microsoft.Data.SqlClient.SqlException'
        foreach ($name in 'Dapper', 'Microsoft.Data.SqlClient') {
            $copies = @($r.Loaded | Where-Object Name -EQ $name)
            $copies.Count | Should -Be 2 -Because "the session's $name and the module's both load"
            ($copies | Where-Object Context -EQ 'PerfectQueue').Location | Should -BeLike (Join-Path $env:PQ_MODULE_PATH 'lib*')
            ($copies | Where-Object Context -NE 'PerfectQueue').Location | Should -BeLike "$NuGet*"
        }
    }
}
