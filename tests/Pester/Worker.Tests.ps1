# Start-PQWorker driven as a user would, on a fresh SQLite queue per test.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    function New-TestQueue { Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "w-$([guid]::NewGuid().ToString('N')).db")" -PassThru }
    $script:Fast = @{ PollInterval = 0.1; HeartbeatInterval = 0.2; UntilEmpty = $true }

    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')
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
        # Retried twice: flaky's first attempt, and the failure notice it left (no route for pq.notice here: retried after 60 s).
        $summary.Retried | Should -Be 2
        $summary.Failed | Should -Be 1
        $t = Get-PQTask flaky
        $t.Outcome | Should -Be 'Failed'
        $t.Message | Should -Match 'disk full'
        $notice = @(Get-PQTask -Type pq.notice)
        $notice.Count | Should -Be 1
        $notice[0].Key | Should -BeLike 'pq.notice:failed:*:flaky'
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

Describe 'Start-PQWorker: compiled handlers, config files, log files, jobs' {
    BeforeAll {
        # A compiled handler assembly, built once: a Dispatch with an exact and a regex route.
        $script:Dll = Join-Path $TestDrive 'handlers.dll'
        $references = ([PerfectQueue.Application.Base].Assembly.Location), 'System.Text.Json', 'System.Text.RegularExpressions', 'System.Runtime', 'System.Threading'
        Add-Type -OutputAssembly $Dll -ReferencedAssemblies $references -TypeDefinition @'
using System;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using PerfectQueue.Application;
namespace Compiled
{
    public sealed class Resize : Base
    {
        public override void Run() => Result = "resized " + (string)Data["image"] + " on attempt " + CurrentTask.Attempt;
    }
    public sealed class Broken : Base
    {
        public override Task RunAsync(CancellationToken cancellationToken) => throw new InvalidOperationException("disk full");
    }
    public sealed class WaitForCancel : Base
    {
        public override async Task RunAsync(CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
    }
    public sealed class Routes : Dispatch
    {
        public Routes()
        {
            Route<Resize>("resize");
            Route<Broken>(new Regex("^broken-"));
            Route<WaitForCancel>("wait");
        }
    }
    public sealed class Empty : Dispatch { }
}
'@
    }
    BeforeEach { $script:Queue = New-TestQueue }
    AfterAll { Disconnect-PQQueue }

    It 'runs compiled handlers routed by a Dispatch: success with its Result, a throw retried with its error, an unrouted type retried' {
        Submit-PQTask c1 resize @{ image = 'cat.png' }
        Submit-PQTask c2 broken-disk
        Submit-PQTask c3 nobody-routes-this
        $summary = Start-PQWorker @Fast -AssemblyPath $Dll -Dispatch Compiled.Routes -RetryWait 300 -Processors 2 6>$null
        $summary.Succeeded | Should -Be 1
        $summary.Retried | Should -Be 2
        (Get-PQTask c1).Message | Should -Be 'resized cat.png on attempt 1'
        (Get-PQTask c2).Message | Should -Match 'disk full'
        (Get-PQTask c2).Status | Should -Be 'Scheduled'
        (Get-PQTask c3).Message | Should -Match "No handler is routed for task type 'nobody-routes-this'"
    }

    It 'cancels a compiled handler through its token when cancel is requested' {
        Submit-PQTask waiter wait
        $worker = Start-BackgroundWorker $Queue (@{ AssemblyPath = $Dll; Dispatch = 'Routes' } + $Fast)
        try {
            Wait-Until { (Get-PQTask waiter).Status -eq 'Running' } 'the task to start'
            Request-PQCancel waiter
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to finish'
            $worker.PowerShell.EndInvoke($worker.Handle).Cancelled | Should -Be 1
            (Get-PQTask waiter).Outcome | Should -Be 'Cancelled'
        }
        finally { $worker.PowerShell.Dispose() }
    }

    It 'refuses an assembly without the named Dispatch, a Dispatch without routes, and a missing file, naming the fix' {
        { Start-PQWorker -AssemblyPath $Dll -Dispatch Nope -ErrorAction Stop } | Should -Throw "*has no Dispatch class named 'Nope'*Compiled.Routes*"
        { Start-PQWorker -AssemblyPath $Dll -ErrorAction Stop } | Should -Throw '*several Dispatch classes*name one with -Dispatch*'
        { Start-PQWorker -AssemblyPath $Dll -Dispatch Compiled.Empty -ErrorAction Stop } | Should -Throw '*routes no task types*'
        { Start-PQWorker -AssemblyPath (Join-Path $TestDrive 'missing.dll') -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidConfiguration,*'
    }

    It 'takes the queue and settings from -ConfigPath/-Environment, with parameters overriding the file' {
        $dir = Join-Path $TestDrive "cfg-$([guid]::NewGuid().ToString('N'))"
        $null = New-Item -ItemType Directory $dir
        Set-Content (Join-Path $dir 'pq.yml') @'
development:
  url: sqlite:///dev.db
production:
  url: sqlite:///prod.db
  table: jobs
  processors: 3
  poll_interval: 0.1
  task_heartbeat_interval: 0.2
  retry_wait: 1
  log: logs/worker.log
'@
        $prod = Connect-PQQueue -ConfigPath (Join-Path $dir 'pq.yml') -Environment production -PassThru
        Initialize-PQQueue -Queue $prod
        1..4 | ForEach-Object { Submit-PQTask "p$_" work -Queue $prod }
        $summary = Start-PQWorker -ConfigPath (Join-Path $dir 'pq.yml') -Environment production -Processors 1 -UntilEmpty -Handler @{
            work = { "runspace $([runspace]::DefaultRunspace.Name)" }
        } 6>$null
        $summary.Succeeded | Should -Be 4
        # -Processors 1 beat the file's 3: one runspace ran everything.
        @(Get-PQTask -Queue $prod | Select-Object -ExpandProperty Message -Unique).Count | Should -Be 1
        # The file's log key, relative to the file: the lines went there, not to the host.
        $log = Get-Content (Join-Path $dir 'logs/worker.log') -Raw
        $log | Should -Match 'end p1 \(work\) after [0-9.]+s: succeeded'
        $log | Should -Match 'worker stopped \(empty\)'
    }

    It 'names the key and the file for an unknown key or a bad value in -ConfigPath' {
        $file = Join-Path $TestDrive 'bad.yml'
        Set-Content $file "development:`n  url: sqlite:///x.db`n  procesors: 2"
        { Start-PQWorker -ConfigPath $file -Handler @{ a = {} } -ErrorAction Stop } | Should -Throw "*$file*'procesors' is not a configuration key*"
        Set-Content $file "development:`n  url: sqlite:///x.db`n  poll_interval: soon"
        { Start-PQWorker -ConfigPath $file -Handler @{ a = {} } -ErrorAction Stop } | Should -Throw "*poll_interval*"
        { Start-PQWorker -ConfigPath $file -Queue $Queue -Handler @{ a = {} } -ErrorAction Stop } | Should -Throw '*-ConfigPath or -Queue, not both*'
    }

    It 'writes its log to -LogPath: a line per task start and end with key, type, duration and outcome, and nothing on the host' {
        Submit-PQTask logged work
        $log = Join-Path $TestDrive "logs-$([guid]::NewGuid().ToString('N'))/w.log"
        $null = Start-PQWorker @Fast -LogPath $log -Handler @{ work = { 'did it' } } -InformationVariable lines 6>$null
        @($lines).Count | Should -Be 0
        $text = Get-Content $log -Raw
        $text | Should -Match '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} start logged \(work\) attempt 1'
        $text | Should -Match 'logged: did it'
        $text | Should -Match 'end logged \(work\) after [0-9.]+s: succeeded'
    }

    It 'writes one JSON object per line with -LogFormat Json, in both processor types: every line parses, and the lines of a task name it' {
        foreach ($type in 'Thread', 'Process') {
            $key = "json-$type"
            Submit-PQTask $key work -Data @{ n = 1 }
            Submit-PQTask "$key-bad" broken
            $log = Join-Path $TestDrive "json-$([guid]::NewGuid().ToString('N')).log"
            $summary = Start-PQWorker @Fast -ProcessorType $type -MaxAttempts 1 -LogPath $log -LogFormat Json -Handler @{
                work   = { param($Task) "said `"hi`"`nin two lines"; Write-Warning 'careful' }
                broken = { throw 'disk full' }
                'pq.notice' = { }   # the failure's notice task (docs/notices.md)
            } 6>$null
            $summary.Failed | Should -Be 1
            $events = @(Get-Content $log | ForEach-Object { $_ | ConvertFrom-Json -ErrorAction Stop })
            $events.Count | Should -BeGreaterThan 5
            # From the start on, every line names the session (the routes line before it has none yet).
            $fromStart = [array]::IndexOf([string[]] $events.event, 'worker.started')
            $fromStart | Should -BeGreaterOrEqual 0
            $events | Select-Object -Skip $fromStart | ForEach-Object { $_.session | Should -Be $summary.SessionId }
            Get-Content $log | ForEach-Object { $_ | Should -Match '^\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d","level":' }
            $events[0].event | Should -Be 'worker.host'   # routes: ...
            ($events | Where-Object event -EQ 'worker.stopped').message | Should -Match 'worker stopped \(empty\)'
            $started = $events | Where-Object { $_.event -eq 'task.started' -and $_.key -eq $key }
            $started.type | Should -Be 'work'
            $started.attempt | Should -Be 1
            $ended = $events | Where-Object { $_.event -eq 'task.ended' -and $_.key -eq $key }
            $ended.outcome | Should -Be 'Succeeded'
            $ended.level | Should -Be 'info'
            $ended.duration | Should -BeOfType [double]
            $output = @($events | Where-Object { $_.event -eq 'task.output' -and $_.key -eq $key })
            $output.message | Should -Contain "${key}: said `"hi`"`nin two lines"
            ($output | Where-Object level -EQ 'warning').message | Should -Be "${key}: WARNING: careful"
            $output | ForEach-Object { $_.type | Should -Be 'work'; $_.attempt | Should -Be 1 }
            $failed = $events | Where-Object { $_.event -eq 'task.ended' -and $_.key -eq "$key-bad" }
            ($failed.outcome, $failed.level) | Should -Be @('Failed', 'error')
            $failed.message | Should -Match 'disk full'
        }
    }

    It 'takes log_format from -ConfigPath, and -LogFormat Text overrides it' {
        $dir = Join-Path $TestDrive "cfgjson-$([guid]::NewGuid().ToString('N'))"
        $null = New-Item -ItemType Directory $dir
        Set-Content (Join-Path $dir 'pq.yml') "production:`n  url: sqlite:///q.db`n  poll_interval: 0.1`n  log: worker.log`n  log_format: json"
        $q = Connect-PQQueue -ConfigPath (Join-Path $dir 'pq.yml') -Environment production -PassThru
        Submit-PQTask cfg-1 work -Queue $q
        $null = Start-PQWorker -ConfigPath (Join-Path $dir 'pq.yml') -Environment production -UntilEmpty -Handler @{ work = { 'ok' } } 6>$null
        $lines = @(Get-Content (Join-Path $dir 'worker.log'))
        $lines | ForEach-Object { { $_ | ConvertFrom-Json -ErrorAction Stop } | Should -Not -Throw }
        ($lines | ConvertFrom-Json | Where-Object event -EQ 'task.ended').key | Should -Be 'cfg-1'

        Submit-PQTask cfg-2 work -Queue $q
        $null = Start-PQWorker -ConfigPath (Join-Path $dir 'pq.yml') -Environment production -UntilEmpty -LogFormat Text -Handler @{ work = { 'ok' } } 6>$null
        $after = @(Get-Content (Join-Path $dir 'worker.log') | Select-Object -Skip $lines.Count)
        $after | Should -Not -BeNullOrEmpty
        $after | ForEach-Object { $_ | Should -Match '^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ' }
        { Set-Content (Join-Path $dir 'bad.yml') "production:`n  url: sqlite:///q.db`n  log_format: xml"
          Start-PQWorker -ConfigPath (Join-Path $dir 'bad.yml') -Environment production -UntilEmpty -Handler @{ work = { } } -ErrorAction Stop } |
            Should -Throw "*log_format: 'xml' is not one of text, json*"
    }

    It 'runs as a job with -AsJob: Receive-Job shows its lines and summary, and Stop-Job stops it gracefully' {
        Submit-PQTask slow work
        Submit-PQTask next work
        $marker = Join-Path $TestDrive "job-$([guid]::NewGuid().ToString('N')).txt"
        $go = Join-Path $TestDrive "go-$([guid]::NewGuid().ToString('N'))"
        # The handler runs until the test creates $go, so the stop surely arrives while it runs.
        $handler = [scriptblock]::Create("Add-Content '$marker' `$Task.Key; while (-not (Test-Path '$go')) { Start-Sleep -Milliseconds 20 }; 'finished'")
        $job = Start-PQWorker -Queue $Queue -PollInterval 0.1 -HeartbeatInterval 0.2 -Handler @{ work = $handler } -AsJob -JobName pqtest
        try {
            $job | Should -BeOfType ([System.Management.Automation.Job])
            $job.PSJobTypeName | Should -Be 'PerfectQueueWorker'
            (Get-Job -Name pqtest).Id | Should -Be $job.Id
            Wait-Until { (Test-Path $marker) -and @(Get-Content $marker).Count -ge 1 } 'the job to start a task'
            Stop-Job $job
            $job.State | Should -Be 'Stopping'   # graceful: the running handler goes on
            New-Item -ItemType File $go | Out-Null
            $null = Wait-Job $job -Timeout 60
            $job.State | Should -Be 'Stopped'
            $summary = Receive-Job $job -InformationVariable lines 6>$null
            $summary.StoppedBecause | Should -Be 'graceful stop'
            $summary.Succeeded | Should -Be 1                    # the task it was running, finished
            @(Get-Content $marker).Count | Should -Be 1          # and nothing new acquired after the stop
            $lines.MessageData.Message -join "`n" | Should -Match 'Stop-Job: graceful stop'
            @(Get-PQTask -Status Running).Count | Should -Be 0
            @(Get-PQTask -Status Waiting).Count | Should -Be 1
        }
        finally { New-Item -ItemType File $go -Force | Out-Null; Remove-Job $job -Force }
    }

    It 'stops a job immediately on a second Stop-Job, releasing the task its handler still runs' {
        Submit-PQTask stuck work
        $job = Start-PQWorker -Queue $Queue -PollInterval 0.1 -HeartbeatInterval 0.2 -Handler @{ work = { Start-Sleep -Seconds 600 } } -AsJob
        try {
            Wait-Until { (Get-PQTask stuck).Status -eq 'Running' } 'the job to start the task'
            Stop-Job $job
            $job.State | Should -Be 'Stopping'      # graceful: the handler may go on; Stop-Job did not wait for it
            Stop-Job $job
            $null = Wait-Job $job -Timeout 60
            $job.State | Should -Be 'Stopped'
            $summary = Receive-Job $job 6>$null
            $summary.StoppedBecause | Should -Be 'immediate stop'
            $summary.Released | Should -Be 1
            $t = Get-PQTask stuck
            $t.Status | Should -Be 'Waiting'
            $t.Attempts | Should -Be 0
        }
        finally { Remove-Job $job -Force }
    }

    It 'completes a job that drains with -UntilEmpty' {
        Submit-PQTask j1 work
        $job = Start-PQWorker @Fast -Handler @{ work = { 'ok' } } -AsJob
        try {
            $null = Wait-Job $job -Timeout 60
            $job.State | Should -Be 'Completed'
            (Receive-Job $job 6>$null).Succeeded | Should -Be 1
        }
        finally { Remove-Job $job -Force }
    }
}

Describe 'Start-PQWorker in a process of its own: signals (Linux and macOS)' -Skip:$IsWindows {
    BeforeAll {
        # A signal ignored when a process starts stays ignored in it (.NET does not take it back), and ignored
        # signals are inherited: a test run started with nohup (SIGHUP) or with & from a script (SIGINT, SIGQUIT)
        # would start workers deaf to them, and these tests would only time out. Say so instead.
        if (Test-Path /proc/self/status) {
            $mask = [Convert]::ToUInt64((((Get-Content /proc/self/status) -match '^SigIgn:') -split '\s+')[1], 16)
            $deaf = @(foreach ($s in ([ordered]@{ 1 = 'SIGHUP'; 2 = 'SIGINT'; 3 = 'SIGQUIT' }).GetEnumerator()) { if ($mask -band (1 -shl ($s.Key - 1))) { $s.Value } })
            if ($deaf) { throw "This test process ignores $($deaf -join ', ') (started with nohup, or in the background from a script), and so would every worker it starts: run the tests in the foreground." }
        }
        # Starts a worker in a child pwsh; its handler appends "<key> <attempt> <pid>" to $Marker when it starts.
        function Start-WorkerProcess([string] $Url, [string] $Marker, [string] $Body, [string] $Extra = '') {
            Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$Url')
Start-PQWorker -Queue `$q -PollInterval 0.1 -HeartbeatInterval 0.5 $Extra -Handler @{ work = { param(`$Task) Add-Content '$Marker' "`$(`$Task.Key) `$(`$Task.Attempt) `$PID"; $Body } } 6>&1 | Out-String -Width 200
"@
        }

        # Runs Start-PQWorker in a child pwsh with -HandlerPath $Handlers (so a restart can load a changed file).
        # Handlers append "<key> <version> <attempt>" to the marker and wait until the file $Go exists.
        function Start-ScriptWorker([string] $Url, [string] $Handlers, [string] $Extra = '', [switch] $Log) {
            $logPath = $null
            if ($Log) { $logPath = Join-Path $TestDrive "sw-$([guid]::NewGuid().ToString('N')).log"; $Extra += " -LogPath '$logPath'" }
            $child = Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$Url')
Start-PQWorker -Queue `$q -PollInterval 0.1 -HeartbeatInterval 0.5 -HandlerPath '$Handlers' $Extra 6>&1 | Out-String -Width 300
"@
            $child | Add-Member LogPath $logPath -PassThru
        }
        function Set-Handlers([string] $Path, [string] $Version, [string] $Marker, [string] $Go) {
            Set-Content $Path "@{ work = { param(`$Task) Add-Content '$Marker' ""`$(`$Task.Key) $Version `$(`$Task.Attempt)""; while (-not (Test-Path '$Go')) { Start-Sleep -Milliseconds 50 }; 'done $Version' } }"
        }
    }
    BeforeEach {
        $script:Url = "sqlite:///$(Join-Path $TestDrive "p-$([guid]::NewGuid().ToString('N')).db")"
        $script:Queue = Connect-PQQueue $Url -PassThru
        $script:Marker = Join-Path $TestDrive "runs-$([guid]::NewGuid().ToString('N')).txt"
        $script:Go = Join-Path $TestDrive "go-$([guid]::NewGuid().ToString('N'))"
        $script:Handlers = Join-Path $TestDrive "handlers-$([guid]::NewGuid().ToString('N')).ps1"
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
        Set-Handlers $Handlers 'v1' $Marker $Go        # the handler runs until the test creates $Go
        $worker = Start-ScriptWorker $Url $Handlers -Log
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start a task'
        kill -TERM $worker.Process.Id
        Wait-Until { (Get-Content $worker.LogPath -Raw -ErrorAction Ignore) -match 'SIGTERM: graceful stop' } 'the worker to see the signal'
        New-Item -ItemType File $Go | Out-Null        # one processor: a worker still acquiring would now take the second task
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        $worker.Process.ExitCode | Should -Be 0
        $worker.Output.Result | Should -Match 'StoppedBecause\s*:\s*graceful stop'
        @(Get-Runs $Marker).Count | Should -Be 1
        $started = (@(Get-Runs $Marker)[0] -split ' ')[0]
        (Get-PQTask $started).Outcome | Should -Be 'Succeeded'
        (Get-PQTask -Status Waiting).Count | Should -Be 1
    }

    It 'stops gracefully on SIGINT: the running task ends, nothing new is acquired' {
        1..2 | ForEach-Object { Submit-PQTask "i$_" work }
        Set-Handlers $Handlers 'v1' $Marker $Go
        $worker = Start-ScriptWorker $Url $Handlers -Log
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start a task'
        kill -INT $worker.Process.Id
        Wait-Until { (Get-Content $worker.LogPath -Raw -ErrorAction Ignore) -match 'graceful stop' } 'the worker to see the signal'
        New-Item -ItemType File $Go | Out-Null     # one processor: a worker still acquiring would now take and run the second task
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        @(Get-Runs $Marker).Count | Should -Be 1
        @(Get-PQTask -Status Finished).Count | Should -Be 1
        @(Get-PQTask -Status Waiting).Count | Should -Be 1
        Get-Content $worker.LogPath -Raw | Should -Match 'worker stopped \(graceful stop\)'
    }

    It 'stops immediately on a second SIGINT (Ctrl+C twice): the running handler is stopped and its task released' {
        Submit-PQTask i2 work
        Set-Handlers $Handlers 'v1' $Marker $Go       # the handler never sees $Go: only a stop ends it
        $worker = Start-ScriptWorker $Url $Handlers -Log
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start the task'
        kill -INT $worker.Process.Id
        Wait-Until { (Get-Content $worker.LogPath -Raw -ErrorAction Ignore) -match 'graceful stop' } 'the first Ctrl+C to be seen'
        kill -INT $worker.Process.Id
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        $log = Get-Content $worker.LogPath -Raw
        $log | Should -Match 'second Ctrl\+C \(SIGINT\): immediate stop'
        $log | Should -Match 'released \(worker stopping\)'
        $task = Get-PQTask i2
        $task.Status | Should -Be 'Waiting'
        $task.Attempts | Should -Be 0
    }

    It 'stops immediately on SIGQUIT: the running handler is stopped and its task released, not counted as an attempt' {
        Submit-PQTask q1 work
        Set-Handlers $Handlers 'v1' $Marker $Go       # the handler never sees $Go: only a stop ends it
        $worker = Start-ScriptWorker $Url $Handlers
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start the task'
        kill -QUIT $worker.Process.Id
        # pwsh itself also ends a non-interactive session on SIGQUIT (its Ctrl+Break); the worker releases first.
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        $task = Get-PQTask q1
        $task.Status | Should -Be 'Waiting'
        $task.Attempts | Should -Be 0
    }

    It 'restarts gracefully on SIGUSR1: the running task ends on the old handlers, the next runs on the reloaded ones' {
        1..2 | ForEach-Object { Submit-PQTask "u$_" work }
        Set-Handlers $Handlers 'v1' $Marker $Go
        $worker = Start-ScriptWorker $Url $Handlers -Log
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start a task'
        Set-Handlers $Handlers 'v2' $Marker $Go
        kill -USR1 $worker.Process.Id
        Wait-Until { (Get-Content $worker.LogPath -Raw -ErrorAction Ignore) -match 'SIGUSR1: graceful restart' } 'the worker to see the signal'
        New-Item -ItemType File $Go | Out-Null
        Wait-Until { (Get-PQTask -Status Finished).Count -eq 2 } 'both tasks to finish'
        kill -TERM $worker.Process.Id
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        $worker.Process.ExitCode | Should -Be 0
        $runs = Get-Runs $Marker
        $runs[0] | Should -Match '^u\d v1 1$'
        $runs[1] | Should -Match '^u\d v2 1$'
        (Get-PQTask ($runs[0] -split ' ')[0]).Message | Should -Be 'done v1'
        (Get-PQTask ($runs[1] -split ' ')[0]).Message | Should -Be 'done v2'
        $worker.Output.Result | Should -Match 'Restarts\s*:\s*1'
    }

    It 'restarts immediately on SIGHUP, releasing the running task; a reload that fails keeps the previous handlers' {
        Submit-PQTask h1 work
        Set-Handlers $Handlers 'v1' $Marker $Go
        $worker = Start-ScriptWorker $Url $Handlers
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start the task'
        Set-Content $Handlers '@{ work = { '     # a broken edit
        kill -HUP $worker.Process.Id
        Wait-Until { (Get-Runs $Marker).Count -eq 2 } 'the released task to run again after the restart'
        New-Item -ItemType File $Go | Out-Null
        Wait-Until { (Get-PQTask h1).Status -eq 'Finished' } 'the task to finish'
        kill -TERM $worker.Process.Id
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        $runs = Get-Runs $Marker
        $runs | Should -Be @('h1 v1 1', 'h1 v1 1')   # released: the rerun is attempt 1 again, on the previous handlers
        (Get-PQTask h1).Outcome | Should -Be 'Succeeded'
        $output = $worker.Output.Result
        $output | Should -Match 'SIGHUP: immediate restart'
        $output | Should -Match 'released \(worker stopping\)'
        $output | Should -Match 'the previous ones are kept'
    }

    It 'stops on Stop-PQWorker that arrives while a graceful restart (SIGUSR1) waits for a running task' {
        1..2 | ForEach-Object { Submit-PQTask "s$_" work }
        Set-Handlers $Handlers 'v1' $Marker $Go
        $worker = Start-ScriptWorker $Url $Handlers -Log
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start a task'
        kill -USR1 $worker.Process.Id
        Wait-Until { (Get-Content $worker.LogPath -Raw -ErrorAction Ignore) -match 'SIGUSR1: graceful restart' } 'the restart to be asked'
        Get-PQWorker | Stop-PQWorker
        Wait-Until { (Get-Content $worker.LogPath -Raw) -match 'stop requested by Stop-PQWorker' } 'the worker to see the stop at a beat'
        New-Item -ItemType File $Go | Out-Null
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        $worker.Process.ExitCode | Should -Be 0
        $log = Get-Content $worker.LogPath -Raw
        $log | Should -Not -Match 'restarted'
        $worker.Output.Result | Should -Match 'StoppedBecause\s*:\s*stop requested'
        @(Get-Runs $Marker).Count | Should -Be 1
        @(Get-PQTask -Status Waiting).Count | Should -Be 1
    }

    It 'reopens -LogPath on SIGUSR2, after log rotation moved the file away' {
        1..2 | ForEach-Object { Submit-PQTask "l$_" work }
        $log = Join-Path $TestDrive "rot-$([guid]::NewGuid().ToString('N')).log"
        Set-Handlers $Handlers 'v1' $Marker $Go
        $worker = Start-ScriptWorker $Url $Handlers "-LogPath '$log'"
        Wait-Until { (Get-Runs $Marker).Count -eq 1 } 'the worker to start a task'
        Move-Item $log "$log.1"
        kill -USR2 $worker.Process.Id
        Wait-Until { Test-Path $log } 'a new log file'
        New-Item -ItemType File $Go | Out-Null
        Wait-Until { (Get-PQTask -Status Finished).Count -eq 2 } 'both tasks to finish'
        kill -TERM $worker.Process.Id
        $worker.Process.WaitForExit(30000) | Should -BeTrue
        Get-Content "$log.1" -Raw | Should -Match 'start l\d \(work\)'
        $new = Get-Content $log -Raw
        $new | Should -Match 'SIGUSR2: log reopened'
        $new | Should -Match 'end l\d \(work\) after'
        $new | Should -Match 'worker stopped \(graceful stop\)'
    }
}

