# processor_type: process: each processor a child pwsh (docs/worker.md, "Process processors"). Real child
# processes and real signals (Linux); drains on SQLite and on PostgreSQL (PQ_TEST_POSTGRES).
# Handlers find the test's folder in $env:PQ_TEST_DIR, which child processes inherit.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')
    $script:Fast = @{ ProcessorType = 'Process'; GracefulKillLimit = 1; PollInterval = 0.1; HeartbeatInterval = 0.2; ChildHeartbeatInterval = 0.2; ChildKillInterval = 0.5 }

    function New-BackendQueue([string] $Backend) {
        if ($Backend -eq 'SQLite') { return Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "p-$([guid]::NewGuid().ToString('N')).db")" -PassThru }
        if (-not $env:PQ_TEST_POSTGRES) {
            if ($env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI.' }
            return $null
        }
        $q = Connect-PQQueue $env:PQ_TEST_POSTGRES -Table ('ch_' + [guid]::NewGuid().ToString('N').Substring(0, 12)) -PassThru
        Initialize-PQQueue -Queue $q
        $q
    }

    # A fresh folder for a test's marker files and log, named to its handlers by $env:PQ_TEST_DIR.
    function New-TestDir {
        $dir = Join-Path $TestDrive "d-$([guid]::NewGuid().ToString('N'))"
        $null = New-Item -ItemType Directory $dir
        $env:PQ_TEST_DIR = $dir
        $dir
    }

    function Get-LogText([string] $Path) { if (Test-Path $Path) { Get-Content $Path -Raw } else { '' } }

    # The time of the first log line matching a pattern (the log's local timestamps).
    function Get-LogTime([string] $Path, [string] $Pattern) {
        $line = @(Get-Content $Path | Where-Object { $_ -match $Pattern })[0]
        if (-not $line) { throw "no log line matches '$Pattern'" }
        [datetime]::ParseExact($line.Substring(0, 23), 'yyyy-MM-dd HH:mm:ss.fff', [cultureinfo]::InvariantCulture)
    }

    function Stop-BackgroundWorker($Worker) {
        if (-not $Worker.Handle.IsCompleted) { $null = $Worker.PowerShell.BeginStop($null, $null) }
        Wait-Until { $Worker.Handle.IsCompleted } 'the worker to stop' 180
        $Worker.PowerShell.Dispose()
    }

    # The handlers' pids, from the marker lines "<key> <attempt> <pid>".
    function Get-RunPids([string] $Marker) { @(Get-Runs $Marker | ForEach-Object { [int]($_ -split ' ')[2] }) }
}

AfterAll { Remove-Item Env:PQ_TEST_DIR -ErrorAction Ignore }

