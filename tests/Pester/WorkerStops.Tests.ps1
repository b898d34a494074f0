# Stops that always work, with thread processors (runspaces): hard timeouts (worker, route), handlers that ignore
# a stop (blocked in [Threading.Thread]::Sleep) abandoned after the stop limit, recycling after N tasks, a graceful
# stop visible to handlers, and a worker that exits in bounded time whatever its handler does. On SQLite and
# PostgreSQL. Child processes have their own file (ProcessIsolation.Tests.ps1).

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')
    # A kill interval of 0.5 s makes the stop limit (three of them) 1.5 s.
    $script:Fast = @{ PollInterval = 0.1; HeartbeatInterval = 0.2; UntilEmpty = $true; ChildKillInterval = 0.5; RetryWait = 0 }
    $script:HasServer = [bool]$env:PQ_TEST_POSTGRES
    if (-not $HasServer -and $env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI: build.ps1 test could not start PostgreSQL.' }

    function New-BackendQueue([string] $Backend) {
        if ($Backend -eq 'PostgreSQL') {
            $q = Connect-PQQueue $env:PQ_TEST_POSTGRES -Table ('ws_' + [guid]::NewGuid().ToString('N').Substring(0, 12)) -PassThru
            Initialize-PQQueue
            return $q
        }
        Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "s-$([guid]::NewGuid().ToString('N')).db")" -PassThru
    }
}

