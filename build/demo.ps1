<#
.SYNOPSIS
    The PerfectQueue demo: submits a batch of tasks to the embedded default queue, shows the table,
    cancels one, processes the rest as a worker would, and shows the counts.
    Run it as `dotnet tool restore && dotnet pwsh ./build.ps1 demo`.
.DESCRIPTION
    Uses the embedded SQLite database in the user's local data folder (created on first use), in a
    table of its own ('perfectqueue_demo') so it never touches tasks of the default table;
    the worker runs the handlers, then the table and the worker's summary are shown.
#>
param(
    [string] $ModulePath = $env:PQ_MODULE_PATH
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
if (-not $ModulePath) { throw 'Pass -ModulePath or set PQ_MODULE_PATH to the assembled module folder (out/PerfectQueue).' }
if ($env:CI -or [Console]::IsOutputRedirected) { $PSStyle.OutputRendering = 'PlainText' }
$module = Import-Module $ModulePath -PassThru
Write-Host "PerfectQueue $($module.Version) from $($module.ModuleBase)"

# The embedded default database, in a demo table of its own.
$embedded = [PerfectQueue.QueueConfig]::EmbeddedDefaultPath
$queue = Connect-PQQueue "sqlite:///$embedded" -Table perfectqueue_demo -PassThru
Write-Host "Queue: $($queue.Description)`n"

# 1. Submit a batch from objects, as from Import-Csv; keys are unique per run.
$run = Get-Date -Format 'yyyyMMdd-HHmmss-fff'
$jobs = @(
    [pscustomobject]@{ Key = "backup-sales-$run";  Type = 'backup';  User = 'team-a'; MaxRunning = 1; Data = @{ db = 'sales' } }
    [pscustomobject]@{ Key = "backup-hr-$run";     Type = 'backup';  User = 'team-a'; MaxRunning = 1; Data = @{ db = 'hr' } }
    [pscustomobject]@{ Key = "report-daily-$run";  Type = 'report';  User = 'team-b'; Data = @{ day = (Get-Date -Format 'yyyy-MM-dd') } }
    [pscustomobject]@{ Key = "report-weekly-$run"; Type = 'report';  User = 'team-b'; Data = @{ week = 48; fail_once = $true } }
    [pscustomobject]@{ Key = "cleanup-tmp-$run";   Type = 'cleanup'; Data = @{ path = '/tmp/app'; older_than_days = 7 } }
    [pscustomobject]@{ Key = "cleanup-logs-$run";  Type = 'cleanup'; Data = @{ path = '/var/log/app' } }
    [pscustomobject]@{ Key = "rotate-keys-$run";   Type = 'rotate';  Data = @{ vault = 'prod' } }
    [pscustomobject]@{ Key = "archive-$run";       Type = 'archive'; Delay = 3600; Data = @{ bucket = 'cold' } }
)
$jobs | Submit-PQTask
[string[]] $keys = $jobs.Key
Submit-PQTask -Key $keys[0] -Type backup -ErrorAction SilentlyContinue -ErrorVariable duplicate
Write-Host "Submitting $($keys[0]) again is refused: $($duplicate[0].FullyQualifiedErrorId.Split(',')[0]): $($duplicate[0].Exception.Message)`n"
Write-Host '== Submitted (archive runs an hour from now; team-a may run 1 task at a time)'
Get-PQTask -Key $keys | Format-Table | Out-String -Width 200 | Write-Host

# 2. Cancel one before any worker takes it: it is finished as Cancelled and never handed out.
Request-PQCancel -Key "cleanup-logs-$run" -Verbose 4>&1 | Write-Host

# 3. Process what is due with a worker: two processors (runspaces), until nothing is due.
Write-Host '== Start-PQWorker -Processors 2 -UntilEmpty'
$summary = Start-PQWorker -Processors 2 -UntilEmpty -PollInterval 0.2 -RetryWait 0 -Handler @{
    backup   = { param($Task) "dumped $($Task.Data.db)" }
    report   = { param($Task) if ($Task.Data['fail_once'] -and $Task.Attempt -eq 1) { throw 'report server busy' }; 'rendered' }
    '^clean' = { param($Task) "removed old files under $($Task.Data.path)" }
    rotate   = { param($Task) "rotated keys in $($Task.Data.vault)" }
}
Write-Host "`n== The worker's summary"
$summary | Format-List | Out-String | Write-Host

# 4. The archive task is scheduled an hour ahead; the demo does not wait for it.
Request-PQCancel -Key "archive-$run"
Write-Host "`n== Finished"
Get-PQTask -Key $keys | Format-Table Key, Type, User, Status, Outcome, Attempts, Message | Out-String -Width 200 | Write-Host

# 5. A schedule instead of a cron entry: every 2 seconds; the worker fires it and runs the fires.
Write-Host "== Register-PQSchedule demo-tick-$run '*/2 * * * * *', then a worker for two fires"
Register-PQSchedule -Name "demo-tick-$run" -Cron '*/2 * * * * *' -Type tick -Data @{ run = $run } -Overlap Allow -PassThru | Out-String -Width 200 | Write-Host
$ticks = Start-PQWorker -MaxTasks 2 -PollInterval 0.2 -Handler @{ tick = { param($Task) "tick of run $($Task.Data.run)" } }
Get-PQSchedule -Name "demo-tick-$run" | Format-List Name, Cron, NextFireAt, LastFireKey, LastFireResult | Out-String | Write-Host
Unregister-PQSchedule -Name "demo-tick-$run"
[string[]] $fired = @(Get-PQTask -Type tick | Where-Object Key -Like "demo-tick-$run@*" | ForEach-Object Key)
if ($ticks.Succeeded -ne 2 -or $fired.Count -lt 2) { throw "Expected the schedule's first two fires to run, got $($ticks.Succeeded) ($($fired -join ', '))." }

# 6. The counts.
Write-Host '== Measure-PQQueue'
Measure-PQQueue | Out-String | Write-Host
$finished = Get-PQTask -Key $keys
$succeeded = @($finished | Where-Object Outcome -EQ 'Succeeded').Count
$cancelled = @($finished | Where-Object Outcome -EQ 'Cancelled').Count
Disconnect-PQQueue
if ($succeeded -ne $jobs.Count - 2 -or $cancelled -ne 2) { throw "Expected $($jobs.Count - 2) succeeded and 2 cancelled tasks." }
Write-Host "To see them in a browser: Connect-PQQueue 'sqlite:///$embedded' -Table perfectqueue_demo; Start-PQDashboard  (then open http://127.0.0.1:7380/)"
Write-Host "Demo done: $succeeded tasks succeeded, $cancelled cancelled. Finished tasks stay listed (and their keys taken) for retention_time ($($queue.Config.RetentionTime)), then are cleaned up."
