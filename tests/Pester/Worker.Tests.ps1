# Start-PQWorker driven as a user would, on a fresh SQLite queue per test.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    function New-TestQueue { Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "w-$([guid]::NewGuid().ToString('N')).db")" -PassThru }
    $script:Fast = @{ PollInterval = 0.1; HeartbeatInterval = 0.2; UntilEmpty = $true }

    # Runs Start-PQWorker in another runspace of this process, so the test can act while it runs.
    function Start-BackgroundWorker([PerfectQueue.Queue] $Queue, [hashtable] $Parameters) {
        $ps = [powershell]::Create()
        $null = $ps.AddScript('param($m, $q, $p) Import-Module $m; Start-PQWorker -Queue $q @p').AddArgument($env:PQ_MODULE_PATH).AddArgument($Queue).AddArgument($Parameters)
        [pscustomobject]@{ PowerShell = $ps; Handle = $ps.BeginInvoke() }
    }
    function Wait-Until([scriptblock] $Condition, [string] $What, [double] $Seconds = 20) {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        while (-not (& $Condition)) {
            if ($clock.Elapsed.TotalSeconds -gt $Seconds) { throw "Timed out waiting for $What." }
            Start-Sleep -Milliseconds 50
        }
    }
}

Describe 'Start-PQWorker' {
    BeforeEach { $script:Queue = New-TestQueue }
    AfterAll { Disconnect-PQQueue }

    It 'drains the queue on several processors, each in its own runspace, and writes a summary' {
        1..8 | ForEach-Object { Submit-PQTask "k$_" work @{ n = $_ } }
        $summary = Start-PQWorker @Fast -Processors 3 -Handler @{
            work = { param($Task) Start-Sleep -Milliseconds 50; $Task.Finish("ran in $([runspace]::DefaultRunspace.Name)") }
        } 6>$null
        $summary.Processed | Should -Be 8
        $summary.Succeeded | Should -Be 8
        $summary.StoppedBecause | Should -Be 'empty'
        $tasks = Get-PQTask
        $tasks.Outcome | Sort-Object -Unique | Should -Be 'Succeeded'
        $runspaces = $tasks.Message | Sort-Object -Unique
        $runspaces | Should -BeLike 'ran in PerfectQueue processor *'
        @($runspaces).Count | Should -BeGreaterThan 1
    }

    It 'logs a line per task start and end to the information stream' {
        Submit-PQTask logged work
        $null = Start-PQWorker @Fast -Handler @{ work = { 'handler output' } } -InformationVariable lines 6>$null
        $text = $lines.MessageData.Message -join "`n"
        $text | Should -Match 'start logged \(work\) attempt 1'
        $text | Should -Match 'logged: handler output'
        $text | Should -Match 'end logged \(work\) after [0-9.]+s: succeeded'
        (Get-PQTask logged).Message | Should -Be 'handler output'   # the last output line is the finish message
    }

    It 'retries a throwing handler with its error, and ends it Failed after -MaxAttempts' {
        Submit-PQTask flaky work
        $summary = Start-PQWorker @Fast -RetryWait 0 -MaxAttempts 2 -Handler @{ work = { throw "disk full" } } 6>$null
        $summary.Retried | Should -Be 1
        $summary.Failed | Should -Be 1
        $t = Get-PQTask flaky
        $t.Outcome | Should -Be 'Failed'
        $t.Message | Should -Match 'disk full'
    }

    It 'routes by regular expression, and retries an unrouted type after retry_wait with a clear message' {
        Submit-PQTask r1 export-csv
        Submit-PQTask r2 unknown-type
        $summary = Start-PQWorker @Fast -RetryWait 300 -Handler @{ '^export-' = { 'ok' } } 6>$null
        (Get-PQTask r1).Outcome | Should -Be 'Succeeded'
        $r2 = Get-PQTask r2
        $r2.Status | Should -Be 'Scheduled'
        $r2.Message | Should -Match "No handler is routed for task type 'unknown-type'"
        $summary.Retried | Should -Be 1
    }

    It 'runs -InitializationScript once per runspace and takes -HandlerPath' {
        $path = Join-Path $TestDrive 'handlers.ps1'
        Set-Content $path '@{ work = { param($Task) $Task.Finish((Get-Greeting $Task.Data.name)) } }'
        Submit-PQTask h1 work @{ name = 'ops' }
        $null = Start-PQWorker @Fast -HandlerPath $path -InitializationScript { function Get-Greeting($n) { "hello $n" } } 6>$null
        (Get-PQTask h1).Message | Should -Be 'hello ops'
    }

    It 'tells a running handler of a cancel request within a heartbeat, and the task ends Cancelled' {
        Submit-PQTask long work
        $worker = Start-BackgroundWorker $Queue (@{ Handler = @{ work = {
            param($Task)
            while (-not $Task.IsCancellationRequested) { Start-Sleep -Milliseconds 20 }
            'saw the cancel'
        } } } + $Fast)
        try {
            Wait-Until { (Get-PQTask long).Status -eq 'Running' } 'the task to start'
            Request-PQCancel long
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish'
            $summary = $worker.PowerShell.EndInvoke($worker.Handle)
            $summary.Cancelled | Should -Be 1
            (Get-PQTask long).Outcome | Should -Be 'Cancelled'
        }
        finally { $worker.PowerShell.Dispose() }
    }

    It 'stops a handler that ignores the cancel after -CancelGracePeriod' {
        Submit-PQTask stubborn work
        $worker = Start-BackgroundWorker $Queue (@{ CancelGracePeriod = 0.3; Handler = @{ work = { Start-Sleep -Seconds 600 } } } + $Fast)
        try {
            Wait-Until { (Get-PQTask stubborn).Status -eq 'Running' } 'the task to start'
            Request-PQCancel stubborn
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to stop the handler'
            (Get-PQTask stubborn).Outcome | Should -Be 'Cancelled'
        }
        finally { $worker.PowerShell.Dispose() }
    }

    It 'stops gracefully on Ctrl+C (Stop), then stops a long handler after -GracefulKillLimit and releases its task' {
        Submit-PQTask held work
        $parameters = @{ PollInterval = 0.1; HeartbeatInterval = 0.2; GracefulKillLimit = 0.3; Handler = @{ work = { Start-Sleep -Seconds 600 } } }
        $worker = Start-BackgroundWorker $Queue $parameters
        try {
            Wait-Until { (Get-PQTask held).Status -eq 'Running' } 'the task to start'
            $worker.PowerShell.Stop()
            $worker.PowerShell.InvocationStateInfo.State | Should -Be 'Stopped'
            $worker.PowerShell.Streams.Error.Count | Should -Be 0
            $t = Get-PQTask held
            $t.Status | Should -Be 'Waiting'
            $t.Attempts | Should -Be 0   # a released attempt does not count
        }
        finally { $worker.PowerShell.Dispose() }
    }

    It 'stops after -MaxTasks' {
        1..5 | ForEach-Object { Submit-PQTask "m$_" work }
        $summary = Start-PQWorker -PollInterval 0.1 -MaxTasks 2 -Handler @{ work = { } } 6>$null
        $summary.StoppedBecause | Should -Be 'max tasks'
        $summary.Succeeded | Should -Be 2
        @(Get-PQTask -Status Waiting).Count | Should -Be 3
    }

    It 'refuses a handler table whose values are not scriptblocks, with InvalidArgument' {
        { Start-PQWorker -Handler @{ work = 42 } -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidArgument,*'
    }
}

Describe 'Start-PQWorker in a process of its own: SIGKILL and SIGTERM (Linux and macOS)' -Skip:$IsWindows {
    BeforeAll {
        # Starts a worker in a child pwsh; its handler appends "<key> <attempt> <pid>" to $Marker when it starts.
        function Start-WorkerProcess([string] $Url, [string] $Marker, [string] $Body, [string] $Extra = '') {
            $script = Join-Path $TestDrive "worker-$([guid]::NewGuid().ToString('N')).ps1"
            Set-Content $script @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$Url')
Start-PQWorker -Queue `$q -PollInterval 0.1 -HeartbeatInterval 0.5 $Extra -Handler @{ work = { param(`$Task) Add-Content '$Marker' "`$(`$Task.Key) `$(`$Task.Attempt) `$PID"; $Body } } 6>&1 | Out-String -Width 200
"@
            $info = [Diagnostics.ProcessStartInfo]::new('dotnet')
            foreach ($a in (Join-Path $PSHOME 'pwsh.dll'), '-NoProfile', '-NonInteractive', '-File', $script) { $info.ArgumentList.Add($a) }
            $info.RedirectStandardOutput = $true
            $info.RedirectStandardError = $true
            $process = [Diagnostics.Process]::Start($info)
            [pscustomobject]@{ Process = $process; Output = $process.StandardOutput.ReadToEndAsync(); Errors = $process.StandardError.ReadToEndAsync() }
        }
        function Get-Runs([string] $Marker) { if (Test-Path $Marker) { @(Get-Content $Marker) } else { @() } }
    }
    BeforeEach {
        $script:Url = "sqlite:///$(Join-Path $TestDrive "p-$([guid]::NewGuid().ToString('N')).db")"
        $script:Queue = Connect-PQQueue $Url -PassThru
        $script:Marker = Join-Path $TestDrive "runs-$([guid]::NewGuid().ToString('N')).txt"
    }
    AfterAll { Disconnect-PQQueue }

    It 'loses nothing when a worker is killed with SIGKILL mid-task, and the task finishes exactly once' {
        Submit-PQTask victim work
        $dead = Start-WorkerProcess $Url $Marker 'Start-Sleep -Seconds 600' '-AliveTime 2'
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the first worker to start the task'
        $dead.Process.Kill()                      # SIGKILL: no chance to release or finish anything
        $dead.Process.WaitForExit()
        (Get-PQTask victim).Status | Should -Be 'Running'   # its lease has not run out yet

        # Another worker runs it once the dead worker's lease (2 s) has expired.
        # The handler is rebuilt from its text in the worker's runspace: the marker path goes in as text.
        $handler = [scriptblock]::Create("param(`$Task) Add-Content '$Marker' ""`$(`$Task.Key) `$(`$Task.Attempt) `$PID""; 'done'")
        $summary = Start-PQWorker -PollInterval 0.1 -MaxTasks 1 -Handler @{ work = $handler } 6>$null
        $summary.Succeeded | Should -Be 1
        $task = Get-PQTask victim
        $task.Outcome | Should -Be 'Succeeded'
        $task.Attempts | Should -Be 2
        $runs = Get-Runs $Marker
        $runs.Count | Should -Be 2
        $runs[0] | Should -BeLike "victim 1 $($dead.Process.Id)"
        $runs[1] | Should -BeLike "victim 2 $PID"
        @(Get-PQTask -Status Finished).Count | Should -Be 1
    }

    It 'stops gracefully on SIGTERM: the running task ends, nothing new is acquired, exit code 0' {
        Submit-PQTask first work
        Submit-PQTask second work
        $worker = Start-WorkerProcess $Url $Marker 'Start-Sleep -Milliseconds 1500; "finished $($Task.Key)"'
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start a task'
        kill -TERM $worker.Process.Id
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        $worker.Process.ExitCode | Should -Be 0
        $output = $worker.Output.Result
        $output | Should -Match 'SIGTERM: graceful stop'
        $output | Should -Match 'StoppedBecause\s*:\s*graceful stop'
        $started = (@(Get-Runs $Marker)[0] -split ' ')[0]
        (Get-PQTask $started).Outcome | Should -Be 'Succeeded'
        (Get-PQTask -Status Waiting).Count | Should -Be 1
    }
}