Describe 'Thread processors: timeouts and handlers that ignore a stop, on <Backend>' -ForEach @(@{ Backend = 'SQLite' }, @{ Backend = 'PostgreSQL' }) {
    BeforeEach {
        if ($Backend -eq 'PostgreSQL' -and -not $HasServer) { Set-ItResult -Skipped -Because 'no PostgreSQL here: install postgresql (build.ps1 test starts a throwaway cluster) or set PQ_TEST_POSTGRES'; return }
        $script:Queue = New-BackendQueue $Backend
    }
    AfterAll { Disconnect-PQQueue }

    It 'stops a handler blocked in Thread.Sleep at -Timeout, retries its task, and goes on with a new runspace' {
        Submit-PQTask stuck work
        Submit-PQTask after work
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $summary = Start-PQWorker @Fast -Timeout 2 -MaxAttempts 2 -Handler @{
            work = { param($Task) if ($Task.Key -eq 'stuck' -and $Task.Attempt -eq 1) { [Threading.Thread]::Sleep(120000) }; "ran $($Task.Attempt)" }
        } -InformationVariable lines 6>$null
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 60 -Because 'the sleeping handler was abandoned, not waited for'
        $log = $lines.MessageData.Message -join "`n"
        $log | Should -Match 'stuck timed out after 2 s: its handler is stopped'
        $log | Should -Match 'stuck: its handler ignored the pipeline stop for 1s: its thread is interrupted'
        $log | Should -Match 'processor 1 is replaced: it cannot run another task'
        $stuck = Get-PQTask stuck
        $stuck.Outcome | Should -Be 'Succeeded'
        $stuck.Message | Should -Be 'ran 2'
        $stuck.Attempts | Should -Be 2
        (Get-PQTask after).Outcome | Should -Be 'Succeeded'
        $summary.TimedOut | Should -Be 1
        $summary.Killed | Should -Be 1
        $summary.ProcessorRestarts | Should -Be 1
        $summary.Retried | Should -Be 1
        $summary.Succeeded | Should -Be 2
    }

    It 'abandons a handler blocked in native code (opening a FIFO nobody writes) after the stop limit, retries its task, and goes on' -Skip:$IsWindows {
        $fifo = Join-Path $TestDrive "fifo-$([guid]::NewGuid().ToString('N'))"
        & mkfifo $fifo
        Submit-PQTask native work
        Submit-PQTask next work
        $handler = [scriptblock]::Create("param(`$Task) if (`$Task.Key -eq 'native' -and `$Task.Attempt -eq 1) { `$null = [IO.File]::ReadAllText('$fifo') }; 'ran'")
        try {
            $summary = Start-PQWorker @Fast -Timeout 1 -Handler @{ work = $handler } -InformationVariable lines 6>$null
        } finally {
            # Lets the abandoned thread go: a writer opens the FIFO, the blocked open returns.
            [IO.File]::WriteAllText($fifo, 'x')
        }
        $log = $lines.MessageData.Message -join "`n"
        $log | Should -Match 'native timed out after 1 s: its handler is stopped'
        $log | Should -Match 'native: its handler did not stop within 1\.5 s of being stopped \(TimedOut\): it is abandoned and processor 1 replaced'
        (Get-PQTask native).Outcome | Should -Be 'Succeeded'
        (Get-PQTask native).Attempts | Should -Be 2
        (Get-PQTask next).Outcome | Should -Be 'Succeeded'
        $summary.TimedOut | Should -Be 1
        $summary.Killed | Should -Be 1
        $summary.ProcessorRestarts | Should -Be 1
    }

    It 'stops a handler that obeys the pipeline stop at its route''s Timeout, without abandoning its runspace; max_attempts then fails it' {
        Submit-PQTask slow work
        $summary = Start-PQWorker @Fast -Timeout 600 -MaxAttempts 1 -Handler @{
            work = @{ Script = { param($Task) Start-Sleep -Seconds 120 }; Timeout = 1 }
        } -InformationVariable lines 6>$null
        $slow = Get-PQTask slow
        $slow.Outcome | Should -Be 'Failed'
        $slow.Message | Should -Be 'gave up after 1 attempt: timed out after 1 s'
        $summary.TimedOut | Should -Be 1
        $summary.Killed | Should -Be 0 -Because 'Start-Sleep ends at a pipeline stop'
        $summary.ProcessorRestarts | Should -Be 0
        ($lines.MessageData.Message -join "`n") | Should -Match 'start slow \(work\) attempt 1 on processor 1, timeout 1 s'
    }

    It 'stops a task at its own Submit-PQTask -Timeout when that is the tightest, and the handler sees its deadline' {
        Submit-PQTask own work -Timeout 1
        Submit-PQTask loose work
        $summary = Start-PQWorker @Fast -Timeout 600 -MaxAttempts 1 -Handler @{
            work = @{ Script = { param($Task) if ($Task.Key -eq 'own') { Start-Sleep -Seconds 120 }; "$($Task.Timeout) $([int]($Task.Deadline - [datetime]::Now).TotalSeconds)" }; Timeout = 300 }
        } 6>$null
        (Get-PQTask own).Message | Should -Be 'gave up after 1 attempt: timed out after 1 s'
        (Get-PQTask loose).Outcome | Should -Be 'Succeeded'
        $remaining = [int]((Get-PQTask loose).Message -split ' ')[1]
        $remaining | Should -BeGreaterThan 290 -Because "the route's 300 s is the tightest for a task without its own"
        $remaining | Should -BeLessOrEqual 300
        $summary.TimedOut | Should -Be 1
    }

    It 'ends a cancelled task whose handler ignores cancel (review M3): abandoned after the grace period and the stop limit, Cancelled, never heartbeated again' {
        Submit-PQTask deaf work
        $marker = Join-Path $TestDrive "deaf-$([guid]::NewGuid().ToString('N'))"
        $handler = [scriptblock]::Create("param(`$Task) Set-Content '$marker' started; [Threading.Thread]::Sleep(120000)")
        $worker = Start-BackgroundWorker $Queue (@{ Handler = @{ work = $handler }; CancelGracePeriod = 0.5 } + $Fast)
        try {
            Wait-Until { Test-Path $marker } 'the handler to start'
            Request-PQCancel deaf
            Wait-Until { (Get-PQTask deaf).Status -eq 'Finished' } 'the task to end' 30
            (Get-PQTask deaf).Outcome | Should -Be 'Cancelled'
        } finally {
            $summary = $worker.PowerShell.EndInvoke($worker.Handle)
            $worker.PowerShell.Dispose()
        }
        $summary.Cancelled | Should -Be 1
        $summary.Killed | Should -Be 1
        $summary.StoppedBecause | Should -Be 'empty'
    }
}

