# Restart-PQTask, Remove-PQTask and Get-PQTask's everyday filters and exports (issue 12), driven as a user
# drives them, against the assembled module folder (PQ_MODULE_PATH) and a fresh SQLite queue per test.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    function script:New-TestQueue {
        $url = "sqlite:///$(Join-Path $TestDrive "f-$([guid]::NewGuid().ToString('N')).db")"
        Connect-PQQueue $url
        Initialize-PQQueue
    }
    function script:Remove-Ansi([string] $Text) { $Text -replace "`e\[[0-9;]*[A-Za-z]", '' }
    # A task finished with this outcome, through a received lease as a worker would.
    function script:New-FinishedTask([string] $Key, [string] $Outcome = 'Failed', [string] $Type = 't', $Data = @{}) {
        Submit-PQTask -Key $Key -Type $Type -Data $Data
        $held = Receive-PQTask
        $held.Key | Should -Be $Key
        $held | Complete-PQTask -Outcome $Outcome -Message "ended $Outcome"
    }
    $script:Fast = @{ PollInterval = 0.1; HeartbeatInterval = 0.2; UntilEmpty = $true; RetryWait = 0 }
}

AfterAll { Disconnect-PQQueue }

Describe 'Restart-PQTask' {
    BeforeEach { New-TestQueue }

    It 'changes nothing with -WhatIf' {
        New-FinishedTask 'r-whatif'
        Get-PQTask -Outcome Failed | Restart-PQTask -WhatIf
        $t = Get-PQTask -Key 'r-whatif'
        "$($t.Status)/$($t.Outcome)" | Should -Be 'Finished/Failed'
        $t.Message | Should -Be 'ended Failed'
    }

    It 'runs a failed task again through a worker, with attempts starting over' {
        $flag = Join-Path $TestDrive "flag-$([guid]::NewGuid().ToString('N'))"
        Submit-PQTask -Key 'r-worker' -Type work -Data @{ flag = $flag }
        $handler = @{ work = { param($Task) if (Test-Path $Task.Data.flag) { 'second run ok' } else { throw 'flag missing' } } }
        $null = Start-PQWorker @Fast -MaxAttempts 1 -Handler $handler 6>$null
        $failed = Get-PQTask -Key 'r-worker'
        "$($failed.Status)/$($failed.Outcome)" | Should -Be 'Finished/Failed'
        $failed.Attempts | Should -Be 1

        $null = New-Item -ItemType File $flag
        Get-PQTask -Outcome Failed | Restart-PQTask
        (Get-PQTask -Key 'r-worker').Attempts | Should -Be 0
        # With -MaxAttempts 1, a task whose attempts were not reset would be given up at acquire, not run.
        $summary = Start-PQWorker @Fast -MaxAttempts 1 -Handler $handler 6>$null
        $summary.Succeeded | Should -Be 1
        $done = Get-PQTask -Key 'r-worker'
        "$($done.Status)/$($done.Outcome)" | Should -Be 'Finished/Succeeded'
        $done.Message | Should -Be 'second run ok'
        $done.Attempts | Should -Be 1
    }

    It 'returns the restarted task with -PassThru, scheduled by -Delay or -RunAt' {
        New-FinishedTask 'r-delay' 'Succeeded'
        New-FinishedTask 'r-at' 'Cancelled'
        $delayed = Restart-PQTask -Key 'r-delay' -Delay 600 -PassThru
        $delayed.Key | Should -Be 'r-delay'
        "$($delayed.Status)" | Should -Be 'Scheduled'
        ($delayed.DueAt - (Get-Date)).TotalSeconds | Should -BeGreaterThan 500
        $at = (Get-Date).AddHours(3)
        $scheduled = Restart-PQTask -Key 'r-at' -RunAt $at -PassThru
        [Math]::Abs(($scheduled.DueAt - $at).TotalSeconds) | Should -BeLessThan 1
        $scheduled.Outcome | Should -BeNullOrEmpty
        $scheduled.CancelRequested | Should -BeFalse
    }

    It 'refuses a negative -Delay before touching any task' {
        New-FinishedTask 'r-neg'
        { Restart-PQTask -Key 'r-neg' -Delay -5 -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidArgument,*'
        "$((Get-PQTask -Key 'r-neg').Status)" | Should -Be 'Finished'
    }

    It 'reports a live task as TaskNotFinished and a missing one as TaskNotFound, and restarts the rest' {
        New-FinishedTask 'r-done'
        Submit-PQTask -Key 'r-live' -Type t
        $held = Receive-PQTask
        $held.Key | Should -Be 'r-live'
        'r-missing', 'r-live', 'r-done' | Restart-PQTask -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 2
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'TaskNotFound,*'
        $errs[0].TargetObject | Should -Be 'r-missing'
        $errs[1].FullyQualifiedErrorId | Should -BeLike 'TaskNotFinished,*'
        "$($errs[1].CategoryInfo.Category)" | Should -Be 'InvalidOperation'
        $errs[1].TargetObject | Should -Be 'r-live'
        $errs[1].Exception.Message | Should -Match 'Request-PQCancel'
        $errs[1].ErrorDetails.RecommendedAction | Should -Match "Request-PQCancel -Key 'r-live'"
        "$((Get-PQTask -Key 'r-done').Status)" | Should -Be 'Waiting'
        "$((Get-PQTask -Key 'r-live').Status)" | Should -Be 'Running'
        $held | Complete-PQTask   # the holder's lease was not touched
    }

    It 'acts on the queue a piped task came from, not the session default' {
        $other = [PerfectQueue.Queue]::Open("sqlite:///$(Join-Path $TestDrive "other-$([guid]::NewGuid().ToString('N')).db")")
        try {
            $other.Initialize()
            Submit-PQTask -Queue $other -Key 'r-other' -Type t
            Receive-PQTask -Queue $other | Complete-PQTask -Outcome Failed
            Get-PQTask -Queue $other -Outcome Failed | Restart-PQTask
            "$((Get-PQTask -Queue $other -Key 'r-other').Status)" | Should -Be 'Waiting'
            Get-PQTask | Should -BeNullOrEmpty
        }
        finally { $other.Dispose() }
    }
}

Describe 'Remove-PQTask' {
    BeforeEach { New-TestQueue }

    It 'changes nothing with -WhatIf' {
        New-FinishedTask 'd-whatif'
        Get-PQTask | Remove-PQTask -WhatIf
        (Get-PQTask -Key 'd-whatif').Key | Should -Be 'd-whatif'
    }

    It 'deletes a finished task and frees its key before retention' {
        New-FinishedTask 'd-key'
        { Submit-PQTask -Key 'd-key' -Type t -ErrorAction Stop } | Should -Throw -ErrorId 'TaskAlreadyExists,*'
        Remove-PQTask -Key 'd-key'
        Get-PQTask -Key 'd-key' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Submit-PQTask -Key 'd-key' -Type t2
        (Get-PQTask -Key 'd-key').Type | Should -Be 't2'
    }

    It 'refuses a live task and reports a missing one, per key, and removes the rest' {
        New-FinishedTask 'd-done' 'Cancelled'
        Submit-PQTask -Key 'd-live' -Type t
        'd-live', 'd-missing', 'd-done' | Remove-PQTask -ErrorVariable errs -ErrorAction SilentlyContinue
        @($errs.FullyQualifiedErrorId) | Should -Be @('TaskNotFinished,PerfectQueue.PowerShell.Commands.RemovePQTaskCommand', 'TaskNotFound,PerfectQueue.PowerShell.Commands.RemovePQTaskCommand')
        @(Get-PQTask).Key | Should -Be @('d-live')
    }
}

Describe 'Get-PQTask filters' {
    BeforeEach { New-TestQueue }

    It 'filters by -Outcome' {
        New-FinishedTask 'o-ok' 'Succeeded'
        New-FinishedTask 'o-bad' 'Failed'
        New-FinishedTask 'o-stop' 'Cancelled'
        Submit-PQTask -Key 'o-live' -Type t
        @(Get-PQTask -Outcome Failed).Key | Should -Be @('o-bad')
        @(Get-PQTask -Outcome Failed, Cancelled).Key | Should -Be @('o-bad', 'o-stop')
        Get-PQTask -Outcome ForceFinished | Should -BeNullOrEmpty
    }

    It 'takes wildcards in -Key, where % and _ are literal, and a wildcard matching nothing is no error' {
        'backup-1', 'backup-22', 'Backup-3', 'a%b', 'axb', 'a_b', 'a[1]b' | ForEach-Object { Submit-PQTask -Key $_ -Type t }
        @(Get-PQTask -Key 'backup-*').Key | Should -Be @('backup-1', 'backup-22')
        @(Get-PQTask -Key 'backup-?').Key | Should -Be @('backup-1')
        @(Get-PQTask -Key 'a[%_]b').Key | Should -Be @('a%b', 'a_b')
        @(Get-PQTask -Key 'a`[1`]b').Key | Should -Be @('a[1]b')
        @(Get-PQTask -Key 'a%b').Key | Should -Be @('a%b') -Because 'a key without wildcards is exact: % is no wildcard'
        @(Get-PQTask -Key 'backup-1', 'a?b').Key | Should -Be @('backup-1', 'a%b', 'axb', 'a_b')
        Get-PQTask -Key 'nothing-*' -ErrorVariable none | Should -BeNullOrEmpty
        $none | Should -BeNullOrEmpty
        Get-PQTask -Key 'nothing' -ErrorVariable missing -ErrorAction SilentlyContinue
        $missing.FullyQualifiedErrorId | Should -BeLike 'TaskNotFound,*'
    }

    It 'says how to write a malformed wildcard' {
        Submit-PQTask -Key 'k' -Type t
        Get-PQTask -Key 'backup-[1' -ErrorVariable bad -ErrorAction SilentlyContinue
        $bad.FullyQualifiedErrorId | Should -BeLike 'InvalidArgument,*'
        "$bad" | Should -Match 'closing \]'
        "$bad" | Should -Match '`\['
    }

    It 'lists the newest tasks first with -Newest, and refuses -First with it' {
        1..5 | ForEach-Object { Submit-PQTask -Key "n$_" -Type t }
        @(Get-PQTask -Newest 2).Key | Should -Be @('n5', 'n4')
        @(Get-PQTask -First 2).Key | Should -Be @('n1', 'n2')
        { Get-PQTask -First 1 -Newest 1 -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidArgument,*'
    }
}

Describe 'Task output' {
    BeforeEach { New-TestQueue }

    It 'names the time per status: DueAt, LeaseExpiresAt, PurgeAt (Timeout kept, hidden)' {
        New-FinishedTask 't-done'
        Submit-PQTask -Key 't-run' -Type t
        Submit-PQTask -Key 't-wait' -Type t
        $held = Receive-PQTask
        $held.Key | Should -Be 't-run'
        try {
            $wait = Get-PQTask -Key 't-wait'
            $wait.DueAt | Should -Not -BeNullOrEmpty
            $wait.LeaseExpiresAt | Should -BeNullOrEmpty
            $wait.PurgeAt | Should -BeNullOrEmpty
            $run = Get-PQTask -Key $held.Key
            $run.LeaseExpiresAt | Should -Not -BeNullOrEmpty
            $run.DueAt | Should -BeNullOrEmpty
            $done = Get-PQTask -Key 't-done'
            ($done.PurgeAt - $done.FinishedAt).TotalHours | Should -BeGreaterThan 23.9
            $done.Timeout | Should -Be $done.PurgeAt
            ($done | Get-Member -Name Timeout) | Should -BeNullOrEmpty -Because 'Timeout is deprecated and hidden'
        }
        finally { $held.Release() }
    }

    It 'fits the default table in 80 columns without a wrapped header' {
        New-FinishedTask 'import-orders-17' 'Cancelled' 'import'
        Submit-PQTask -Key 'backup-sales-2026-12-01' -Type backup -User team-a -Data @{ db = 'sales' }
        Submit-PQTask -Key 'report-daily-2026-12-01' -Type report -Delay 600
        $lines = (Remove-Ansi (Get-PQTask | Format-Table | Out-String -Width 80)) -split '\r?\n' | Where-Object { $_.Trim() }
        ($lines[0].Trim() -split '\s+') | Should -Be @('Key', 'Type', 'User', 'Status', 'When', 'Data')
        $lines[1] | Should -Match '^[-\s]+$' -Because 'the line after the header is its underline, not a wrapped rest of it'
        $lines | ForEach-Object { $_.TrimEnd().Length | Should -BeLessOrEqual 80 }
        $lines | Where-Object { $_ -match '^backup-sales-2026-12-01\s' } | Should -Match 'Waiting\s+due \d\d-\d\d \d\d:\d\d\s+\{"db'
        $lines | Where-Object { $_ -match '^report-daily' } | Should -Match 'Scheduled\s+due '
        $lines | Where-Object { $_ -match '^import-orders-17\s' } | Should -Match 'Finished/Cancelled\s+purge '
    }

    It 'exports Data as JSON text with Export-Csv and ConvertTo-Csv' {
        Submit-PQTask -Key 'csv-1' -Type t -Data ([ordered]@{ db = 'sales'; n = 2; tags = @('a', 'b') })
        $path = Join-Path $TestDrive 'tasks.csv'
        Get-PQTask | Export-Csv -Path $path
        $row = Import-Csv $path
        $row.Data | Should -Be '{"db":"sales","n":2,"tags":["a","b"]}'
        $row.Status | Should -Be 'Waiting'
        $row.Queue | Should -Match '^sqlite:.* \(table perfectqueue\)$'
        $row.PSObject.Properties.Name | Should -Not -Contain 'Timeout'
        (Get-PQTask | ConvertTo-Csv | ConvertFrom-Csv).Data | ConvertFrom-Json | ForEach-Object db | Should -Be 'sales'
        "$((Get-PQTask).Data)" | Should -Be '{"db":"sales","n":2,"tags":["a","b"]}'
        (Get-PQTask).Data['DB'] | Should -Be 'sales' -Because 'the data is still a case-insensitive ordered hashtable'
    }

    It 'writes statuses and outcomes as names in ConvertTo-Json, and the queue as its description only' {
        New-FinishedTask 'json-1' 'Failed' 't' @{ x = 1 }
        $json = Get-PQTask | ConvertTo-Json -Compress -WarningAction SilentlyContinue
        $json | Should -Match '"Status":"Finished"'
        $json | Should -Match '"Outcome":"Failed"'
        $back = $json | ConvertFrom-Json
        $back.Data.x | Should -Be 1
        @($back.Queue.PSObject.Properties.Name) | Should -Be @('Description')
        $json | Should -Not -Match 'RetentionTime|RetryPolicy|EffectiveUrl'
        (Get-PQTask).Status -eq [PerfectQueue.TaskState]::Finished | Should -BeTrue
        (Get-PQTask).Status -eq 'Finished' | Should -BeTrue
    }

    It 'never puts the password of a server URL into JSON or CSV' {
        if (-not $env:PQ_TEST_POSTGRES) {
            if ($env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI.' }
            Set-ItResult -Skipped -Because 'no PostgreSQL here (set PQ_TEST_POSTGRES; build.ps1 test starts one when installed)'
            return
        }
        $u = [uri]$env:PQ_TEST_POSTGRES
        $url = "postgresql://$($u.UserInfo.Split(':')[0]):Secret-pw-1234@$($u.Host):$($u.Port)$($u.AbsolutePath)"
        $q = [PerfectQueue.Queue]::Open($url, "pq_json_$([guid]::NewGuid().ToString("N").Substring(0, 8))")
        try {
            $q.Initialize()
            Submit-PQTask -Queue $q -Key 'secret-1' -Type t
            $text = (Get-PQTask -Queue $q | ConvertTo-Json -Depth 10 -WarningAction SilentlyContinue) + (Get-PQTask -Queue $q | ConvertTo-Csv | Out-String) + (Get-PQTask -Queue $q | Format-List * | Out-String)
            $text | Should -Not -Match 'Secret-pw-1234'
            $text | Should -Match 'secret-1'
        }
        finally { $q.Initialize($true); $q.Dispose() }
    }
}

Describe 'Remove-PQTask -OlderThan' {
    BeforeEach { New-TestQueue }

    It 'removes only finished tasks that ended at least that long ago, of the given outcomes' {
        New-FinishedTask 'age-failed' 'Failed'
        New-FinishedTask 'age-ok' 'Succeeded'
        Submit-PQTask -Key 'age-live' -Type t
        Remove-PQTask -OlderThan 3600
        @(Get-PQTask).Key | Should -Be @('age-failed', 'age-ok', 'age-live') -Because 'nothing finished an hour ago'
        Remove-PQTask -OlderThan 0 -Outcome Failed -WhatIf
        @(Get-PQTask).Count | Should -Be 3
        Remove-PQTask -OlderThan 0 -Outcome Failed
        @(Get-PQTask).Key | Should -Be @('age-ok', 'age-live')
        Remove-PQTask -OlderThan 0
        @(Get-PQTask).Key | Should -Be @('age-live')
        { Remove-PQTask -OlderThan -1 -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidArgument,*'
    }
}
