# idle-statements.ps1 -Url <postgresql url of a cluster with pg_stat_statements> [-Seconds 10] [-Workers 1]
# Starts -Workers idle workers (Start-PQWorker, empty queue, no-op handler) in child pwsh processes, lets them
# settle, resets pg_stat_statements, waits -Seconds and lists the statements the database ran meanwhile (calls
# per statement): an idle worker should cost one acquire per poll interval. Needs psql on PATH and the extension
# (shared_preload_libraries = pg_stat_statements; CREATE EXTENSION pg_stat_statements).
param(
    [Parameter(Mandatory)] [string] $Url,
    [int] $Seconds = 10,
    [int] $Workers = 1,
    [string] $Table = 'scale_idle',
    [string] $Module = (Join-Path $PSScriptRoot '../../out/PerfectQueue'))
$ErrorActionPreference = 'Stop'
$Module = (Resolve-Path $Module).Path
Import-Module $Module
$q = [PerfectQueue.Queue]::Open($Url, $Table)
$q.Initialize($true)
$q.Dispose()
$exe = [Environment]::ProcessPath
# Under `dotnet pwsh` (the local tool) the process is dotnet running pwsh.dll: start that directly, so the child
# is the worker itself (its RSS, its exit), not a launcher.
$prefix = @(if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { [Reflection.Assembly]::GetEntryAssembly().Location })
$env:PQ_SCALE_URL = $Url
$script = "Import-Module '$Module'; Connect-PQQueue -Url `$env:PQ_SCALE_URL -Table '$Table'; Start-PQWorker -Handler @{ t = { } } -NoSchedules -LogPath ([IO.Path]::GetTempFileName())"
$children = foreach ($w in 1..$Workers) { Start-Process -PassThru -NoNewWindow -WorkingDirectory $PSScriptRoot $exe -ArgumentList ($prefix + @('-NoProfile', '-NonInteractive', '-Command', $script)) }
try {
    Start-Sleep -Seconds 15 # start-up: module load, schema check, session registration
    $env:PGCONNECT_TIMEOUT = 10
    psql -q -X $Url -c 'SELECT pg_stat_statements_reset()' | Out-Null
    Start-Sleep -Seconds $Seconds
    psql -X $Url -c "SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC"
}
finally {
    foreach ($c in $children) { if (-not $c.HasExited) { $c.Kill($true) } }
}
