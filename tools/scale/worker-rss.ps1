# worker-rss.ps1 -Url <queue url> [-Tasks 200000] [-Every 10000] [-Processors 4]
# Fills a fresh queue with -Tasks no-op tasks, runs one worker on it in a child pwsh
# (Start-PQWorker -UntilEmpty, a no-op scriptblock handler), and samples the child's resident set size each time
# another -Every tasks have finished: the series should stay flat. Uses the assembled module (-Module).
param(
    [Parameter(Mandatory)] [string] $Url,
    [int] $Tasks = 200000,
    [int] $Every = 10000,
    [int] $Processors = 4,
    [string] $Table = 'scale_worker_rss',
    [string] $Module = (Join-Path $PSScriptRoot '../../out/PerfectQueue'))
$ErrorActionPreference = 'Stop'
$Module = (Resolve-Path $Module).Path
Import-Module $Module
$q = [PerfectQueue.Queue]::Open($Url, $Table)
$q.Initialize($true)
for ($i = 0; $i -lt $Tasks; $i += 5000) {
    $null = $q.SubmitMany([PerfectQueue.TaskSubmission[]]@(for ($j = $i; $j -lt [Math]::Min($Tasks, $i + 5000); $j++) { [PerfectQueue.TaskSubmission]::new("k$j", 't') }))
}
$exe = [Environment]::ProcessPath
# Under `dotnet pwsh` (the local tool) the process is dotnet running pwsh.dll: start that directly, so the child
# is the worker itself (its RSS, its exit), not a launcher.
$prefix = @(if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { [Reflection.Assembly]::GetEntryAssembly().Location })
$env:PQ_SCALE_URL = $Url # by environment, not on a command line others can read
$script = "Import-Module '$Module'; Connect-PQQueue -Url `$env:PQ_SCALE_URL -Table '$Table'; Start-PQWorker -Handler @{ t = { } } -Processors $Processors -UntilEmpty -LogPath ([IO.Path]::GetTempFileName())"
$child = Start-Process -PassThru -NoNewWindow -WorkingDirectory $PSScriptRoot $exe -ArgumentList ($prefix + @('-NoProfile', '-NonInteractive', '-Command', $script))
$clock = [Diagnostics.Stopwatch]::StartNew()
$next = $Every
$finished = 0
while (-not $child.HasExited) {
    Start-Sleep -Seconds 1 # sampling the child from outside: nothing to wait on but time
    $finished = $q.Summarize().CountOf('Finished')
    if ($finished -ge $next) {
        $child.Refresh()
        [pscustomobject]@{ Finished = $finished; RssMB = [Math]::Round($child.WorkingSet64 / 1MB, 1); Seconds = [int]$clock.Elapsed.TotalSeconds }
        $next += $Every
    }
}
$q.Dispose()
