# docs/service.md: the systemd unit and the Windows recipes it gives use real Start-PQWorker parameters and stop
# timeouts longer than the worker's graceful stop, and the exit codes it documents are the ones a worker process
# ends with.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')
    $script:Doc = Get-Content (Join-Path $PSScriptRoot '../../docs/service.md') -Raw
    $script:Worker = Get-Command Start-PQWorker
    $script:KillStep = [PerfectQueue.QueueConfig]::new().ChildKillInterval.TotalSeconds

    # The parameters a Start-PQWorker command line in the doc passes, by name, with their values as text.
    function script:Get-WorkerArguments([string] $CommandLine) {
        $ast = [System.Management.Automation.Language.Parser]::ParseInput($CommandLine, [ref]$null, [ref]$null)
        $call = $ast.Find({ param($n) $n -is [System.Management.Automation.Language.CommandAst] -and $n.GetCommandName() -eq 'Start-PQWorker' }, $true)
        $call | Should -Not -BeNullOrEmpty -Because "'$CommandLine' runs Start-PQWorker"
        $arguments = [ordered]@{}
        $elements = $call.CommandElements
        for ($i = 1; $i -lt $elements.Count; $i++) {
            $element = $elements[$i]
            if ($element -isnot [System.Management.Automation.Language.CommandParameterAst]) { continue }
            $value = $true
            if ($element.Argument) { $value = $element.Argument.Extent.Text }
            elseif ($i + 1 -lt $elements.Count -and $elements[$i + 1] -isnot [System.Management.Automation.Language.CommandParameterAst]) { $value = $elements[++$i].Extent.Text }
            $arguments[$element.ParameterName] = $value
        }
        $arguments
    }
}

Describe 'docs/service.md' {
    It 'gives a systemd unit whose stop matches the worker: SIGTERM to the worker only, a timeout beyond its graceful kill limit' {
        $Doc -match '(?s)<!-- service-unit -->\s*```ini\n(.*?)```' | Should -BeTrue
        $unit = $Matches[1]
        $service = @{}
        $section = ''
        foreach ($line in $unit -split "`n") {
            if ($line -match '^\[(\w+)\]') { $section = $Matches[1]; continue }
            if ($section -eq 'Service' -and $line -match '^(\w+)=(.*)$') { $service[$Matches[1]] = $Matches[2] }
        }
        $service.KillSignal | Should -Be 'SIGTERM'
        $service.KillMode | Should -Be 'mixed'
        $service.Restart | Should -Be 'on-failure'
        $service.ExecReload | Should -Match '-USR1 \$MAINPID'
        $service.ExecStart -match '^/usr/bin/pwsh .*-Command "(.*)"$' | Should -BeTrue -Because $service.ExecStart
        $arguments = Get-WorkerArguments $Matches[1]
        foreach ($name in $arguments.Keys) { $Worker.Parameters.Keys | Should -Contain $name }
        $limit = [double] $arguments.GracefulKillLimit
        [double] $service.TimeoutStopSec | Should -BeGreaterThan ($limit + 3 * $KillStep)
        $arguments.LogFormat | Should -Be 'Json'
    }

    It 'gives Windows command lines with real parameters, and a Ctrl+C wait beyond the graceful kill limit' {
        $lines = [regex]::Matches($Doc, "'-NoLogo -NoProfile -NonInteractive -Command `"(?:\`$null = )?(Start-PQWorker [^`"]+)`"'") | ForEach-Object { $_.Groups[1].Value }
        @($lines).Count | Should -Be 2
        foreach ($line in $lines) {
            $arguments = Get-WorkerArguments $line
            foreach ($name in $arguments.Keys) { $Worker.Parameters.Keys | Should -Contain $name }
        }
        $nssm = Get-WorkerArguments $lines[0]
        $Doc -match 'AppStopMethodConsole (\d+)' | Should -BeTrue
        [double] $Matches[1] / 1000 | Should -BeGreaterThan ([double] $nssm.GracefulKillLimit + 3 * $KillStep)
    }
}

Describe 'Start-PQWorker exit codes (docs/service.md)' -Skip:$IsWindows {
    It 'exits 1 when it cannot start, and 0 after Stop-PQWorker asked it to stop' {
        $missing = Start-PwshCommand "Import-Module '$env:PQ_MODULE_PATH'; `$null = Start-PQWorker -ConfigPath '$(Join-Path $TestDrive 'none.yml')' -Handler @{ a = { } }"
        $missing.Process.WaitForExit(60000) | Should -BeTrue
        $missing.Process.ExitCode | Should -Be 1
        $missing.Errors.Result | Should -Match 'none\.yml'

        $url = "sqlite:///$(Join-Path $TestDrive 'exit.db')"
        Connect-PQQueue $url
        Initialize-PQQueue
        $worker = Start-PwshCommand "`$PSStyle.OutputRendering = 'PlainText'; Import-Module '$env:PQ_MODULE_PATH'; Connect-PQQueue '$url'; Start-PQWorker -PollInterval 0.1 -HeartbeatInterval 0.2 -Handler @{ a = { } } 6>`$null | Format-List"
        Wait-Until { @(Get-PQWorker | Where-Object Pid -EQ $worker.Process.Id).Count -eq 1 } 'the worker to register its session'
        Get-PQWorker | Where-Object Pid -EQ $worker.Process.Id | Stop-PQWorker
        $worker.Process.WaitForExit(60000) | Should -BeTrue
        $worker.Process.ExitCode | Should -Be 0
        $worker.Output.Result | Should -Match 'StoppedBecause\s*:\s*stop requested'
    }
}