Describe 'Process processors: timeouts, recycling and the session row, on <Backend>' -ForEach @(@{ Backend = 'SQLite' }, @{ Backend = 'PostgreSQL' }) {
    BeforeEach {
        if ($Backend -eq 'PostgreSQL' -and -not $HasServer) { Set-ItResult -Skipped -Because 'no PostgreSQL here: install postgresql (build.ps1 test starts a throwaway cluster) or set PQ_TEST_POSTGRES'; return }
        $script:Queue = New-BackendQueue $Backend
        $script:Process = $Fast + @{ ProcessorType = 'Process'; ChildHeartbeatInterval = 0.2 }
    }
    AfterAll { Disconnect-PQQueue }

    It 'stops a child whose handler is blocked in Thread.Sleep at -Timeout (killed at the stop limit), retries its task in a new child, and goes on' {
        Submit-PQTask stuck work
        Submit-PQTask after work
        $summary = Start-PQWorker @Process -Timeout 2 -Handler @{
            work = { param($Task) if ($Task.Key -eq 'stuck' -and $Task.Attempt -eq 1) { [Threading.Thread]::Sleep(120000) }; "ran $($Task.Attempt) in $PID" }
        } -InformationVariable lines 6>$null
        $log = $lines.MessageData.Message -join "`n"
        $log | Should -Match 'stuck timed out after 2 s: its handler is stopped'
        $stuck = Get-PQTask stuck
        $stuck.Outcome | Should -Be 'Succeeded'
        $stuck.Attempts | Should -Be 2
        $stuck.Message | Should -Match '^ran 2 in \d+$'
        [int]($stuck.Message -split ' ')[-1] | Should -Not -Be $PID -Because 'it ran in a child'
        (Get-PQTask after).Outcome | Should -Be 'Succeeded'
        $summary.TimedOut | Should -Be 1
        $summary.Killed | Should -Be 1
        $summary.ProcessorRestarts | Should -Be 1
        @(Get-PQTask -Status Finished).Count | Should -Be 2 -Because 'nothing lost, nothing finished twice'
    }

    It 'shows a graceful stop and the deadline to a handler in a child, which checkpoints and releases' {
        Submit-PQTask long work
        $marker = Join-Path $TestDrive "plong-$([guid]::NewGuid().ToString('N'))"
        $handler = [scriptblock]::Create("param(`$Task) Set-Content '$marker' started; while (-not `$Task.IsStopRequested) { Start-Sleep -Milliseconds 20 }; `$Task.UpdateData(@{ step = 7; left = [int](`$Task.Deadline - [datetime]::Now).TotalSeconds }); `$Task.Release()")
        $job = Start-PQWorker -AsJob -ProcessorType Process -Timeout 600 -PollInterval 0.1 -HeartbeatInterval 0.2 -ChildHeartbeatInterval 0.2 -Handler @{ work = $handler }
        try {
            Wait-Until { Test-Path $marker } 'the handler to start' 120
            $job | Stop-Job
            $summary = $job | Receive-Job -Wait 6>$null | Select-Object -Last 1
        } finally { $job | Remove-Job -Force }
        $summary.Released | Should -Be 1
        $t = Get-PQTask long
        $t.Status | Should -Be 'Waiting'
        $t.Attempts | Should -Be 0
        $t.Data.step | Should -Be 7
        $t.Data.left | Should -BeGreaterThan 500 -Because 'the child was told the deadline of -Timeout 600'
    }

    It '-MaxTasksPerProcessor starts a new child after N tasks, and Get-PQWorker shows the processor type' {
        1..5 | ForEach-Object { Submit-PQTask "m$_" work }
        $marker = Join-Path $TestDrive "proc-$([guid]::NewGuid().ToString('N'))"
        $handler = [scriptblock]::Create("param(`$Task) if (`$Task.Key -eq 'm1') { while (-not (Test-Path '$marker')) { Start-Sleep -Milliseconds 20 } }; `$PID")
        $worker = Start-BackgroundWorker $Queue ($Process + @{ MaxTasksPerProcessor = 2; Handler = @{ work = $handler } })
        try {
            Wait-Until { @(Get-PQWorker).Count -eq 1 -and (Get-PQTask m1).Status -eq 'Running' } 'the worker to run m1' 60
            (Get-PQWorker).ProcessorType | Should -Be 'process'
            Set-Content $marker go
        } finally {
            $summary = $worker.PowerShell.EndInvoke($worker.Handle)
            $worker.PowerShell.Dispose()
        }
        $summary.Succeeded | Should -Be 5
        $summary.ProcessorRestarts | Should -Be 2
        $children = Get-PQTask | Group-Object Message
        $children.Count | Should -Be 3
        ($children | Measure-Object Count -Maximum).Maximum | Should -Be 2
        $children.Name | Should -Not -Contain "$PID"
    }
}

