# Rules of the handler runspaces that Start-PQWorker documents (about_PerfectQueue), pinned one by one:
# $ErrorActionPreference is Stop there, so a command's non-terminating error fails the task (retried, with
# the error as message) instead of being ignored; -InitializationScript runs once per runspace, not per task.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    function New-TestQueue { Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "r-$([guid]::NewGuid().ToString('N')).db")" -PassThru }
    $script:Fast = @{ PollInterval = 0.1; HeartbeatInterval = 0.2; UntilEmpty = $true }
}

Describe 'Handler runspaces' {
    BeforeEach { $script:Queue = New-TestQueue }
    AfterAll { Disconnect-PQQueue }

    It 'fail the task on a non-terminating error of a command (<Name>), and the handler stops there' -ForEach @(
        @{ Name = 'Get-Item of a missing path'; Body = 'Get-Item -LiteralPath ''/no/such/pq-file.txt'''; Expected = 'pq-file\.txt' }
        @{ Name = 'Write-Error'; Body = 'Write-Error ''the export went wrong'''; Expected = 'the export went wrong' }
    ) {
        Submit-PQTask failing work
        $marker = Join-Path $TestDrive "after-$([guid]::NewGuid().ToString('N')).txt"
        # RetryWait 300: one attempt only; what follows the failing command must never run.
        $handler = [scriptblock]::Create("$Body; Set-Content -LiteralPath '$marker' 'reached'; 'finished normally'")
        $summary = Start-PQWorker @Fast -RetryWait 300 -Handler @{ work = $handler } 6>$null
        $summary.Retried | Should -Be 1
        $summary.Succeeded | Should -Be 0
        $t = Get-PQTask failing
        $t.Status | Should -Be 'Scheduled' -Because 'a failed attempt is retried after retry_wait'
        $t.Attempts | Should -Be 1
        $t.Message | Should -Match $Expected
        Test-Path $marker | Should -BeFalse -Because 'under ErrorActionPreference Stop the handler ends at the failing command'
    }

    It 'let a handler choose to go on past an error it expects (-ErrorAction SilentlyContinue)' {
        Submit-PQTask tolerant work
        $summary = Start-PQWorker @Fast -RetryWait 300 -Handler @{ work = {
            Get-Item -LiteralPath '/no/such/pq-file.txt' -ErrorAction SilentlyContinue
            'went on'
        } } 6>$null
        $summary.Succeeded | Should -Be 1
        (Get-PQTask tolerant).Message | Should -Be 'went on'
    }

    It 'run -InitializationScript once per runspace: its state lasts across that runspace''s tasks' {
        1..4 | ForEach-Object { Submit-PQTask "i$_" work }
        $marker = Join-Path $TestDrive "init-$([guid]::NewGuid().ToString('N')).txt"
        $init = [scriptblock]::Create("`$global:TasksHere = 0; Add-Content -LiteralPath '$marker' ([runspace]::DefaultRunspace.Name)")
        $summary = Start-PQWorker @Fast -Processors 2 -InitializationScript $init -Handler @{ work = {
            param($Task)
            $global:TasksHere++
            $Task.Finish("$([runspace]::DefaultRunspace.Name) #$global:TasksHere")
        } } 6>$null
        $summary.Succeeded | Should -Be 4

        $inits = @(Get-Content $marker)
        $inits.Count | Should -Be 2 -Because 'two processors, so two runspaces, each initialized once (not once per task)'
        @($inits | Sort-Object -Unique).Count | Should -Be 2
        # Per runspace, its tasks counted 1, 2, ...: the counter the script set up was never reset.
        $byRunspace = Get-PQTask | Group-Object { $_.Message -replace ' #\d+$' }
        foreach ($group in $byRunspace) {
            $inits | Should -Contain $group.Name
            $numbers = @($group.Group | ForEach-Object { [int]($_.Message -replace '^.* #') } | Sort-Object)
            $numbers | Should -Be @(1..$group.Count)
        }
    }
}
