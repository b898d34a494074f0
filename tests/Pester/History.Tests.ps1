# Attempt history and failure notices end to end (docs/history.md, docs/notices.md): real workers of both processor
# types drain real queues on SQLite, PostgreSQL (PQ_TEST_POSTGRES) and MariaDB/MySQL (PQ_TEST_MYSQL); the history is read
# back with Get-PQTaskHistory, piped from Get-PQTask as a user would.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH

    function New-BackendQueue([string] $Backend) {
        $table = 'hi_' + [guid]::NewGuid().ToString('N').Substring(0, 12)
        switch ($Backend) {
            'SQLite' { return Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "h-$table.db")" -PassThru }
            'PostgreSQL' { $url = $env:PQ_TEST_POSTGRES }
            'MySQL' { $url = $env:PQ_TEST_MYSQL }
        }
        if (-not $url) {
            if ($env:CI) { throw "No server URL for $Backend under CI." }
            return $null
        }
        $q = Connect-PQQueue $url -Table $table -PassThru
        Initialize-PQQueue -Queue $q
        $q
    }

    # Fails its first two attempts (Write-Error under the handlers' ErrorActionPreference Stop), succeeds on the third;
    # every attempt writes to the output, warning and information streams first.
    $script:Flaky = {
        param($Task)
        "output of attempt $($Task.Attempt)"
        Write-Warning "warning of attempt $($Task.Attempt)"
        Write-Host "host line of attempt $($Task.Attempt)"
        if ($Task.Attempt -lt 3) { Write-Error "error of attempt $($Task.Attempt)" }
        "done on attempt $($Task.Attempt)"
    }
}

Describe 'Attempt history on <Backend> with <Type> processors' -ForEach @(
    @{ Backend = 'SQLite'; Type = 'Thread' }, @{ Backend = 'SQLite'; Type = 'Process' },
    @{ Backend = 'PostgreSQL'; Type = 'Thread' }, @{ Backend = 'PostgreSQL'; Type = 'Process' },
    @{ Backend = 'MySQL'; Type = 'Thread' }
) {
    BeforeAll {
        $script:q = New-BackendQueue $Backend
        if ($script:q) {
            $worker = @{ Queue = $script:q; ProcessorType = $Type; UntilEmpty = $true; RetryWait = 0; PollInterval = 0.1; HeartbeatInterval = 0.2 }
            Submit-PQTask -Queue $script:q -Key 'flaky' -Type flaky
            $null = Start-PQWorker @worker -Handler @{ flaky = $script:Flaky } 6>$null
            Submit-PQTask -Queue $script:q -Key 'doomed' -Type doomed
            $null = Start-PQWorker @worker -MaxAttempts 2 -Handler @{ doomed = { param($Task) throw "no disk on attempt $($Task.Attempt)" } } 6>$null
        }
    }

    It 'shows a task that failed twice and then succeeded as three attempts with their outputs' {
        if (-not $script:q) { Set-ItResult -Skipped -Because "no $Backend server configured"; return }
        $h = @(Get-PQTask -Queue $script:q -Key 'flaky' | Get-PQTaskHistory)
        $h.Count | Should -Be 3
        $h.Attempt | Should -Be 1, 2, 3
        $h.Outcome | Should -Be 'Retried', 'Retried', 'Succeeded'
        $h[0].Message | Should -BeLike '*error of attempt 1*'
        $h[2].Message | Should -Be 'done on attempt 3'
        foreach ($n in 1..3) {
            $out = $h[$n - 1].Output -split "`n"
            $out | Should -Contain "[output] output of attempt $n"
            $out | Should -Contain "[warning] warning of attempt $n"
            $out | Should -Contain "[information] host line of attempt $n"
        }
        ($h[0].Output -split "`n") | Should -Contain '[error] error of attempt 1'
        ($h[1].Output -split "`n") | Should -Contain '[error] error of attempt 2'
        $h[2].Output | Should -Not -Match '\[error\]'
        ($h[2].Output -split "`n") | Should -Contain '[output] done on attempt 3'
        $h.Processor | Should -Be ($Type.ToLowerInvariant()), ($Type.ToLowerInvariant()), ($Type.ToLowerInvariant())
        $h | ForEach-Object { $_.WorkerSession | Should -Match '^[0-9a-f]{12}$'; $_.Host | Should -Be ([Environment]::MachineName); $_.EndedAt | Should -BeGreaterOrEqual $_.StartedAt }
    }

    It 'submits one pq.notice task for a task whose attempts were spent' {
        if (-not $script:q) { Set-ItResult -Skipped -Because "no $Backend server configured"; return }
        $doomed = Get-PQTask -Queue $script:q -Key 'doomed'
        $doomed.Outcome | Should -Be 'Failed'
        (Get-PQTaskHistory -Queue $script:q -Key 'doomed').Outcome | Should -Be 'Retried', 'Failed'
        $notices = @(Get-PQTask -Queue $script:q -Type 'pq.notice')
        $notices.Count | Should -Be 1
        $notices[0].Key | Should -BeLike 'pq.notice:failed:*:doomed'
        $notices[0].Data.event | Should -Be 'TaskFailed'
        $notices[0].Data.key | Should -Be 'doomed'
        $notices[0].Data.type | Should -Be 'doomed'
        $notices[0].Data.attempts | Should -Be 2
        $notices[0].Data.message | Should -BeLike '*no disk on attempt 2*'
    }

    It 'gives TaskNotFound for a key no task has, and goes on with the others' {
        if (-not $script:q) { Set-ItResult -Skipped -Because "no $Backend server configured"; return }
        $out = @('nope', 'flaky' | Get-PQTaskHistory -Queue $script:q -ErrorVariable errs -ErrorAction SilentlyContinue)
        $out.Count | Should -Be 3
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'TaskNotFound,*'
        $errs[0].Exception.Message | Should -BeLike "*'nope'*Get-PQTask*"
    }

    It 'shows the table view in 80 columns without the output, and the list view with it' {
        if (-not $script:q) { Set-ItResult -Skipped -Because "no $Backend server configured"; return }
        $table = Get-PQTaskHistory -Queue $script:q -Key 'flaky' | Out-String -Width 80
        $table | Should -Match 'Key\s+Attempt\s+StartedAt\s+Duration\s+Outcome\s+Message'
        $table | Should -Not -Match '\[output\]'
        ($table -split "`n" | Where-Object { $_.TrimEnd().Length -gt 80 }) | Should -BeNullOrEmpty
        Get-PQTaskHistory -Queue $script:q -Key 'flaky' | Select-Object -Last 1 | Format-List | Out-String | Should -Match 'Output\s*:\s*\[output\] output of attempt 3'
    }
}