Describe 'Start-PQWorker on PostgreSQL' {
    BeforeAll {
        $script:HasServer = [bool]$env:PQ_TEST_POSTGRES
        if (-not $HasServer -and $env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI: build.ps1 test could not start PostgreSQL.' }
    }
    BeforeEach {
        if (-not $HasServer) { Set-ItResult -Skipped -Because 'no PostgreSQL here: install postgresql (build.ps1 test starts a throwaway cluster) or set PQ_TEST_POSTGRES'; return }
        $script:Table = 'pw_' + [guid]::NewGuid().ToString('N').Substring(0, 12)
        $script:Queue = Connect-PQQueue $env:PQ_TEST_POSTGRES -Table $Table -PassThru
        Initialize-PQQueue
    }
    AfterAll { Disconnect-PQQueue }

    It 'drains the queue on several processors, with max_running held per user' {
        1..12 | ForEach-Object { Submit-PQTask "pg$_" work @{ n = $_ } -User "u$($_ % 2)" -MaxRunning 1 }
        # Each handler reports when it started and ended (ticks of this process's clock) as its message.
        $summary = Start-PQWorker -Processors 4 -PollInterval 0.1 -HeartbeatInterval 0.2 -UntilEmpty -Handler @{
            work = { param($Task) $start = [DateTime]::UtcNow.Ticks; Start-Sleep -Milliseconds 50; "$start $([DateTime]::UtcNow.Ticks)" }
        } 6>$null
        $summary.Succeeded | Should -Be 12
        $tasks = Get-PQTask
        $tasks.Outcome | Sort-Object -Unique | Should -Be 'Succeeded'
        foreach ($user in 'u0', 'u1') {
            $runs = @($tasks | Where-Object User -eq $user | ForEach-Object { $s, $e = $_.Message -split ' '; [pscustomobject]@{ Start = [long]$s; End = [long]$e } } | Sort-Object Start)
            $runs.Count | Should -Be 6
            for ($i = 1; $i -lt $runs.Count; $i++) {
                $runs[$i].Start | Should -BeGreaterOrEqual $runs[$i - 1].End -Because "max_running 1 for ${user}: no two of its tasks run at once"
            }
        }
    }

    It 'never writes the password of its connection to the log' {
        # The throwaway cluster trusts loopback, so any password connects: a real secret would show if leaked.
        $url = $env:PQ_TEST_POSTGRES -replace '^postgresql://([^@:/]+)@', 'postgresql://$1:Sup3rS3cret@'
        $url | Should -Match 'Sup3rS3cret'
        $secretQueue = Connect-PQQueue $url -Table $Table -PassThru
        Submit-PQTask s1 work -Queue $secretQueue
        $log = Join-Path $TestDrive "secret-$([guid]::NewGuid().ToString('N')).log"
        $summary = Start-PQWorker -Queue $secretQueue -PollInterval 0.1 -HeartbeatInterval 0.2 -UntilEmpty -LogPath $log -Handler @{ work = { 'ok' } }
        $summary.Succeeded | Should -Be 1
        $text = Get-Content $log -Raw
        $text | Should -Match 'worker started: 1 processor\(s\) on postgresql://'
        $text | Should -Not -Match 'Sup3rS3cret'
    }

    It 'loses nothing when a worker is killed with SIGKILL mid-task, and the task finishes exactly once' -Skip:$IsWindows {
        Submit-PQTask victim work
        $marker = Join-Path $TestDrive "pgruns-$([guid]::NewGuid().ToString('N')).txt"
        $child = Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$env:PQ_TEST_POSTGRES', '$Table')
Start-PQWorker -Queue `$q -PollInterval 0.1 -HeartbeatInterval 0.5 -AliveTime 2 -Handler @{ work = { param(`$Task) Add-Content '$marker' "`$(`$Task.Key) `$(`$Task.Attempt) `$PID"; Start-Sleep -Seconds 600 } }
"@
        $dead = $child.Process
        Wait-Until { (Test-Path $marker) -and @(Get-Content $marker).Count -eq 1 } 'the first worker to start the task' 60
        $dead.Kill()
        $dead.WaitForExit()
        $orphan = Get-PQTask victim
        $orphan.Status | Should -Be 'Running'
        # Until its lease runs out, the task names the killed worker's session, which still lists it.
        $killed = Get-PQWorker | Where-Object Pid -EQ $dead.Id
        $orphan.Worker | Should -Be $killed.Id
        $orphan.Host | Should -Be ([Environment]::MachineName)
        $killed.RunningKeys | Should -Be @('victim')

        $handler = [scriptblock]::Create("param(`$Task) Add-Content '$marker' ""`$(`$Task.Key) `$(`$Task.Attempt) `$PID""; 'done'")
        $summary = Start-PQWorker -PollInterval 0.1 -MaxTasks 1 -Handler @{ work = $handler } 6>$null
        $summary.Succeeded | Should -Be 1
        $task = Get-PQTask victim
        $task.Outcome | Should -Be 'Succeeded'
        $task.Attempts | Should -Be 2
        $task.Worker | Should -BeNullOrEmpty
        $task.LastDuration | Should -BeLessThan ([timespan]::FromSeconds(2))   # the second attempt's few ms, not the killed one's start to now (more than the 2 s alive time)
        $runs = @(Get-Content $marker)
        $runs | Should -Be @("victim 1 $($dead.Id)", "victim 2 $PID")
    }
}
