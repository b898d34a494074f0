# What a scriptblock handler sees of the runspace it shares with the tasks before and after it (docs/worker.md):
# its own variables end with it, $global: state lasts (WorkerRules pins -InitializationScript's), $Task is
# there by name, and the function the processor calls it through is not there at all.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    function New-TestQueue { Connect-PQQueue "sqlite:///$(Join-Path $TestDrive "s-$([guid]::NewGuid().ToString('N')).db")" -PassThru }
    $script:Fast = @{ PollInterval = 0.1; HeartbeatInterval = 0.2; UntilEmpty = $true; Processors = 1 }
}

Describe 'A handler''s scope' {
    BeforeEach { $script:Queue = New-TestQueue }
    AfterAll { Disconnect-PQQueue }

    It 'does not outlive its task: a variable one task set is unset in the next on the same runspace, a $global: one lasts' {
        1..3 | ForEach-Object { Submit-PQTask "v$_" work -Data @{ n = $_ } }
        # One processor: the three tasks run one after another in one runspace.
        $summary = Start-PQWorker @Fast -Handler @{ work = {
            param($Task)
            $seen = "local=$([string]$local) global=$([string]$global:Counter) runspace=$([runspace]::DefaultRunspace.Id)"
            $local = "set by $($Task.Key)"
            $global:Counter = [int]$global:Counter + 1
            $Task.Finish($seen)
        } } 6>$null
        $summary.Succeeded | Should -Be 3
        $messages = 1..3 | ForEach-Object { (Get-PQTask "v$_").Message }
        @($messages -replace '^.* runspace=' | Sort-Object -Unique).Count | Should -Be 1 -Because 'all three ran in the one runspace'
        $messages -replace ' runspace=\d+$' | Should -Be @('local= global=', 'local= global=1', 'local= global=2')
    }

    It 'sees $Task by name without a param block, and from a function of the initialization script or of a module' {
        Submit-PQTask named work -Data @{ n = 7 }
        $module = Join-Path $TestDrive "TaskReader-$([guid]::NewGuid().ToString('N')).psm1"
        Set-Content -LiteralPath $module 'function Get-TaskKeyFromModule { $Task.Key }'
        $init = [scriptblock]::Create("Import-Module -Name '$module'; function Get-TaskKeyFromInit { `$Task.Key }")
        $summary = Start-PQWorker @Fast -InitializationScript $init -Handler @{ work = {
            $Task.Finish("$($Task.Key) $($Task.Data.n) $(Get-TaskKeyFromInit) $(Get-TaskKeyFromModule)")
        } } 6>$null
        $summary.Succeeded | Should -Be 1
        (Get-PQTask named).Message | Should -Be 'named 7 named named'
    }

    It 'cannot reach the function the processor calls it through, nor replace it for the next task' {
        1..2 | ForEach-Object { Submit-PQTask "f$_" work }
        $summary = Start-PQWorker @Fast -Handler @{ work = {
            param($Task)
            $found = @(Get-ChildItem function: | Where-Object Name -Like 'PerfectQueue*').Count
            # A handler defining a function of that name changes nothing for the next task.
            function global:PerfectQueueRunHandler { throw 'replaced' }
            $Task.Finish("found $found")
        } } 6>$null
        $summary.Succeeded | Should -Be 2
        (Get-PQTask f1).Message | Should -Be 'found 0'
        (Get-PQTask f2).Message | Should -Be 'found 1' -Because 'the function the first task defined is its own, and the second still ran its handler'
    }
}
