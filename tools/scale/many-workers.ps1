# many-workers.ps1 -Url <queue url> [-Workers 16] [-Processors 4] [-Tasks 50000]
# Fills one fresh queue with -Tasks due no-op tasks, then starts -Workers pwsh processes on it, each with
# -Processors poll loops (threads) doing PollMulti(1) + Finish until the queue is empty, and reports the drain
# rate and the p50/p99 of the acquire calls (each PollMulti timed in the loop itself: the engine does not time
# acquires, so this includes the client's round trip). Uses the assembled module (-Module).
param(
    [Parameter(Mandatory)] [string] $Url,
    [int] $Workers = 16,
    [int] $Processors = 4,
    [int] $Tasks = 50000,
    [string] $Table = 'scale_many_workers',
    [string] $Module = (Join-Path $PSScriptRoot '../../out/PerfectQueue'))
$ErrorActionPreference = 'Stop'
$Module = (Resolve-Path $Module).Path
Import-Module $Module
$q = [PerfectQueue.Queue]::Open($Url, $Table)
$q.Initialize($true)
for ($i = 0; $i -lt $Tasks; $i += 5000) {
    $null = $q.SubmitMany([PerfectQueue.TaskSubmission[]]@(for ($j = $i; $j -lt [Math]::Min($Tasks, $i + 5000); $j++) { [PerfectQueue.TaskSubmission]::new("k$j", 't') }))
}
$q.Dispose()
$out = Join-Path ([IO.Path]::GetTempPath()) "pq-many-workers-$PID"
$null = New-Item -ItemType Directory -Force $out
# One worker process: -Processors poll loops (runspaces), each its own Queue; writes its acquire times (ms) and count.
$worker = Join-Path $out 'worker.ps1'
Set-Content $worker @'
param($Module, $Table, $Processors, $File, $StartTicks)
$Url = $env:PQ_SCALE_URL
Import-Module $Module
$start = [DateTime]::new([long]$StartTicks, 'Utc')
while ([DateTime]::UtcNow -lt $start) { Start-Sleep -Milliseconds 5 } # every process starts together
$results = 1..$Processors | ForEach-Object -ThrottleLimit $Processors -Parallel {
    Import-Module $using:Module
    $queue = [PerfectQueue.Queue]::Open($using:Url, $using:Table)
    $times = [Collections.Generic.List[double]]::new(); $done = 0; $empty = 0
    $sw = [Diagnostics.Stopwatch]::new()
    while ($empty -lt 3) {
        $sw.Restart(); $got = $queue.PollMulti(1); $sw.Stop()
        $times.Add($sw.Elapsed.TotalMilliseconds)
        if ($got.Count -eq 0) { $empty++; continue }
        $empty = 0
        foreach ($t in $got) { $t.Finish(); $done++ }
    }
    $queue.Dispose()
    [pscustomobject]@{ Done = $done; Times = $times.ToArray() }
}
[pscustomobject]@{ Done = ($results | Measure-Object Done -Sum).Sum; Times = [double[]]@($results.Times); End = [DateTime]::UtcNow } | Export-Clixml $File
'@
$start = [DateTime]::UtcNow.AddSeconds(5 + $Workers)
# The same pwsh as this one; the URL goes by environment, not command line.
$exe = [Environment]::ProcessPath
# Under `dotnet pwsh` (the local tool) the process is dotnet running pwsh.dll: start that directly, so the child
# is the worker itself (its RSS, its exit), not a launcher.
$prefix = @(if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { [Reflection.Assembly]::GetEntryAssembly().Location })
$env:PQ_SCALE_URL = $Url
$procs = foreach ($w in 1..$Workers) {
    $file = Join-Path $out "w$w.xml"
    Start-Process -PassThru -NoNewWindow -WorkingDirectory $PSScriptRoot $exe -ArgumentList ($prefix + @("-NoProfile", "-NonInteractive", "-File", $worker, $Module, $Table, $Processors, $file, $start.Ticks))
}
$procs | Wait-Process
$results = foreach ($w in 1..$Workers) { Import-Clixml (Join-Path $out "w$w.xml") }
Remove-Item -Recurse $out
$done = ($results | Measure-Object Done -Sum).Sum
$seconds = (($results | Measure-Object End -Maximum).Maximum - $start).TotalSeconds
$times = [double[]]@($results.Times | Sort-Object)
function Percentile([double[]] $sorted, [double] $p) { $sorted[[Math]::Min($sorted.Count - 1, [int][Math]::Floor($p * $sorted.Count))] }
[pscustomobject]@{
    Workers = $Workers; Processors = $Processors; Tasks = $done; Seconds = [Math]::Round($seconds, 1)
    Rate = [int]($done / $seconds); Acquires = $times.Count
    AcquireP50Ms = [Math]::Round((Percentile $times 0.50), 2); AcquireP99Ms = [Math]::Round((Percentile $times 0.99), 2)
}