Describe 'Process processors on <_>' -ForEach 'SQLite', 'PostgreSQL' {
    BeforeAll { $script:Backend = $_ }
    BeforeEach {
        $script:Queue = New-BackendQueue $Backend
        if (-not $Queue) { Set-ItResult -Skipped -Because 'no PostgreSQL here (set PQ_TEST_POSTGRES; build.ps1 test starts one when installed)' }
        $script:Dir = New-TestDir
    }

    It 'drains on several child processes: nothing lost, nothing finished twice, handlers not in the worker' {
        if (-not $Queue) { return }
        1..12 | ForEach-Object { Submit-PQTask "k$_" work @{ n = $_ } -Queue $Queue }
        $summary = Start-PQWorker @Fast -Queue $Queue -Processors 2 -UntilEmpty -Handler @{
            # A marker file per child: two processes appending to one file can overwrite each other's line (.NET's
            # append seeks to the end, it does not open with O_APPEND).
            work = { param($Task) Add-Content (Join-Path $env:PQ_TEST_DIR "runs-$PID") "$($Task.Key) $($Task.Attempt) $PID"; "n=$($Task.Data.n) in $PID" }
        } 6>$null
        $summary.Succeeded | Should -Be 12
        $summary.Processed | Should -Be 12
        $runs = @(Get-ChildItem $Dir -Filter 'runs-*' | ForEach-Object { Get-Runs $_.FullName })
        $runs.Count | Should -Be 12
        @($runs | ForEach-Object { ($_ -split ' ')[0] } | Sort-Object -Unique).Count | Should -Be 12   # each task ran once
        $pids = @($runs | ForEach-Object { [int]($_ -split ' ')[2] }) | Sort-Object -Unique
        $pids | Should -Not -Contain $PID
        @($pids).Count | Should -Be 2
        $tasks = Get-PQTask -Queue $Queue
        @($tasks | Where-Object Outcome -eq 'Succeeded').Count | Should -Be 12
        ($tasks | Where-Object Key -eq 'k3').Message | Should -BeLike 'n=3 in *'
    }

    It 'forwards $Task.UpdateData, Finish, Retry and Release from a child to the parent, and shows Data, Attempt and LastMessage' {
        if (-not $Queue) { return }
        Submit-PQTask fin finish -Queue $Queue
        Submit-PQTask ret retry @{ step = 1 } -Queue $Queue
        Submit-PQTask rel release @{ released = $false } -Queue $Queue
        $summary = Start-PQWorker @Fast -Queue $Queue -UntilEmpty -Handler @{
            finish = {
                param($Task)
                $Task.Finish('finished by the handler')
                try { $Task.Finish('twice') } catch [PerfectQueue.AlreadyFinishedException] { Add-Content (Join-Path $env:PQ_TEST_DIR 'errors') "AlreadyFinished: $($_.Exception.Message)" }
                "completed=$($Task.IsCompleted)"
            }
            retry = {
                param($Task)
                if ($Task.Attempt -eq 1) {
                    $Task.UpdateData(@{ step = 2 })
                    $null = $Task.Retry('first try', [timespan]::Zero)
                    return
                }
                "step $($Task.Data.step) attempt $($Task.Attempt) last '$($Task.LastMessage)'"
            }
            release = {
                param($Task)
                if (-not $Task.Data.released) { $Task.UpdateData(@{ released = $true }); $Task.Release(); return }
                "after release: attempt $($Task.Attempt)"
            }
        } 6>$null
        $summary.Failed | Should -Be 0
        (Get-PQTask fin -Queue $Queue).Message | Should -Be 'finished by the handler'
        Get-Runs (Join-Path $Dir 'errors') | Should -BeLike "AlreadyFinished: *fin*already finished it*"
        $ret = Get-PQTask ret -Queue $Queue
        $ret.Outcome | Should -Be 'Succeeded'
        $ret.Message | Should -Be "step 2 attempt 2 last 'first try'"
        $rel = Get-PQTask rel -Queue $Queue
        $rel.Outcome | Should -Be 'Succeeded'
        $rel.Message | Should -Be 'after release: attempt 1'   # a release does not count the attempt
    }

    It 'drains with processor_type: process from a YAML config file' {
        if (-not $Queue) { return }
        $url = if ($Backend -eq 'SQLite') { "sqlite:///$(Join-Path $Dir 'yaml.db')" } else { $env:PQ_TEST_POSTGRES }
        $table = 'ch_' + [guid]::NewGuid().ToString('N').Substring(0, 12)
        Set-Content (Join-Path $Dir 'pq.yml') @"
production:
  url: $url
  table: $table
  processor_type: process
  processors: 2
  poll_interval: 0.1
  task_heartbeat_interval: 0.2
  child_heartbeat_interval: 0.2
"@
        $q = Connect-PQQueue -ConfigPath (Join-Path $Dir 'pq.yml') -Environment production -PassThru
        Initialize-PQQueue -Queue $q
        1..6 | ForEach-Object { Submit-PQTask "y$_" work -Queue $q }
        $summary = Start-PQWorker -ConfigPath (Join-Path $Dir 'pq.yml') -Environment production -UntilEmpty -LogPath (Join-Path $Dir 'log') -Handler @{
            work = { "ran in $PID" }
        } 6>$null
        $summary.Succeeded | Should -Be 6
        (Get-PQTask -Queue $q).Message | Should -Not -Contain "ran in $PID"
        Get-LogText (Join-Path $Dir 'log') | Should -Match 'processor 2: child process \d+ started'
    }
}

