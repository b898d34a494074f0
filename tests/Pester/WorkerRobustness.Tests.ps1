# Start-PQWorker's answers to issue 9's findings, driven as a user would: -UntilEmpty after a worker died,
# an unrouted task with -RetryWait 0, a handler's own timeout. A fresh SQLite queue per test.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    function New-TestQueue { Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "r-$([guid]::NewGuid().ToString('N')).db")" -PassThru }
    $script:Fast = @{ PollInterval = 0.1; HeartbeatInterval = 0.2; UntilEmpty = $true }

    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')
}

Describe 'Start-PQWorker under failures' {
    BeforeEach { $script:Queue = New-TestQueue }
    AfterAll { Disconnect-PQQueue }

    It '-UntilEmpty waits for a task leased by a worker that died, then runs it' {
        Submit-PQTask orphan work
        $null = Receive-PQTask -AliveTime 2              # its worker dies: the lease runs out after 2 s
        $summary = Start-PQWorker @Fast -Handler @{ work = { 'ran' } } 6>$null
        $summary.StoppedBecause | Should -Be 'empty'
        $summary.Succeeded | Should -Be 1
        (Get-PQTask orphan).Outcome | Should -Be 'Succeeded'
    }

    It '-UntilEmpty logs and counts a task whose last attempt died, and still runs the due tasks behind it' {
        Submit-PQTask H work
        $null = Receive-PQTask -AliveTime 0.2
        Wait-Until { (Get-PQTask H).Status -eq 'Waiting' } 'the first lease to expire'
        $null = Receive-PQTask -AliveTime 0.2
        Wait-Until { (Get-PQTask H).Status -eq 'Waiting' } 'the second lease to expire'
        Submit-PQTask B work
        Submit-PQTask C work
        $summary = Start-PQWorker @Fast -MaxAttempts 2 -Handler @{ work = { 'ran' } } -InformationVariable lines 6>$null
        $summary.StoppedBecause | Should -Be 'empty'
        $summary.Succeeded | Should -Be 2
        $summary.Failed | Should -Be 1
        ($lines.MessageData.Message -join "`n") | Should -Match 'end H \(work\) not started: failed at acquire: gave up after 2 attempts'
        $h = Get-PQTask H
        $h.Outcome | Should -Be 'Failed'
        $h.Attempts | Should -Be 2
        $h.Message | Should -Match 'gave up after 2 attempts'
        (Get-PQTask B).Outcome | Should -Be 'Succeeded'
        (Get-PQTask C).Outcome | Should -Be 'Succeeded'
    }

    It 'an unrouted task waits at least a minute even with -RetryWait 0: no busy loop' {
        Submit-PQTask lost-type nobody-routes-this
        $summary = Start-PQWorker @Fast -RetryWait 0 -MaxTasks 5 -Handler @{ work = { 'ran' } } 6>$null
        $summary.StoppedBecause | Should -Be 'empty'
        $summary.Processed | Should -Be 1
        $t = Get-PQTask lost-type
        $t.Status | Should -Be 'Scheduled'
        ([DateTimeOffset]$t.Timeout - [DateTimeOffset]::Now).TotalSeconds | Should -BeGreaterThan 50
    }

    It "retries a handler's own timeout (an OperationCanceledException) as a failure, counting the attempt" {
        Submit-PQTask http work
        $summary = Start-PQWorker @Fast -RetryWait 0 -Handler @{
            work = { param($Task) if ($Task.Attempt -eq 1) { throw [System.Threading.Tasks.TaskCanceledException]::new('The request was canceled due to the configured HttpClient.Timeout of 100 seconds elapsing.') } 'ok' }
        } 6>$null
        $summary.Retried | Should -Be 1
        $summary.Released | Should -Be 0
        $summary.Succeeded | Should -Be 1
        (Get-PQTask http).Attempts | Should -Be 2
    }
}
