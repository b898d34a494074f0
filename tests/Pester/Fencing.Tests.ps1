# The lease fence as a script meets it: a task received with a short lease that ran out and was received
# again by someone else. The first holder never heartbeat, so only the database can refuse its writes
# (Complete-PQTask, or the task object's Retry, Release, UpdateData): each is TaskPreempted and changes
# nothing. The xUnit FencingConformance suite tests the same per backend; this is the cmdlet path.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')

    # Returns the stale first holder and the live second one of a fresh task.
    function script:Get-TakenOver {
        Submit-PQTask -Key taken -Type t -Data @{ v = 1 }
        $first = Receive-PQTask -AliveTime 0.3
        $first.Key | Should -Be 'taken'
        $box = @{}
        Wait-Until { ($box.Second = Receive-PQTask -AliveTime 300) } 'the short lease to expire and the task to be received again'
        $box.Second.Attempt | Should -Be 2
        $first, $box.Second
    }

    function script:Assert-Unchanged($Second) {
        $t = Get-PQTask -Key taken
        $t.Status | Should -Be 'Running' -Because 'the stale holder changed nothing'
        $t.Attempts | Should -Be 2
        $t.Outcome | Should -BeNullOrEmpty
        $t.Message | Should -BeNullOrEmpty
        $t.Data.v | Should -Be 1
        $Second.Heartbeat() | Should -Be 'Alive'
        $Second | Complete-PQTask -Message 'done by the second holder'
        (Get-PQTask -Key taken).Outcome | Should -Be 'Succeeded'
        (Get-PQTask -Key taken).Message | Should -Be 'done by the second holder'
    }
}

Describe 'A stale holder from Receive-PQTask' {
    BeforeEach { Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "f-$([guid]::NewGuid().ToString('N')).db")" }
    AfterAll { Disconnect-PQQueue }

    It 'cannot complete the task (TaskPreempted, nothing changed)' {
        $first, $second = Get-TakenOver
        $first | Complete-PQTask -Message 'stale' -ErrorVariable err -ErrorAction SilentlyContinue
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'TaskPreempted,*'
        Assert-Unchanged $second
    }

    It 'cannot <Name> it (PreemptedException, nothing changed)' -ForEach @(
        @{ Name = 'retry'; Write = { param($t) $t.Retry('stale error', [timespan]::FromHours(1)) } }
        @{ Name = 'release'; Write = { param($t) $t.Release() } }
        @{ Name = 'update the data of'; Write = { param($t) $t.UpdateData(@{ v = 99 }) } }
    ) {
        $first, $second = Get-TakenOver
        $caught = $null
        try { & $Write $first } catch { $caught = $_.Exception }
        while ($caught -is [System.Management.Automation.MethodInvocationException]) { $caught = $caught.InnerException }
        $caught | Should -BeOfType ([PerfectQueue.PreemptedException])
        "$($caught.Reason)" | Should -Be 'Reacquired'
        Assert-Unchanged $second
    }
}