Describe 'Process processors: compiled handlers' {
    BeforeAll {
        $script:Dll = Join-Path $TestDrive 'child-handlers.dll'
        $references = ([PerfectQueue.Application.Base].Assembly.Location), 'System.Text.Json', 'System.Text.RegularExpressions', 'System.Runtime', 'System.Threading', 'System.Collections'
        Add-Type -OutputAssembly $Dll -ReferencedAssemblies $references -TypeDefinition @'
using System;
using System.Threading;
using System.Threading.Tasks;
using PerfectQueue.Application;
namespace ChildCompiled
{
    public sealed class Resize : Base
    {
        public override void Run()
        {
            if (CurrentTask.Attempt == 1) { CurrentTask.UpdateData("{\"image\":\"dog.png\"}"); CurrentTask.Retry(TimeSpan.Zero); return; }
            Result = "resized " + (string)Data["image"] + " in " + Environment.ProcessId + " attempt " + CurrentTask.Attempt;
        }
    }
    public sealed class Broken : Base
    {
        public override Task RunAsync(CancellationToken cancellationToken) => throw new InvalidOperationException("disk full");
    }
    public sealed class WaitForCancel : Base
    {
        public override async Task RunAsync(CancellationToken cancellationToken) => await Task.Delay(Timeout.Infinite, cancellationToken);
    }
    public sealed class Routes : Dispatch
    {
        public Routes()
        {
            Route<Resize>("resize");
            Route<Broken>("broken");
            Route<WaitForCancel>("wait");
        }
    }
}
'@
    }
    BeforeEach { $script:Queue = New-BackendQueue SQLite; $script:Dir = New-TestDir }

    It 'runs compiled handlers in child processes: results, writes through CurrentTask, a throw retried, an unrouted type retried' {
        Submit-PQTask c1 resize @{ image = 'cat.png' } -Queue $Queue
        Submit-PQTask c2 broken -Queue $Queue
        Submit-PQTask c3 nobody-routes-this -Queue $Queue
        $summary = Start-PQWorker @Fast -Queue $Queue -UntilEmpty -AssemblyPath $Dll -Dispatch ChildCompiled.Routes -RetryWait 300 6>$null
        $summary.Succeeded | Should -Be 1
        $c1 = Get-PQTask c1 -Queue $Queue
        $c1.Message | Should -Match '^resized dog\.png in (\d+) attempt 2$'
        [int]($c1.Message -split ' ')[3] | Should -Not -Be $PID
        (Get-PQTask c2 -Queue $Queue).Message | Should -Match 'disk full'
        (Get-PQTask c3 -Queue $Queue).Message | Should -Match "No handler is routed for task type 'nobody-routes-this'"
    }

    It 'cancels a compiled handler in a child through its token' {
        Submit-PQTask waiter wait -Queue $Queue
        $worker = Start-BackgroundWorker $Queue (@{ AssemblyPath = $Dll; Dispatch = 'Routes'; UntilEmpty = $true } + $Fast)
        try {
            Wait-Until { (Get-PQTask waiter -Queue $Queue).Status -eq 'Running' } 'the task to start' 120
            Request-PQCancel waiter -Queue $Queue
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish' 180
            $worker.PowerShell.EndInvoke($worker.Handle).Cancelled | Should -Be 1
            (Get-PQTask waiter -Queue $Queue).Outcome | Should -Be 'Cancelled'
        }
        finally { Stop-BackgroundWorker $worker }
    }
}

