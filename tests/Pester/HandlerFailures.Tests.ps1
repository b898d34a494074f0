# How a scriptblock handler's failures reach the task and the worker log: native programs' exit codes and
# stderr, Write-Error, and the bounded log of a worker started -AsJob.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH -Force
    function script:Connect-Fresh { Connect-PQQueue ('sqlite:///' + (Join-Path $TestDrive "f-$([guid]::NewGuid().ToString('N')).db")) }
    $script:Fast = @{ PollInterval = 0.1; UntilEmpty = $true; RetryWait = 300 }
}

AfterAll { Disconnect-PQQueue }

Describe 'A native program in a handler' -Skip:$IsWindows {
    BeforeEach { Connect-Fresh }

    It 'fails the task with its exit code when it exits non-zero, and its stderr is in the log, tagged with the key' {
        Submit-PQTask -Key nat1 -Type sh
        $summary = Start-PQWorker @Fast -Handler @{ sh = { bash -c 'echo oops >&2; echo more trouble >&2; exit 3'; 'not reached' } } -InformationVariable lines 6>$null
        $summary.Retried | Should -Be 1
        $summary.Succeeded | Should -Be 0
        $t = Get-PQTask nat1
        $t.Status | Should -Be 'Scheduled'
        $t.Message | Should -Match 'bash.*exit code: 3'
        $t.Message | Should -Not -Match 'running command stopped'
        $log = $lines.MessageData.Message
        @($log -match 'nat1: stderr: oops$').Count | Should -Be 1
        @($log -match 'nat1: stderr: more trouble$').Count | Should -Be 1
        $log -match 'not reached' | Should -BeNullOrEmpty
    }

    It 'ends the task Failed after -MaxAttempts, naming the exit code' {
        Submit-PQTask -Key nat2 -Type sh
        $summary = Start-PQWorker @Fast -RetryWait 0 -MaxAttempts 2 -Handler @{ sh = { ls /pq-no-such-dir-here } } -InformationVariable lines 6>$null
        $summary.Failed | Should -Be 1
        $t = Get-PQTask nat2
        $t.Outcome | Should -Be 'Failed'
        $t.Message | Should -Match 'ls.*exit code: 2'
        @($lines.MessageData.Message -match 'nat2: stderr: .*pq-no-such-dir-here').Count | Should -Be 2   # one line per attempt
    }

    It 'lets a handler opt out for one command and check $LASTEXITCODE itself' {
        Submit-PQTask -Key nat3 -Type sh
        $null = Start-PQWorker @Fast -Handler @{ sh = {
            & { $PSNativeCommandUseErrorActionPreference = $false; bash -c 'exit 1' }
            "robocopy-style exit $LASTEXITCODE is fine"
        } } 6>$null
        $t = Get-PQTask nat3
        $t.Outcome | Should -Be 'Succeeded'
        $t.Message | Should -Be 'robocopy-style exit 1 is fine'
    }

    It 'succeeds when the program exits 0, its stderr still logged' {
        Submit-PQTask -Key nat4 -Type sh
        $null = Start-PQWorker @Fast -Handler @{ sh = { bash -c 'echo progress >&2; exit 0'; 'done' } } -InformationVariable lines 6>$null
        (Get-PQTask nat4).Outcome | Should -Be 'Succeeded'
        @($lines.MessageData.Message -match 'nat4: stderr: progress$').Count | Should -Be 1
    }
}

Describe 'Write-Error in a handler' {
    BeforeEach { Connect-Fresh }

    It "keeps the handler's own text as the task's message" {
        Submit-PQTask -Key we1 -Type work
        $null = Start-PQWorker @Fast -Handler @{ work = { Write-Error 'disk full on /backup' } } 6>$null
        $t = Get-PQTask we1
        $t.Status | Should -Be 'Scheduled'
        $t.Message | Should -BeExactly 'disk full on /backup'
    }

    It 'logs a non-terminating error (-ErrorAction Continue) with the task key, and the task succeeds' {
        Submit-PQTask -Key we2 -Type work
        $null = Start-PQWorker @Fast -Handler @{ work = { Write-Error 'just a note' -ErrorAction Continue; 'ok' } } -InformationVariable lines 6>$null
        (Get-PQTask we2).Outcome | Should -Be 'Succeeded'
        @($lines.MessageData.Message -match 'we2: ERROR: just a note$').Count | Should -Be 1
    }
}

Describe 'Start-PQWorker -AsJob without -LogPath' {
    BeforeEach { Connect-Fresh }

    It 'keeps only the newest lines until Receive-Job, and says how many it dropped' {
        Submit-PQTask -Key chatty -Type work
        $job = Start-PQWorker @Fast -AsJob -Handler @{ work = { 1..1500 | ForEach-Object { "line $_" } } }
        try {
            $null = $job | Wait-Job -Timeout 120
            $job.State | Should -Be 'Completed'
            $max = 1000   # WorkerJob.MaxLogLines, as documented
            $job.Information.Count | Should -BeLessOrEqual ($max + 1)
            $received = @($job | Receive-Job 6>&1)
            @($received | Where-Object { $_ -is [PerfectQueue.Workers.WorkerSummary] }).Count | Should -Be 1
            $lines = @($received | Where-Object { $_ -is [System.Management.Automation.InformationRecord] } | ForEach-Object { "$_" })
            $lines.Count | Should -BeLessOrEqual ($max + 1)
            $lines[0] | Should -Match '^\.\.\. (\d+) older log line\(s\) dropped: a job keeps its newest \d+'
            $dropped = [int]([regex]::Match($lines[0], '\d+').Value)
            # Every line the worker wrote is either kept or counted: 1500 output lines plus routes, start, end, stop lines.
            ($dropped + $lines.Count - 1) | Should -BeGreaterThan 1500
            $lines[-1] | Should -Match 'worker stopped \(empty\)'
            $lines -match 'chatty: line 1500$' | Should -Not -BeNullOrEmpty
            $lines -match 'chatty: line 1$' | Should -BeNullOrEmpty
        }
        finally { $job | Remove-Job -Force }
    }
}
