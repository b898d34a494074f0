<#
.SYNOPSIS
    The PerfectQueue demo: submits tasks to the embedded default queue, processes them as a worker
    would, and shows what happened. Run it as `dotnet tool restore && dotnet pwsh ./build.ps1 demo`.
.DESCRIPTION
    Uses the embedded SQLite database in the user's local data folder (created on first use), in a
    table of its own ('perfectqueue_demo') so it never touches tasks of the default table.
    Until the cmdlets and the worker exist, it drives the .NET API from PowerShell.
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

$config = [PerfectQueue.QueueConfig]::new()          # no url: the embedded default
$config.Table = 'perfectqueue_demo'
$config.RetryWait = [TimeSpan]::FromMilliseconds(300) # short, so the demo shows a retry without waiting long
$queue = [PerfectQueue.Queue]::Open($config)
Write-Host "Queue: $($queue.Description)`n"

function Show-Tasks([string] $title, [string[]] $keys) {
    Write-Host "== $title"
    $filter = [PerfectQueue.TaskFilter]@{ Keys = $keys }
    $queue.List($filter) | Format-Table -AutoSize Key, Type, User, Status, Outcome, Attempts,
        @{ n = 'CreatedAt'; e = { $_.CreatedAt.LocalDateTime.ToString('HH:mm:ss.fff') } },
        @{ n = 'Timeout'; e = { if ($_.Timeout) { $_.Timeout.LocalDateTime.ToString('HH:mm:ss.fff') } } },
        @{ n = 'Data'; e = { $_.Data.ToJsonString() } }, Message | Out-String -Width 250 | Write-Host
}

# 1. Submit a batch. Keys are unique per run: a key is refused while its task exists.
$run = Get-Date -Format 'yyyyMMdd-HHmmss-fff'
$jobs = @(
    @{ Key = "backup-sales-$run";   Type = 'backup';  Data = @{ db = 'sales' };   User = 'team-a'; MaxRunning = 1 }
    @{ Key = "backup-hr-$run";      Type = 'backup';  Data = @{ db = 'hr' };      User = 'team-a'; MaxRunning = 1 }
    @{ Key = "report-daily-$run";   Type = 'report';  Data = @{ day = (Get-Date -Format 'yyyy-MM-dd') }; User = 'team-b' }
    @{ Key = "report-weekly-$run";  Type = 'report';  Data = @{ week = 48; fail_once = $true }; User = 'team-b' }
    @{ Key = "cleanup-tmp-$run";    Type = 'cleanup'; Data = @{ path = '/tmp/app'; older_than_days = 7 } }
    @{ Key = "cleanup-logs-$run";   Type = 'cleanup'; Data = @{ path = '/var/log/app' } }
    @{ Key = "rotate-keys-$run";    Type = 'rotate';  Data = @{ vault = 'prod' }; Delay = [TimeSpan]::FromMilliseconds(800) }
)
foreach ($job in $jobs) {
    $options = [PerfectQueue.SubmitOptions]@{
        User = $job['User']; MaxRunning = $job['MaxRunning']; Delay = $job['Delay']
        Compression = if ($job.Type -eq 'report') { [PerfectQueue.DataCompression]::Gzip } else { $null }
    }
    $null = $queue.Submit($job.Key, $job.Type, $job.Data, $options)
}
[string[]] $keys = $jobs.Key
try { $null = $queue.Submit($keys[0], 'backup', @{ db = 'sales' }) }
catch [PerfectQueue.AlreadyExistsException] { Write-Host "Submitting $($keys[0]) again is refused: $($_.Exception.Message)`n" }
Show-Tasks 'Submitted (rotate-keys is scheduled 0.8 s ahead; team-a may run 1 task at a time)' $keys

# 2. Cancel one before any worker takes it: it is finished as Cancelled and never handed out.
$null = $queue["cleanup-logs-$run"].CancelRequest()
Write-Host "Cancelled cleanup-logs-$run before it started.`n"

# 3. Process everything as a worker would: acquire a batch, run each, finish (or retry on error).
$handlers = @{
    backup  = { param($task) "dumped $($task.Data['db'])" }
    report  = { param($task) if ($task.Data['fail_once'] -and $task.Attempt -eq 1) { throw 'report server busy' }; "rendered" }
    cleanup = { param($task) "removed old files under $($task.Data['path'])" }
    rotate  = { param($task) "rotated keys in $($task.Data['vault'])" }
}
$live = [PerfectQueue.TaskFilter]@{ Keys = $keys; Statuses = [PerfectQueue.TaskState[]]('Scheduled', 'Waiting', 'Running', 'CancelRequested') }
$deadline = [DateTime]::UtcNow.AddSeconds(60)
while ($queue.List($live).Count -gt 0) {
    if ([DateTime]::UtcNow -gt $deadline) { throw 'The demo did not finish its tasks within 60 s.' }
    $batch = $queue.PollMulti(4)
    if ($batch.Count -eq 0) { Start-Sleep -Milliseconds 100; continue }   # the poll interval of this little worker
    foreach ($task in $batch) {
        try {
            $result = & $handlers[$task.Type] $task
            $task.Finish("$result")
            Write-Host ("  {0,-34} attempt {1}  ok     {2}" -f $task.Key, $task.Attempt, $result)
        }
        catch {
            $null = $task.Retry($_.Exception.Message)
            Write-Host ("  {0,-34} attempt {1}  retry  {2}" -f $task.Key, $task.Attempt, $_.Exception.Message)
        }
    }
}
Write-Host ''
Show-Tasks 'Finished' $keys

# 4. Sum up.
$finished = $queue.List([PerfectQueue.TaskFilter]@{ Keys = $keys })
$finished | Group-Object Outcome | Sort-Object Name | ForEach-Object { Write-Host ("{0,-10} {1}" -f $_.Name, $_.Count) }
$succeeded = @($finished | Where-Object Outcome -EQ 'Succeeded').Count
$cancelled = @($finished | Where-Object Outcome -EQ 'Cancelled').Count
$queue.Dispose()
if ($succeeded -ne $jobs.Count - 1 -or $cancelled -ne 1) { throw "Expected $($jobs.Count - 1) succeeded and 1 cancelled task." }
Write-Host "`nDemo done: $succeeded tasks succeeded, $cancelled cancelled. Finished tasks stay listed for retention_time (300 s), then are cleaned up."
