# Worker sessions driven as a user would: Get-PQWorker lists running workers (in this process or in a
# child pwsh), Stop-PQWorker stops them gracefully, a SIGKILLed worker's session shows as dead until
# cleanup deletes it. Short heartbeats and alive times; waits poll for the event, never fixed sleeps.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH

    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')

    # Starts a worker in a child pwsh; its handler appends "<key> <pid>" to $Marker when it starts a task.
    function Start-WorkerProcess([string] $Url, [string] $Marker, [string] $Body, [string] $Extra = '') {
        Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$Url')
Start-PQWorker -Queue `$q -Processors 2 -PollInterval 0.1 -HeartbeatInterval 0.2 $Extra -Handler @{ work = { param(`$Task) Add-Content '$Marker' "`$(`$Task.Key) `$PID"; $Body } } 6>&1 | Out-String -Width 200
"@
    }
}

Describe 'Get-PQWorker and Stop-PQWorker' {
    BeforeEach {
        $script:Url = "sqlite:///$(Join-Path $TestDrive "s-$([guid]::NewGuid().ToString('N')).db")"
        $script:Queue = Connect-PQQueue $Url -PassThru
        $Queue.Initialize() # connecting creates nothing
    }
    AfterAll { Disconnect-PQQueue }

    It 'are exported, with a table view' {
        $commands = (Get-Module PerfectQueue).ExportedCmdlets.Keys
        $commands | Should -Contain 'Get-PQWorker'
        $commands | Should -Contain 'Stop-PQWorker'
        (Get-Command Stop-PQWorker).Parameters.Keys | Should -Contain 'WhatIf'
        Get-PQWorker | Should -BeNullOrEmpty   # a fresh queue has no workers, and that is no error
    }

    It 'lists a worker in another process with its pid and processors, and Stop-PQWorker -Id stops it gracefully: exit code 0 and its summary' {
        $marker = Join-Path $TestDrive "runs-$([guid]::NewGuid().ToString('N')).txt"
        $go = Join-Path $TestDrive "go-$([guid]::NewGuid().ToString('N'))"
        Submit-PQTask first work
        # The handler runs until the test creates $go: the task is surely still running while the test looks.
        $child = Start-WorkerProcess $Url $marker ("while (-not (Test-Path '$go')) { Start-Sleep -Milliseconds 50 }; " + '"finished $($Task.Key)"')
        try {
            Wait-Until { (Get-Runs $marker).Count -eq 1 } 'the worker to start the task'
            Wait-Until { (Get-PQWorker | Where-Object Running -EQ 1) } 'a heartbeat with the running task'
            $w = Get-PQWorker
            @($w).Count | Should -Be 1
            $w.Pid | Should -Be $child.Process.Id
            $w.Host | Should -Be ([Environment]::MachineName)
            $w.Processors | Should -Be 2
            $w.State | Should -Be 'Alive'
            $w.Id | Should -Match '^[0-9a-f]{12}$'
            $w.StartedAt | Should -BeOfType [datetime]
            $w.ProcessorType | Should -Be 'thread'
            (Get-PQWorker | Format-Table | Out-String -Width 200) | Should -Match 'Id\s+Host\s+Pid\s+State\s+ProcessorType\s+Processors\s+Running\s+StartedAt\s+LastBeatAge\s+RunningKeys'
            (Get-PQWorker | Format-Table | Out-String -Width 200) | Should -Match "$($w.Id)\s+\S+\s+\d+\s+Alive\s+thread\s+2\s+1\s.*\sfirst\s*$"
            # Who runs what: the worker lists the key it runs, and the task names the worker, its host and its start.
            $w.RunningKeys | Should -Be @('first')
            $running = Get-PQTask first
            $running.Status | Should -Be 'Running'
            $running.Worker | Should -Be $w.Id
            $running.Host | Should -Be ([Environment]::MachineName)
            $running.StartedAt | Should -BeOfType [datetime]
            $running.StartedAt | Should -BeLessOrEqual (Get-Date).AddSeconds(1)
            $running.RunningFor | Should -BeGreaterThan ([timespan]::Zero)
            $running.LastDuration | Should -BeNullOrEmpty   # no attempt has ended yet
            ($running | Format-Table | Out-String -Width 120) | Should -Match "first\s+work\s+Running\s+on $([regex]::Escape([Environment]::MachineName)) \d+s"
            ($running | Format-List | Out-String -Width 200) | Should -Match "Worker\s*:\s*$($w.Id)"

            $stopping = Stop-PQWorker -Id $w.Id -PassThru
            $stopping.State | Should -Be 'Stopping'
            # Two beats after the request the worker has seen it (beats are sequential): a task submitted now
            # stays waiting, though the worker has a free processor.
            Wait-Until { (Get-PQWorker).LastBeatAt -gt $stopping.LastBeatAt } 'a beat after the request'
            $seen = (Get-PQWorker).LastBeatAt
            Wait-Until { -not (Get-PQWorker) -or (Get-PQWorker).LastBeatAt -gt $seen } 'a second beat after the request'
            Submit-PQTask later work
            New-Item -ItemType File $go | Out-Null

            $child.Process.WaitForExit(30000) | Should -BeTrue
            $child.Process.ExitCode | Should -Be 0
            $output = $child.Output.Result
            $output | Should -Match 'stop requested by Stop-PQWorker'
            $output | Should -Match 'StoppedBecause\s*:\s*stop requested'
            $output | Should -Match "SessionId\s*:\s*$($w.Id)"
            $done = Get-PQTask first
            $done.Outcome | Should -Be 'Succeeded'
            $done.Worker | Should -BeNullOrEmpty        # shown only while a worker holds it
            $done.StartedAt | Should -BeNullOrEmpty
            # It ran from its start until $go appeared, which was after the checks above.
            $done.LastDuration | Should -BeGreaterThan $running.RunningFor
            (Get-PQTask later).Status | Should -Be 'Waiting'
            @(Get-Runs $marker).Count | Should -Be 1
            Get-PQWorker | Should -BeNullOrEmpty   # a worker that stops removes its session
        }
        finally { if (-not $child.Process.HasExited) { $child.Process.Kill() } }
    }

    It 'shows a SIGKILLed worker as dead, warns when asked to stop it, and cleanup deletes it after retention' -Skip:$IsWindows {
        $marker = Join-Path $TestDrive "runs-$([guid]::NewGuid().ToString('N')).txt"
        $child = Start-WorkerProcess $Url $marker "'ok'" '-AliveTime 1'
        try {
            Wait-Until { Get-PQWorker } 'the worker to register'
            $id = (Get-PQWorker).Id
            $child.Process.Kill()   # SIGKILL: no chance to remove its session
            $child.Process.WaitForExit()
            Wait-Until { (Get-PQWorker -Id $id).State -eq 'Dead' } 'the alive time (1 s) to run out'
            (Get-PQWorker -State Dead).Id | Should -Be $id
            Get-PQWorker -State Alive, Stopping | Should -BeNullOrEmpty
            $dead = Get-PQWorker -Id $id
            $dead.IsAlive | Should -BeFalse
            $dead.LastBeatAt | Should -BeLessThan $dead.AliveUntil

            $null = Stop-PQWorker -Id $id -WarningVariable warned 3>$null
            "$warned" | Should -Match 'is dead'

            # Cleanup (which polling runs by itself) keeps a dead session for retention_time, then deletes it.
            $Queue.Cleanup() | Should -Be 0
            (Get-PQWorker).Id | Should -Be $id
            $impatient = [PerfectQueue.Queue]::Open([PerfectQueue.QueueConfig]@{ Url = $Url; RetentionTime = [timespan]::Zero })
            try { $null = $impatient.Cleanup() } finally { $impatient.Dispose() }
            Get-PQWorker | Should -BeNullOrEmpty
        }
        finally { if (-not $child.Process.HasExited) { $child.Process.Kill() } }
    }

    It 'stops piped sessions, honours -WhatIf, and the worker summary says why it stopped' {
        Submit-PQTask held work
        $release = Join-Path $TestDrive "release-$([guid]::NewGuid().ToString('N'))"
        $handler = [scriptblock]::Create("param(`$Task) while (-not (Test-Path '$release')) { Start-Sleep -Milliseconds 20 }")
        $worker = Start-BackgroundWorker $Queue @{ Processors = 3; PollInterval = 0.1; HeartbeatInterval = 0.2; Handler = @{ work = $handler } }
        try {
            Wait-Until { (Get-PQTask held).Status -eq 'Running' } 'the task to start'
            Wait-Until { Get-PQWorker } 'the worker to register'
            Get-PQWorker | Stop-PQWorker -WhatIf
            (Get-PQWorker).State | Should -Be 'Alive'

            $asked = Get-PQWorker -State Alive | Stop-PQWorker -PassThru
            $asked.State | Should -Be 'Stopping'
            $asked.Processors | Should -Be 3
            $asked.Queue.Description | Should -Be $Queue.Description
            Wait-Until { (Get-PQWorker).StopRequested } 'the request to be recorded'
            $worker.Handle.IsCompleted | Should -BeFalse   # the running task holds it
            $null = New-Item -ItemType File $release
            Wait-Until { $worker.Handle.IsCompleted } 'the worker to stop'
            $summary = $worker.PowerShell.EndInvoke($worker.Handle)
            $summary.StoppedBecause | Should -Be 'stop requested'
            $summary.Succeeded | Should -Be 1
            $summary.SessionId | Should -Be $asked.Id
            $worker.PowerShell.Streams.Error.Count | Should -Be 0
            Get-PQWorker | Should -BeNullOrEmpty
        }
        finally { $null = New-Item -ItemType File $release -Force; $worker.PowerShell.Dispose() }
    }

    It 'reports an unknown id as WorkerNotFound, per id, and goes on with the others' {
        $worker = Start-BackgroundWorker $Queue @{ PollInterval = 0.1; HeartbeatInterval = 0.2; Handler = @{ work = { } } }
        try {
            Wait-Until { Get-PQWorker } 'the worker to register'
            $id = (Get-PQWorker).Id
            $found = Get-PQWorker -Id 'ffffffffffff', $id.ToUpperInvariant() -ErrorAction SilentlyContinue -ErrorVariable missing
            $found.Id | Should -Be $id
            $missing.FullyQualifiedErrorId | Should -BeLike 'WorkerNotFound,*'
            "$missing" | Should -Match "ffffffffffff"

            Stop-PQWorker -Id 'ffffffffffff', $id -ErrorAction SilentlyContinue -ErrorVariable notStopped
            @($notStopped).Count | Should -Be 1
            $notStopped[0].FullyQualifiedErrorId | Should -BeLike 'WorkerNotFound,*'
            $notStopped[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
            Wait-Until { $worker.Handle.IsCompleted } 'the known worker to stop'
            $worker.PowerShell.EndInvoke($worker.Handle).StoppedBecause | Should -Be 'stop requested'
        }
        finally { $worker.PowerShell.Dispose() }
    }
}
