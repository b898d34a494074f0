<#
.SYNOPSIS
    The PerfectQueue demo: submits a batch of tasks to the embedded default queue, shows the table,
    cancels one, processes the rest as a worker would, and shows the counts.
    Run it as `dotnet tool restore && dotnet pwsh ./build.ps1 demo`.
.DESCRIPTION
    Uses the embedded SQLite database in the user's local data folder (created on first use), in a
    table of its own ('perfectqueue_demo') so it never touches tasks of the default table. Until
    Start-PQWorker exists, the processing loop uses Receive-PQTask and Complete-PQTask.
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
    [pscustomobject]@{ Key = "rotate-keys-$run";   Type = 'rotate';  Delay = 1; Data = @{ vault = 'prod' } }
)
$jobs | Submit-PQTask
[string[]] $keys = $jobs.Key
Submit-PQTask -Key $keys[0] -Type backup -ErrorAction SilentlyContinue -ErrorVariable duplicate
Write-Host "Submitting $($keys[0]) again is refused: $($duplicate[0].FullyQualifiedErrorId.Split(',')[0]): $($duplicate[0].Exception.Message)`n"
Write-Host '== Submitted (rotate-keys runs 1 s from now; team-a may run 1 task at a time)'
Get-PQTask -Key $keys | Format-Table | Out-String -Width 200 | Write-Host

# 2. Cancel one before any worker takes it: it is finished as Cancelled and never handed out.
Request-PQCancel -Key "cleanup-logs-$run" -Verbose 4>&1 | Write-Host

# 3. Process everything as a worker would: receive a batch, run each, complete it (or retry on error).
$handlers = @{
    backup  = { param($task) "dumped $($task.Data.db)" }
    report  = { param($task) if ($task.Data['fail_once'] -and $task.Attempt -eq 1) { throw 'report server busy' }; 'rendered' }
    cleanup = { param($task) "removed old files under $($task.Data.path)" }
    rotate  = { param($task) "rotated keys in $($task.Data.vault)" }
}
$deadline = [DateTime]::UtcNow.AddSeconds(60)
while (Get-PQTask -Key $keys -Status Scheduled, Waiting, Running, CancelRequested) {
    if ([DateTime]::UtcNow -gt $deadline) { throw 'The demo did not finish its tasks within 60 s.' }
    $batch = @(Receive-PQTask -Count 4 -AliveTime 60)
    if ($batch.Count -eq 0) { Start-Sleep -Milliseconds 200; continue }   # this little worker's poll interval
    foreach ($task in $batch) {
        try {
            $result = & $handlers[$task.Type] $task
            $task | Complete-PQTask -Message "$result"
            Write-Host ("  {0,-34} attempt {1}  ok     {2}" -f $task.Key, $task.Attempt, $result)
        }
        catch {
            $null = $task.Retry($_.Exception.Message, [TimeSpan]::FromMilliseconds(300))
            Write-Host ("  {0,-34} attempt {1}  retry  {2}" -f $task.Key, $task.Attempt, $_.Exception.Message)
        }
    }
}
Write-Host "`n== Finished"
Get-PQTask -Key $keys | Format-Table Key, Type, User, Status, Outcome, Attempts, Message | Out-String -Width 200 | Write-Host

# 4. The counts.
Write-Host '== Measure-PQQueue'
Measure-PQQueue | Out-String | Write-Host
$finished = Get-PQTask -Key $keys
$succeeded = @($finished | Where-Object Outcome -EQ 'Succeeded').Count
$cancelled = @($finished | Where-Object Outcome -EQ 'Cancelled').Count
Disconnect-PQQueue
if ($succeeded -ne $jobs.Count - 1 -or $cancelled -ne 1) { throw "Expected $($jobs.Count - 1) succeeded and 1 cancelled task." }
Write-Host "Demo done: $succeeded tasks succeeded, 1 cancelled. Finished tasks stay listed for retention_time (300 s), then are cleaned up."