Describe 'Process processors: stops, crashes, freezes' -Skip:$IsWindows {
    BeforeEach {
        $script:Queue = New-BackendQueue SQLite
        $script:Dir = New-TestDir
        $script:Log = Join-Path $Dir 'worker.log'
        $script:Marker = Join-Path $Dir 'runs'
    }

    It 'cancels a running task in a child: the handler sees IsCancellationRequested and the task ends Cancelled' {
        Submit-PQTask polite work -Queue $Queue
        $worker = Start-BackgroundWorker $Queue (@{ UntilEmpty = $true; LogPath = $Log; Handler = @{
            work = { param($Task) Add-Content (Join-Path $env:PQ_TEST_DIR 'runs') "$($Task.Key) $($Task.Attempt) $PID"; while (-not $Task.IsCancellationRequested) { Start-Sleep -Milliseconds 50 }; 'saw the cancel' }
        } } + $Fast)
        try {
            Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the task to start' 120
            Request-PQCancel polite -Queue $Queue
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish' 180
            $worker.PowerShell.EndInvoke($worker.Handle).Cancelled | Should -Be 1
            (Get-PQTask polite -Queue $Queue).Outcome | Should -Be 'Cancelled'
            Get-LogText $Log | Should -Not -Match 'SIGTERM|SIGKILL'
        }
        finally { Stop-BackgroundWorker $worker }
    }

    It 'stops a handler that obeys the stop message without signals, and keeps its child for the next task' {
        Submit-PQTask sleeper work -Queue $Queue
        Start-Sleep -Milliseconds 20
        Submit-PQTask after work -Queue $Queue   # waits for the one processor
        $worker = Start-BackgroundWorker $Queue (@{ UntilEmpty = $true; LogPath = $Log; CancelGracePeriod = 0; Handler = @{
            work = { param($Task) Add-Content (Join-Path $env:PQ_TEST_DIR 'runs') "$($Task.Key) $($Task.Attempt) $PID"; if ($Task.Key -eq 'sleeper') { Start-Sleep -Seconds 600 }; 'quick' }
        } } + ($Fast.Clone() | ForEach-Object { $_.ChildKillInterval = 5; $_ }))   # room for a busy machine before SIGTERM
        try {
            Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the task to start' 120
            Request-PQCancel sleeper -Queue $Queue
            Wait-Until { (Get-PQTask sleeper -Queue $Queue).Status -eq 'Finished' } 'the task to be cancelled' 120
            (Get-PQTask sleeper -Queue $Queue).Outcome | Should -Be 'Cancelled'
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish' 180
            $pids = Get-RunPids $Marker
            $pids.Count | Should -Be 2
            $pids[1] | Should -Be $pids[0]   # the same child ran the next task
            $text = Get-LogText $Log
            $text | Should -Match 'stop message sent to child process'
            $text | Should -Not -Match 'SIGTERM|SIGKILL'
        }
        finally { Stop-BackgroundWorker $worker }
    }

    It 'escalates a stop the handler ignores: stop message, SIGTERM at one and two kill intervals, SIGKILL at three (timed from the log)' {
        Submit-PQTask stubborn work -Queue $Queue
        $worker = Start-BackgroundWorker $Queue (@{ UntilEmpty = $true; LogPath = $Log; CancelGracePeriod = 0; Handler = @{
            work = { param($Task) Add-Content (Join-Path $env:PQ_TEST_DIR 'runs') "$($Task.Key) $($Task.Attempt) $PID"; [Threading.Thread]::Sleep(600000) }
        } } + ($Fast.Clone() | ForEach-Object { $_.ChildKillInterval = 1; $_ }))
        try {
            Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the task to start' 120
            Request-PQCancel stubborn -Queue $Queue
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish' 180
            $summary = $worker.PowerShell.EndInvoke($worker.Handle)
            $summary.Cancelled | Should -Be 1
            (Get-PQTask stubborn -Queue $Queue).Outcome | Should -Be 'Cancelled'
            $childPid = (Get-RunPids $Marker)[0]
            $text = Get-LogText $Log
            $sent = Get-LogTime $Log "stop message sent to child process $childPid"
            $terms = @(Get-Content $Log | Where-Object { $_ -match "SIGTERM sent to child process $childPid" })
            $terms.Count | Should -Be 2
            # The child itself saw both (its SIGTERM handler says so over the pipe): the signals were sent, not just logged.
            @(Get-Content $Log | Where-Object { $_ -match "child process $($childPid): SIGTERM received" }).Count | Should -Be 2
            $kill = Get-LogTime $Log "SIGKILL sent to child process $childPid"
            # The steps, by the log's clock and by the elapsed times the lines carry (tolerance for a busy machine).
            $first = Get-LogTime $Log "SIGTERM sent to child process $childPid"
            ($first - $sent).TotalSeconds | Should -BeGreaterOrEqual 0.9
            ($first - $sent).TotalSeconds | Should -BeLessThan 2.5
            ($kill - $sent).TotalSeconds | Should -BeGreaterOrEqual 2.9
            ($kill - $sent).TotalSeconds | Should -BeLessThan 5
            $elapsed = @([regex]::Matches($text, "child process $childPid for stubborn, ([0-9.]+) s after the stop message") | ForEach-Object { [double]$_.Groups[1].Value })
            $elapsed.Count | Should -Be 3
            $elapsed[0] | Should -BeGreaterOrEqual 1.0   # never early (the log's own clock may be a hair off, the lines are not)
            $elapsed[1] | Should -BeGreaterOrEqual 2.0
            $elapsed[2] | Should -BeGreaterOrEqual 3.0
            $elapsed[2] | Should -BeLessThan 4.5
            { Get-Process -Id $childPid -ErrorAction Stop } | Should -Throw
        }
        finally { Stop-BackgroundWorker $worker }
    }

    It 'retries the task of a child killed with SIGKILL mid-task with the exit reason, and goes on in a new child' {
        Submit-PQTask victim work -Queue $Queue
        $worker = Start-BackgroundWorker $Queue (@{ UntilEmpty = $true; LogPath = $Log; RetryWait = 0; Handler = @{
            work = { param($Task) Add-Content (Join-Path $env:PQ_TEST_DIR 'runs') "$($Task.Key) $($Task.Attempt) $PID"; if ($Task.Attempt -eq 1) { Start-Sleep -Seconds 600 }; 'survived' }
        } } + $Fast)
        try {
            Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the task to start' 120
            $victim = (Get-RunPids $Marker)[0]
            Get-LogText $Log | Should -Match "child process $victim started"
            kill -KILL $victim
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish' 180
            $task = Get-PQTask victim -Queue $Queue
            $task.Outcome | Should -Be 'Succeeded'
            $task.Attempts | Should -Be 2
            $pids = Get-RunPids $Marker
            $pids.Count | Should -Be 2
            $pids[1] | Should -Not -Be $victim
            Get-LogText $Log | Should -Match "retried: child process $victim died: killed by signal 9 \(SIGKILL\), as an out-of-memory kill does; exit code 137"
        }
        finally { Stop-BackgroundWorker $worker }
    }

    It 'retries the task of a handler that exits its child process, with the exit code in words' {
        Submit-PQTask quitter work -Queue $Queue
        $summary = Start-PQWorker @Fast -Queue $Queue -UntilEmpty -LogPath $Log -RetryWait 0 -Handler @{
            work = { param($Task) Add-Content (Join-Path $env:PQ_TEST_DIR 'runs') "$($Task.Key) $($Task.Attempt) $PID"; if ($Task.Attempt -eq 1) { [Environment]::Exit(3) }; "last: $($Task.LastMessage)" }
        } 6>$null
        $summary.Succeeded | Should -Be 1
        $summary.Retried | Should -Be 1
        $pids = Get-RunPids $Marker
        (Get-PQTask quitter -Queue $Queue).Message | Should -Be "last: child process $($pids[0]) died: exited with code 3"
        $pids[1] | Should -Not -Be $pids[0]
    }

    It 'rethrows a write the parent refused as the same exception type in the child (PreemptedException with its reason)' {
        Submit-PQTask taken work -Queue $Queue
        $worker = Start-BackgroundWorker $Queue (@{ UntilEmpty = $true; LogPath = $Log; Handler = @{
            work = {
                param($Task)
                Add-Content (Join-Path $env:PQ_TEST_DIR 'runs') "$($Task.Key) $($Task.Attempt) $PID"
                while (-not (Test-Path (Join-Path $env:PQ_TEST_DIR 'go'))) { Start-Sleep -Milliseconds 50 }
                try { $Task.Finish('mine') } catch [PerfectQueue.PreemptedException] { Add-Content (Join-Path $env:PQ_TEST_DIR 'errors') "$($_.Exception.GetType().Name) $($_.Exception.Reason)" }
            }
        } } + ($Fast.Clone() | ForEach-Object { $_.HeartbeatInterval = 30; $_.AliveTime = 60; $_ }))   # no heartbeat sees the force finish first: the parent's write does
        try {
            Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the task to start' 120
            Complete-PQTask -Key taken -Queue $Queue -Confirm:$false
            $null = New-Item (Join-Path $Dir 'go')
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish' 180
            Get-Runs (Join-Path $Dir 'errors') | Should -Be 'PreemptedException ForceFinished'
            (Get-PQTask taken -Queue $Queue).Outcome | Should -Be 'ForceFinished'
        }
        finally { Stop-BackgroundWorker $worker }
    }

    It 'detects a child frozen with SIGSTOP within child_heartbeat_limit, kills it and retries its task' {
        Submit-PQTask icy work -Queue $Queue
        $worker = Start-BackgroundWorker $Queue (@{ UntilEmpty = $true; LogPath = $Log; RetryWait = 0; ChildHeartbeatLimit = 3; Handler = @{
            work = { param($Task) Add-Content (Join-Path $env:PQ_TEST_DIR 'runs') "$($Task.Key) $($Task.Attempt) $PID"; if ($Task.Attempt -eq 1) { [Threading.Thread]::Sleep(600000) }; 'thawed' }
        } } + $Fast)
        try {
            Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the task to start' 120
            $victim = (Get-RunPids $Marker)[0]
            Start-Sleep -Milliseconds 700   # a handler blocked in Thread.Sleep still beats: no false freeze
            Get-LogText $Log | Should -Not -Match '\(frozen\)'
            $stoppedAt = Get-Date
            kill -STOP $victim
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish' 180
            $detected = Get-LogTime $Log "child process $victim sent no heartbeat for [0-9.]+ s \(frozen\): killed"
            ($detected - $stoppedAt).TotalSeconds | Should -BeGreaterOrEqual 2.5
            ($detected - $stoppedAt).TotalSeconds | Should -BeLessThan 15   # the limit, plus a busy machine's slack
            $task = Get-PQTask icy -Queue $Queue
            $task.Outcome | Should -Be 'Succeeded'
            $task.Attempts | Should -Be 2
            Get-LogText $Log | Should -Match "retried: child process $victim sent no heartbeat"
            { Get-Process -Id $victim -ErrorAction Stop } | Should -Throw
        }
        finally { Stop-BackgroundWorker $worker }
    }

    It 'replaces a child over -MaxProcessorMemory after its task' {
        1..2 | ForEach-Object { Submit-PQTask "m$_" work -Queue $Queue }
        $summary = Start-PQWorker @Fast -Queue $Queue -UntilEmpty -LogPath $Log -MaxProcessorMemory 1MB -Handler @{
            work = { param($Task) Add-Content (Join-Path $env:PQ_TEST_DIR 'runs') "$($Task.Key) $($Task.Attempt) $PID" }
        } 6>$null
        $summary.Succeeded | Should -Be 2
        $pids = Get-RunPids $Marker
        $pids[1] | Should -Not -Be $pids[0]
        Get-LogText $Log | Should -Match "processor 1: child process $($pids[0]) uses [0-9.]+ MB, more than the memory ceiling of 1 MB: recycled"
    }

    It 'fails the start with a clear error when a child cannot start (a bad -InitializationScript)' {
        Submit-PQTask never work -Queue $Queue
        { Start-PQWorker @Fast -Queue $Queue -UntilEmpty -InitializationScript { throw 'no database here' } -Handler @{ work = { 'x' } } -ErrorAction Stop 6>$null } |
            Should -Throw '*processor 1: child process * could not start:*no database here*'
        (Get-PQTask never -Queue $Queue).Status | Should -Be 'Waiting'
    }
}