Describe 'Thread processors: recycling, graceful stops, bad modules' {
    BeforeEach { $script:Queue = New-BackendQueue 'SQLite' }
    AfterAll { Disconnect-PQQueue }

    It '-MaxTasksPerProcessor gives each runspace at most N tasks' {
        1..5 | ForEach-Object { Submit-PQTask "r$_" work }
        $summary = Start-PQWorker @Fast -MaxTasksPerProcessor 2 -Handler @{ work = { [runspace]::DefaultRunspace.InstanceId.ToString() } } 6>$null
        $summary.Succeeded | Should -Be 5
        $summary.ProcessorRestarts | Should -Be 2
        $runspaces = Get-PQTask | Group-Object Message
        $runspaces.Count | Should -Be 3
        ($runspaces | Measure-Object Count -Maximum).Maximum | Should -Be 2
    }

    It 'shows a graceful stop to handlers, which may checkpoint and release' {
        Submit-PQTask long work
        $marker = Join-Path $TestDrive "long-$([guid]::NewGuid().ToString('N'))"
        $handler = [scriptblock]::Create("param(`$Task) Set-Content '$marker' started; while (-not `$Task.IsStopRequested) { Start-Sleep -Milliseconds 20 }; `$Task.UpdateData(@{ step = 7 }); `$Task.Release()")
        $job = Start-PQWorker -AsJob -PollInterval 0.1 -HeartbeatInterval 0.2 -Handler @{ work = $handler }
        try {
            Wait-Until { Test-Path $marker } 'the handler to start'
            $job | Stop-Job
            $summary = $job | Receive-Job -Wait 6>$null | Select-Object -Last 1
        } finally { $job | Remove-Job -Force }
        $summary.Released | Should -Be 1
        $t = Get-PQTask long
        $t.Status | Should -Be 'Waiting'
        $t.Attempts | Should -Be 0 -Because 'a released attempt does not count'
        $t.Data.step | Should -Be 7
    }

    It 'a second Stop-Job ends a job whose handler is blocked in Thread.Sleep within the stop limit, and releases its task' {
        Submit-PQTask blocked work
        $marker = Join-Path $TestDrive "blocked-$([guid]::NewGuid().ToString('N'))"
        $handler = [scriptblock]::Create("param(`$Task) Set-Content '$marker' started; [Threading.Thread]::Sleep(120000)")
        $job = Start-PQWorker -AsJob -PollInterval 0.1 -HeartbeatInterval 0.2 -ChildKillInterval 0.5 -Handler @{ work = $handler }
        try {
            Wait-Until { Test-Path $marker } 'the handler to start'
            $job | Stop-Job -PassThru:$false
            $job | Stop-Job
            Wait-Until { $job.State -eq 'Stopped' } 'the job to stop' 30
            $summary = $job | Receive-Job 6>$null | Select-Object -Last 1
        } finally { $job | Remove-Job -Force }
        $summary.Released | Should -Be 1
        $summary.Killed | Should -Be 1
        $t = Get-PQTask blocked
        $t.Status | Should -Be 'Waiting'
        $t.Attempts | Should -Be 0
    }

    It 'fails the start at once when -ImportModule names a module that does not exist' {
        Submit-PQTask untouched work
        { Start-PQWorker -ImportModule NoSuchModule.PQTest -Handler @{ work = { 'x' } } -MaxTasks 1 } |
            Should -Throw "*-ImportModule: the module 'NoSuchModule.PQTest' was not found*"
        (Get-PQTask untouched).Attempts | Should -Be 0
    }

    It 'refuses a route whose Timeout is not a duration, naming the route' {
        { Start-PQWorker -Handler @{ work = @{ Script = { 'x' }; Timeout = 'soon' } } -MaxTasks 1 } |
            Should -Throw "*route 'work' has Timeout 'soon'*"
        { Start-PQWorker -Handler @{ work = @{ Timeout = 5 } } -MaxTasks 1 } |
            Should -Throw "*route 'work' has no Script*"
    }
}

