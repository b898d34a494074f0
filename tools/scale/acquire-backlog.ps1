# acquire-backlog.ps1 -Url <queue url> -Backlog N -Shape None|Users|OneLimited|ManyLimited [-Delayed 0.1] [-Measure 2000]
# Fills a fresh table with N due tasks of one shape (plus, with -Delayed, that fraction of N more tasks due in a
# day), then times a PollMulti(4) + Finish loop over the first -Measure tasks and prints the rate. Compare
# -Backlog 10000 with -Backlog 1000000 (docs/performance.md). Shapes: None, no user; Users, 1,000 users without
# a limit; OneLimited, one user with max_running 4; ManyLimited, 1,000 users with max_running 2 each.
# -Fill only fills, -Drain only drains (run ANALYZE in between); neither: both.
# -Module: the assembled module folder (default out/PerfectQueue beside this script's repository).
param(
    [Parameter(Mandatory)] [string] $Url,
    [Parameter(Mandatory)] [int] $Backlog,
    [ValidateSet('None', 'Users', 'OneLimited', 'ManyLimited')] [string] $Shape = 'None',
    [double] $Delayed = 0,
    [int] $Measure = 2000,
    [string] $Table,
    [string] $Module = (Join-Path $PSScriptRoot '../../out/PerfectQueue'),
    [switch] $Fill,
    [switch] $Drain)
$ErrorActionPreference = 'Stop'
Import-Module $Module
if (-not $Table) { $Table = "scale_$($Shape.ToLowerInvariant())_$Backlog" + $(if ($Delayed) { 'd' } else { '' }) }
$q = [PerfectQueue.Queue]::Open($Url, $Table)
$filling = $Fill -or -not $Drain
if ($filling) { $q.Initialize($true) } # a fresh table: drops an old one of this name
$options = switch ($Shape) {
    'None' { , @($null) }
    'Users' { , @(for ($u = 0; $u -lt 1000; $u++) { [PerfectQueue.SubmitOptions]@{ User = "u$u" } }) }
    'OneLimited' { , @([PerfectQueue.SubmitOptions]@{ User = 'u'; MaxRunning = 4 }) }
    'ManyLimited' { , @(for ($u = 0; $u -lt 1000; $u++) { [PerfectQueue.SubmitOptions]@{ User = "u$u"; MaxRunning = 2 } }) }
}
$later = @(foreach ($o in $options) { [PerfectQueue.SubmitOptions]@{ User = $o.User; MaxRunning = $o.MaxRunning; Delay = [TimeSpan]::FromDays(1) } })
$delayedCount = [int]($Backlog * $Delayed); $fillSeconds = 0
if ($filling) {
$fillClock = [Diagnostics.Stopwatch]::StartNew()
$total = $Backlog + $delayedCount
$batch = 5000
$list = [Collections.Generic.List[PerfectQueue.TaskSubmission]]::new($batch)
for ($i = 0; $i -lt $total; $i += $batch) {
    $list.Clear()
    $end = [Math]::Min($total, $i + $batch)
    for ($j = $i; $j -lt $end; $j++) {
        # Delayed tasks are interleaved with due ones (every k-th submission), so neither sits in one block.
        $isLater = $delayedCount -gt 0 -and ($j % [Math]::Max(1, [int]($total / $delayedCount))) -eq 0
        $set = if ($isLater) { $later } else { $options }
        $list.Add([PerfectQueue.TaskSubmission]::new("k$j", 't', $null, $set[$j % $set.Count]))
    }
    $null = $q.SubmitMany($list)
}
$fillSeconds = $fillClock.Elapsed.TotalSeconds
if ($Fill -and -not $Drain) { [pscustomobject]@{ Table = $Table; Shape = $Shape; Backlog = $Backlog; Delayed = $delayedCount; FillSeconds = [Math]::Round($fillSeconds, 1) }; $q.Dispose(); return }
}
# Between -Fill and -Drain, run ANALYZE on the table (autovacuum would soon after such a fill; plans depend on it).
$sw = [Diagnostics.Stopwatch]::StartNew(); $n = 0; $polls = 0
while ($n -lt $Measure) {
    $got = $q.PollMulti(4); $polls++
    if ($got.Count -eq 0) { throw "no task due after $n" }
    foreach ($x in $got) { $x.Finish() }
    $n += $got.Count
}
$rate = [int]($n / $sw.Elapsed.TotalSeconds)
"$Table shape=$Shape backlog=$Backlog delayed=$delayedCount tasks=$n polls=$polls rate=$rate/s"
$q.Dispose()
