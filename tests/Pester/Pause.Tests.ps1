# Pausing for maintenance (issue 12, docs/pause.md), driven as a user would, on every backend here: SQLite
# always, PostgreSQL with PQ_TEST_POSTGRES, MySQL/MariaDB with PQ_TEST_MYSQL (SQL Server has no server on
# these machines: its statements are checked by the xUnit T-SQL tests). A worker in another process runs
# nothing while the queue is paused and runs the task once it is resumed; -WhatIf changes nothing; type and
# user pauses, Measure-PQQueue and Get-PQWorker; bad input; -UntilEmpty during a pause. Waits poll for events.

BeforeDiscovery {
    $script:Backends = @(
        @{ Name = 'sqlite'; Env = $null }
        @{ Name = 'postgresql'; Env = 'PQ_TEST_POSTGRES' }
        @{ Name = 'mysql'; Env = 'PQ_TEST_MYSQL' }
    )
}

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')

    # A fresh queue of the backend (its own table), connected for the session; $null when the backend has no server here.
    function New-BackendQueue([string] $Name, [string] $Env) {
        $table = 'pause_' + [guid]::NewGuid().ToString('N').Substring(0, 12)
        $url = if ($Env) { [Environment]::GetEnvironmentVariable($Env) } else { "sqlite:///$(Join-Path $TestDrive "$table.db")" }
        if (-not $url) {
            if ($env:CI) { throw "$Env is not set under CI." }
            return $null
        }
        $q = Connect-PQQueue $url -Table $table -PassThru
        Initialize-PQQueue
        [pscustomobject]@{ Queue = $q; Url = $url; Table = $table }
    }
}

AfterAll { Disconnect-PQQueue }