Describe 'Stops that end a foreground worker in bounded time whatever its handler does (Linux and macOS)' -Skip:$IsWindows {
    BeforeEach {
        $script:Db = Join-Path $TestDrive "sig-$([guid]::NewGuid().ToString('N')).db"
        $script:Queue = Connect-PQQueue "sqlite:///$Db" -PassThru
        $script:Marker = Join-Path $TestDrive "sig-$([guid]::NewGuid().ToString('N'))"
    }
    AfterAll { Disconnect-PQQueue }

    It 'SIGQUIT ends a worker whose handler is blocked in Thread.Sleep, and its task is released' {
        Submit-PQTask q1 work
        $child = Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
Connect-PQQueue 'sqlite:///$Db'
Start-PQWorker -PollInterval 0.1 -HeartbeatInterval 0.2 -ChildKillInterval 0.5 -Handler @{ work = { Set-Content '$Marker' started; [Threading.Thread]::Sleep(120000) } } 6>&1 | Out-String -Width 300
"@
        Wait-Until { Test-Path $Marker } 'the handler to start' 60
        $child.Process.Id | Should -BeGreaterThan 0
        & kill -QUIT $child.Process.Id
        $child.Process.WaitForExit(30000) | Should -BeTrue -Because 'an immediate stop abandons or interrupts a blocked handler within the stop limit'
        # pwsh itself also ends a non-interactive session on SIGQUIT (its Ctrl+Break), so the output may stop short;
        # the task tells what happened.
        $t = Get-PQTask q1
        $t.Status | Should -Be 'Waiting'
        $t.Attempts | Should -Be 0
    }

    It 'Stop-PQWorker with -GracefulKillLimit ends a worker whose handler is blocked in Thread.Sleep, and its task is released' {
        Submit-PQTask q2 work
        $child = Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
Connect-PQQueue 'sqlite:///$Db'
Start-PQWorker -PollInterval 0.1 -HeartbeatInterval 0.2 -ChildKillInterval 0.5 -GracefulKillLimit 1 -Handler @{ work = { Set-Content '$Marker' started; [Threading.Thread]::Sleep(120000) } } 6>&1 | Out-String -Width 300
"@
        Wait-Until { Test-Path $Marker } 'the handler to start' 60
        Wait-Until { @(Get-PQWorker).Count -eq 1 } 'the worker session'
        Get-PQWorker | Stop-PQWorker
        $child.Process.WaitForExit(30000) | Should -BeTrue -Because 'the graceful limit, then the stop limit'
        $child.Output.Result | Should -Match 'graceful kill limit \(1s\) reached'
        $child.Output.Result | Should -Match 'worker stopped \(stop requested\)'
        $t = Get-PQTask q2
        $t.Status | Should -Be 'Waiting'
        $t.Attempts | Should -Be 0
    }
}

Describe 'A worker whose pwsh exits' -Skip:$IsWindows {
    It 'releases the task its handler ran when pwsh itself exits, without counting the attempt' {
        $db = Join-Path $TestDrive "exit-$([guid]::NewGuid().ToString('N')).db"
        $null = Connect-PQQueue "sqlite:///$db" -PassThru
        Submit-PQTask cut work
        $marker = Join-Path $TestDrive "cut-$([guid]::NewGuid().ToString('N'))"
        $child = Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
Connect-PQQueue 'sqlite:///$db'
`$job = Start-PQWorker -AsJob -PollInterval 0.1 -HeartbeatInterval 0.2 -ChildKillInterval 0.5 -Handler @{ work = { Set-Content '$marker' started; [Threading.Thread]::Sleep(120000) } }
while (-not (Test-Path '$marker')) { Start-Sleep -Milliseconds 20 }
exit 3
"@
        $child.Process.WaitForExit(60000) | Should -BeTrue -Because 'pwsh exits in bounded time even with a handler blocked in Thread.Sleep'
        $child.Process.ExitCode | Should -Be 3
        $t = Get-PQTask cut
        $t.Status | Should -Be 'Waiting'
        $t.Attempts | Should -Be 0
        Disconnect-PQQueue
    }
}
