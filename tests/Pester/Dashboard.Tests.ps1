# Start-PQDashboard as a user runs it (issue 15, docs/dashboard.md): what it refuses to start, -WhatIf, the
# foreground dashboard in a real pwsh process stopped by SIGTERM, and stopping a real worker from the API. The
# page itself: Dashboard.Browser.Tests.ps1; each endpoint on every backend: DashboardConformance (xUnit).

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')
    Connect-PQQueue "sqlite:///$(Join-Path $TestDrive 'dash.db')"
    Initialize-PQQueue

    function Invoke-Api([string] $Url, [string] $Path, $Body) {
        $session = Invoke-RestMethod "${Url}api/session"
        Invoke-RestMethod "${Url}api/$Path" -Method Post -ContentType 'application/json' -SkipHttpErrorCheck `
            -Headers @{ $session.antiForgeryHeader = $session.antiForgeryToken } -Body ($Body | ConvertTo-Json -Compress)
    }
}

AfterAll { Disconnect-PQQueue }

Describe 'Start-PQDashboard' {
    It 'refuses a network address without an access token, and a short token, naming the fix' {
        { Start-PQDashboard -Address '*' -Port 0 -AsJob } | Should -Throw -ErrorId 'InvalidArgument,PerfectQueue.PowerShell.Commands.StartPQDashboardCommand' -ExpectedMessage '*-AccessToken*'
        { Start-PQDashboard -Port 0 -AccessToken 'short' -AsJob } | Should -Throw -ExpectedMessage '*at least 16 characters*'
        @(Get-Job | Where-Object PSJobTypeName -EQ 'PerfectQueueDashboard') | Should -HaveCount 0
    }

    It 'keeps the access token out of the job''s command line' {
        $token = 'job-command-token-' + [guid]::NewGuid().ToString('N')
        # The token typed literally on the command line, as an ops user would.
        $job = Invoke-Expression "Start-PQDashboard -Port 0 -Address localhost -AccessToken '$token' -ReadOnly -AsJob"
        try {
            $job.Command | Should -Not -Match $token
            $job.Command | Should -Match '-AccessToken \*\*\*'
            $job.Command | Should -Match '-ReadOnly'
            (Get-Job -Id $job.Id | Format-List * | Out-String) | Should -Not -Match $token
            ($job | Receive-Job -Keep | Out-String) | Should -Not -Match $token
        }
        finally { $job | Stop-Job; $job | Remove-Job }
    }

    It 'says the port is taken as DashboardNotStarted' {
        $job = Start-PQDashboard -Port 0 -AsJob
        try {
            $port = ($job | Receive-Job | Select-Object -First 1).Url.Port
            { Start-PQDashboard -Port $port -AsJob } | Should -Throw -ErrorId "DashboardNotStarted,*" -ExpectedMessage '*-Port*'
        }
        finally { $job | Stop-Job; $job | Remove-Job }
    }

    It 'starts nothing with -WhatIf' {
        Start-PQDashboard -Port 0 -AsJob -WhatIf | Should -BeNullOrEmpty
        @(Get-Job | Where-Object PSJobTypeName -EQ 'PerfectQueueDashboard') | Should -HaveCount 0
    }

    It 'stops serving when its job is stopped' {
        $job = Start-PQDashboard -Port 0 -AsJob
        $url = ($job | Receive-Job | Select-Object -First 1).Url
        (Invoke-RestMethod "${url}api/session").readOnly | Should -BeFalse
        $job | Stop-Job
        $job.State | Should -Be Stopped
        { Invoke-RestMethod "${url}api/session" -TimeoutSec 5 } | Should -Throw
        $job | Remove-Job
    }

    It 'runs in the foreground of a pwsh process until SIGTERM, then exits 0' -Skip:$IsWindows {
        $db = Join-Path $TestDrive 'foreground.db'
        $info = [Diagnostics.ProcessStartInfo]::new('dotnet', [string[]]@((Join-Path $PSHOME 'pwsh.dll'), '-NoProfile', '-NonInteractive', '-Command',
            "Import-Module '$env:PQ_MODULE_PATH'; Connect-PQQueue 'sqlite:///$db'; Initialize-PQQueue; Start-PQDashboard -Port 0"))
        $info.RedirectStandardOutput = $true
        $process = [Diagnostics.Process]::Start($info)
        try {
            $line = $process.StandardOutput.ReadLine()
            $line | Should -Match 'Ctrl\+C stops it'
            $url = [regex]::Match($line, 'http://\S+/').Value
            (Invoke-RestMethod "${url}api/summary").total | Should -Be 0
            kill -TERM $process.Id
            $process.WaitForExit(20000) | Should -BeTrue
            $process.ExitCode | Should -Be 0
            $process.StandardOutput.ReadToEnd() | Should -Match 'Dashboard stopped'
        }
        finally { if (-not $process.HasExited) { $process.Kill() } }
    }

    It 'stops a real worker from the API, as Stop-PQWorker does' {
        $job = Start-PQDashboard -Port 0 -AsJob
        $worker = Start-PQWorker -AsJob -Handler @{ t = { param($Task) } } -NoSchedules -PollInterval 0.2
        try {
            $url = ($job | Receive-Job | Select-Object -First 1).Url
            Wait-Until { ($script:session = Get-PQWorker | Where-Object State -EQ Alive | Select-Object -First 1) } 'the worker to register its session'
            $answer = Invoke-Api $url 'workers/stop' @{ id = $script:session.Id }
            $answer.ok | Should -BeTrue
            $worker | Wait-Job -Timeout 30 | Should -Not -BeNullOrEmpty
            ($worker | Receive-Job -ErrorAction SilentlyContinue -InformationAction SilentlyContinue | Select-Object -Last 1).StoppedBecause | Should -Be 'stop requested'
            (Invoke-Api $url 'workers/stop' @{ id = 'no-such-session' }).error.id | Should -Be 'not_found'
            ($job | Receive-Job -InformationAction SilentlyContinue 6>&1 | Out-String) | Should -Match "stop worker '$($script:session.Id)'"
        }
        finally {
            $worker | Stop-Job -ErrorAction SilentlyContinue; $worker | Remove-Job -Force
            $job | Stop-Job; $job | Remove-Job
        }
    }
}