Describe 'Suspend-PQQueue and Resume-PQQueue on <Name>' -ForEach $Backends {
    BeforeEach {
        $script:Q = New-BackendQueue $Name $Env
        if (-not $Q) { Set-ItResult -Skipped -Because "no $Name server here: set $Env" }
    }

    It 'a worker in another process starts nothing while the queue is paused, and runs the task once it is resumed' {
        if (-not $Q) { return }
        $marker = Join-Path $TestDrive "runs-$([guid]::NewGuid().ToString('N')).txt"
        $log = Join-Path $TestDrive "worker-$([guid]::NewGuid().ToString('N')).log"
        $pause = Suspend-PQQueue -Reason 'maintenance window'
        $pause.Scope | Should -Be 'the whole queue'
        $pause.New | Should -BeTrue
        Submit-PQTask -Key 'during-pause' -Type work    # submits are still accepted
        $child = Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$($Q.Url)', '$($Q.Table)')
Start-PQWorker -Queue `$q -Processors 2 -PollInterval 0.1 -HeartbeatInterval 0.2 -LogPath '$log' -Handler @{ work = { param(`$Task) Add-Content '$marker' `$Task.Key; 'ran' } } | Out-String -Width 200
"@
        try {
            # The worker logs the pause after a poll that found nothing to lease: from then on it has surely looked.
            Wait-Until { (Get-Content $log -Raw -ErrorAction Ignore) -match "paused: the whole queue .*maintenance window" } 'the worker to notice the pause'
            Wait-Until { @(Get-PQWorker).Count -eq 1 } 'the worker session'
            (Get-PQWorker -WarningVariable w -WarningAction SilentlyContinue).Paused | Should -Be @('the whole queue')
            $w | Should -Match 'The queue is paused for the whole queue'
            (Get-PQTask -Key 'during-pause').Status | Should -Be 'Waiting'
            Get-Runs $marker | Should -BeNullOrEmpty

            Resume-PQQueue
            Wait-Until { (Get-PQTask -Key 'during-pause').Status -eq 'Finished' } 'the resumed task to run'
            Get-Runs $marker | Should -Be @('during-pause')
            (Get-PQTask -Key 'during-pause').Outcome | Should -Be 'Succeeded'
            Get-PQWorker | Stop-PQWorker
            $child.Process.WaitForExit(30000) | Should -BeTrue
            $child.Process.ExitCode | Should -Be 0
        }
        finally {
            if (-not $child.Process.HasExited) { $child.Process.Kill() }
        }
    }

    It '-WhatIf pauses and resumes nothing' {
        if (-not $Q) { return }
        Suspend-PQQueue -WhatIf
        Suspend-PQQueue -Type backup -User team-a -WhatIf
        Get-PQQueuePause | Should -BeNullOrEmpty
        $null = Suspend-PQQueue -Type backup
        Resume-PQQueue -Type backup -WhatIf
        Resume-PQQueue -All -WhatIf
        (Get-PQQueuePause).Scope | Should -Be "type 'backup'"
    }

    It 'pauses types of users as combinations, shows them in Measure-PQQueue, and resumes exactly the pauses piped to it' {
        if (-not $Q) { return }
        Submit-PQTask -Key 'a-backup' -Type backup -User team-a
        Submit-PQTask -Key 'b-backup' -Type backup -User team-b
        Submit-PQTask -Key 'c-backup' -Type backup -User team-c
        Submit-PQTask -Key 'a-report' -Type report -User team-a
        $pauses = Suspend-PQQueue -Type backup -User team-a, team-b -Reason 'backup share offline'
        $pauses.Scope | Should -Be @("type 'backup' of user 'team-a'", "type 'backup' of user 'team-b'")
        (Suspend-PQQueue -Type backup -User team-a).New | Should -BeFalse   # paused already: kept

        $m = Measure-PQQueue
        $m.Paused | Should -Be @("type 'backup' of user 'team-a'", "type 'backup' of user 'team-b'")
        $m.PausedWaiting | Should -Be 2
        ($m | Out-String) | Should -Match "Paused\s+: type 'backup' of user 'team-a'; type 'backup' of user 'team-b'"
        (Get-PQQueuePause | Format-Table | Out-String -Width 200) | Should -Match "type 'backup' of user 'team-a'\s.*\s1\s+backup share offline"

        @(Receive-PQTask -Count 10 | ForEach-Object { $_.Finish(); $_.Key } | Sort-Object) | Should -Be @('a-report', 'c-backup')

        Resume-PQQueue -Type backup -WarningVariable notPaused -WarningAction SilentlyContinue   # not a scope that is paused
        $notPaused | Should -Match "Type 'backup' is not paused"
        @(Get-PQQueuePause).Count | Should -Be 2

        Get-PQQueuePause -User team-a | Resume-PQQueue
        (Get-PQQueuePause).Scope | Should -Be "type 'backup' of user 'team-b'"
        @(Receive-PQTask -Count 10 | ForEach-Object { $_.Finish(); $_.Key }) | Should -Be @('a-backup')
        (Resume-PQQueue -All -PassThru).Scope | Should -Be "type 'backup' of user 'team-b'"
        @(Receive-PQTask -Count 10 | ForEach-Object { $_.Finish(); $_.Key }) | Should -Be @('b-backup')
        (Measure-PQQueue).Paused | Should -BeNullOrEmpty
    }

    It 'refuses a scope no task could have with a terminating InvalidArgument error, and pauses nothing' {
        if (-not $Q) { return }
        { Suspend-PQQueue -Type 'backup', ' padded' } | Should -Throw -ErrorId 'InvalidArgument,PerfectQueue.PowerShell.Commands.SuspendPQQueueCommand'
        { Suspend-PQQueue -User ('u' * 300) } | Should -Throw -ExpectedMessage '*256*'
        { Resume-PQQueue -Type "bad`ttype" } | Should -Throw -ErrorId 'InvalidArgument,PerfectQueue.PowerShell.Commands.ResumePQQueueCommand'
        Get-PQQueuePause | Should -BeNullOrEmpty   # not even 'backup', named before the bad one
    }

    It 'Start-PQWorker -UntilEmpty exits while only paused tasks wait, and its log says how many' {
        if (-not $Q) { return }
        Submit-PQTask -Key 'held' -Type backup
        Submit-PQTask -Key 'free' -Type report
        $null = Suspend-PQQueue -Type backup
        $log = Join-Path $TestDrive "until-$([guid]::NewGuid().ToString('N')).log"
        $summary = Start-PQWorker -UntilEmpty -PollInterval 0.1 -LogPath $log -Handler @{ report = { 'ran' }; backup = { 'ran' } }
        $summary.StoppedBecause | Should -Be 'empty'
        $summary.Succeeded | Should -Be 1
        (Get-PQTask -Key 'held').Status | Should -Be 'Waiting'
        Get-Content $log -Raw | Should -Match '1 waiting task\(s\) are paused'
    }
}
