# Start-PQWorker -Prefetch and the config key prefetch (docs/worker.md, "Prefetch"), on a fresh SQLite queue per test.
# The engine's rules (heartbeats, cancel, release at stop, max_running) are tested on every backend by PrefetchSuite.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    function New-TestQueue { Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "p-$([guid]::NewGuid().ToString('N')).db")" -PassThru }
    $script:Fast = @{ PollInterval = 0.1; HeartbeatInterval = 0.2 }
    function Submit-InOrder([int] $Count, $Queue) { 1..$Count | ForEach-Object { Submit-PQTask "p$_" work -Queue $Queue } }
}

Describe 'Start-PQWorker -Prefetch' {
    BeforeEach { $script:Queue = New-TestQueue }
    AfterAll { Disconnect-PQQueue }

    It 'leases tasks ahead of its one processor and starts them from its ready queue' {
        Submit-InOrder 5 $Queue
        $summary = Start-PQWorker @Fast -UntilEmpty -Processors 1 -Prefetch 3 -Handler @{ work = { 'ok' } } -InformationVariable lines 6>$null
        $summary.Succeeded | Should -Be 5
        $text = $lines.MessageData.Message -join "`n"
        $text | Should -Match 'worker started: 1 processor\(s\), prefetch 3 on'
        # p1 ran at once; p2..p4 came from the same acquire and waited ready.
        $text | Should -Match 'start p2 \(work\) attempt 1 on processor 1, prefetched [0-9.]+s before'
        $text | Should -Not -Match 'start p1 \(work\) attempt 1 on processor 1, prefetched'
        (Get-PQTask).Outcome | Sort-Object -Unique | Should -Be 'Succeeded'
    }

    It 'prefetches nothing by default' {
        Submit-InOrder 3 $Queue
        $null = Start-PQWorker @Fast -UntilEmpty -Handler @{ work = { 'ok' } } -InformationVariable lines 6>$null
        $text = $lines.MessageData.Message -join "`n"
        $text | Should -Match 'worker started: 1 processor\(s\) on'
        $text | Should -Not -Match 'prefetch'
    }

    It 'with -MaxTasks never leases more than it may run' {
        Submit-InOrder 6 $Queue
        $summary = Start-PQWorker @Fast -MaxTasks 3 -Processors 1 -Prefetch 5 -Handler @{ work = { 'ok' } } 6>$null
        $summary.StoppedBecause | Should -Be 'max tasks'
        $summary.Succeeded | Should -Be 3
        $summary.Released | Should -Be 0
        $left = @(Get-PQTask -Status Waiting)
        $left.Count | Should -Be 3
        $left.Attempts | Sort-Object -Unique | Should -Be 0
    }

    It 'takes prefetch from the config file, and -Prefetch overrides it' {
        $dir = Join-Path $TestDrive "cfg-$([guid]::NewGuid().ToString('N'))"
        $null = New-Item -ItemType Directory $dir
        $file = Join-Path $dir 'pq.yml'
        Set-Content $file @'
production:
  url: sqlite:///prod.db
  processors: 1
  prefetch: 2
  poll_interval: 0.1
  task_heartbeat_interval: 0.2
'@
        $prod = Connect-PQQueue -ConfigPath $file -Environment production -PassThru
        Initialize-PQQueue -Queue $prod
        Submit-InOrder 4 $prod
        $summary = Start-PQWorker -ConfigPath $file -Environment production -UntilEmpty -Handler @{ work = { 'ok' } } -InformationVariable lines 6>$null
        $summary.Succeeded | Should -Be 4
        $text = $lines.MessageData.Message -join "`n"
        $text | Should -Match 'worker started: 1 processor\(s\), prefetch 2 on'
        $text | Should -Match 'start p2 \(work\) attempt 1 on processor 1, prefetched'

        1..2 | ForEach-Object { Submit-PQTask "q$_" work -Queue $prod }
        $null = Start-PQWorker -ConfigPath $file -Environment production -UntilEmpty -Prefetch 0 -Handler @{ work = { 'ok' } } -InformationVariable again 6>$null
        ($again.MessageData.Message -join "`n") | Should -Not -Match 'prefetch'
    }

    It 'refuses a prefetch out of bounds, naming the bounds, the key and the file' {
        { Start-PQWorker -Prefetch 1001 -UntilEmpty -Handler @{ work = {} } -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
        { Start-PQWorker -Prefetch -1 -UntilEmpty -Handler @{ work = {} } -ErrorAction Stop } | Should -Throw '*-1*0*'
        $file = Join-Path $TestDrive 'bad-prefetch.yml'
        Set-Content $file "development:`n  url: sqlite:///x.db`n  prefetch: 5000"
        { Start-PQWorker -ConfigPath $file -Handler @{ work = {} } -ErrorAction Stop } | Should -Throw "*$file*prefetch: must be between 0 (none) and 1000 (got 5000)*"
    }
}
