# The dashboard (issue 15, docs/dashboard.md) in real headless Chromium, driven by playwright-core
# (tests/browser/dashboard.mjs; build.ps1 test installs it into a temp folder and sets PQ_BROWSER_DRIVER). The
# dashboards are real Start-PQDashboard jobs on a SQLite queue that a real worker ran; each step's effect is
# checked in the database with the cmdlets. Without node, npm or Chromium these tests skip, except under CI.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    $script:Driver = $env:PQ_BROWSER_DRIVER
    if (-not $Driver -and $env:CI) { throw "The browser tests cannot run under CI: $($env:PQ_BROWSER_MISSING ?? 'PQ_BROWSER_DRIVER is not set (run them with build.ps1 test)')." }

    # Runs one scenario of the driver; returns what the page showed (a failed step throws with the driver's message).
    function Invoke-Browser([string] $Scenario, [string] $Url, [string] $Argument = '') {
        $lines = @(& node $Driver $Scenario $Url $Argument 2>&1)
        $result = $lines[-1] | ConvertFrom-Json
        if ($result.error) { throw "Chromium, scenario ${Scenario}: $($result.error)" }
        if ($result.pageErrors) { throw "The page threw: $($result.pageErrors -join '; ')" }
        $result
    }

    function Start-Dashboard([string[]] $Arguments = @()) {
        $job = Invoke-Expression "Start-PQDashboard -Port 0 -AsJob $($Arguments -join ' ')"
        $script:Jobs += $job
        ($job | Receive-Job | Select-Object -First 1).Url.ToString()
    }

    $script:Jobs = @()
    if (-not $Driver) { return }
    $script:Hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    Connect-PQQueue "sqlite:///$(Join-Path $TestDrive 'dash.db')"
    Initialize-PQQueue
    Submit-PQTask -Key 'flaky-1' -Type flaky -Data @{ share = '\\nas\backups' }
    $null = Start-PQWorker -UntilEmpty -Processors 1 -MaxAttempts 2 -RetryWait 0 -PollInterval 0.2 -NoSchedules -Handler @{
        flaky = { param($Task) Write-Output 'copied 3 of 7 files'; throw 'the share is full' }
        'pq.notice' = { param($Task) }
    }
    1..3 | ForEach-Object { Submit-PQTask -Key "report-$_" -Type report -User team-a }
    Submit-PQTask -Key 'cancel-me' -Type report
    Submit-PQTask -Key $Hostile -Type report -Data @{ note = '<b>bold?</b>' }
    $script:Url = Start-Dashboard
    $script:ReadOnlyUrl = Start-Dashboard '-ReadOnly'
    $script:Token = 'browser-test-token-' + [guid]::NewGuid().ToString('N')
    $script:TokenUrl = Start-Dashboard @('-Address', 'localhost', '-AccessToken', "'$Token'")
}

AfterAll {
    $Jobs | Stop-Job -ErrorAction SilentlyContinue
    $Jobs | Remove-Job -Force -ErrorAction SilentlyContinue
    Disconnect-PQQueue
}

Describe 'The dashboard in Chromium' {
    BeforeEach { if (-not $Driver) { Set-ItResult -Skipped -Because "no browser here: $env:PQ_BROWSER_MISSING" } }

    It 'shows the counts the queue has, by type and by user' {
        $page = Invoke-Browser counts $Url
        $page.counts.Waiting | Should -Be 5
        $page.counts.Waiting | Should -Be (@(Get-PQTask -Status Waiting).Count)
        $page.counts.Finished | Should -Be (@(Get-PQTask -Status Finished).Count)
        $page.counts.Running | Should -Be 0
        $page.types | Should -Contain 'report'
        $page.types | Should -Contain 'flaky'
        $page.users | Should -Contain 'team-a'
        $page.dialogs | Should -BeNullOrEmpty
        $page.consoleErrors | Should -BeNullOrEmpty
    }

    It 'refreshes the counts by itself after more submits' {
        $info = [Diagnostics.ProcessStartInfo]::new('node', [string[]]@($Driver, 'live', $Url, '7'))
        $info.RedirectStandardOutput = $true
        $process = [Diagnostics.Process]::Start($info)
        try {
            $process.StandardOutput.ReadLine() | Should -Match 'ready'   # the page shows 5 waiting
            Submit-PQTask -Key 'late-1' -Type report
            Submit-PQTask -Key 'late-2' -Type report
            $result = $process.StandardOutput.ReadToEnd() | ConvertFrom-Json
            $process.WaitForExit()
            $result.error | Should -BeNullOrEmpty
            $result.before | Should -Be 5
            $result.after | Should -Be 7
        }
        finally { if (-not $process.HasExited) { $process.Kill() } }
        Request-PQCancel -Key 'late-1', 'late-2'
    }

    It 'narrows the task list with a filter' {
        $page = Invoke-Browser filter $Url 'type=flaky'
        $page.all.Count | Should -BeGreaterThan 3
        $page.filtered | Should -Be @('flaky-1')
        $page.hash | Should -Match 'type=flaky'
        (Invoke-Browser filter $Url 'user=team-a').filtered | Should -Be @('report-3', 'report-2', 'report-1')
    }

    It 'shows a failed task with each attempt, its message and its output' {
        $page = Invoke-Browser task $Url 'flaky-1'
        $page.key | Should -Be 'flaky-1'
        $page.fields.Outcome | Should -Be 'Failed'
        @($page.attempts.outcome) | Should -Be @('Retried', 'Failed')
        $page.attempts[0].output | Should -Match 'copied 3 of 7 files'
        $page.attempts[0].output | Should -Match 'the share is full'
        $page.attempts[1].message | Should -Match 'the share is full'
        $page.actions | Should -Be @('tasks/rerun', 'tasks/remove')
    }

    It 'cancels a waiting task from its page' {
        $page = Invoke-Browser cancel $Url 'cancel-me'
        $page.status | Should -Be 200
        $page.statusText | Should -Match 'done'
        $task = Get-PQTask -Key 'cancel-me'
        $task.Status | Should -Be Finished
        $task.Outcome | Should -Be Cancelled
    }

    It 're-runs the failed task from its page' {
        $page = Invoke-Browser rerun $Url 'flaky-1'
        $page.status | Should -Be 200
        $task = Get-PQTask -Key 'flaky-1'
        $task.Status | Should -Be Waiting
        $task.Attempts | Should -Be 0
    }

    It 'pauses a type from the overview and resumes it from the paused list' {
        $page = Invoke-Browser click $Url (@{ hash = '#/'; selector = '#types tr[data-name="report"] button.action'; action = 'queue/suspend' } | ConvertTo-Json -Compress)
        $page.status | Should -Be 200
        $pause = @(Get-PQQueuePause)
        $pause | Should -HaveCount 1
        $pause[0].Type | Should -Be 'report'
        $pause[0].Reason | Should -Be 'paused from the dashboard'
        $page = Invoke-Browser click $Url (@{ hash = '#/'; selector = '#pauses tr[data-scope] button.action'; action = 'queue/resume' } | ConvertTo-Json -Compress)
        $page.status | Should -Be 200
        @(Get-PQQueuePause) | Should -HaveCount 0
    }

    It 'shows a key full of markup as its characters and runs none of it' {
        $page = Invoke-Browser hostile $Url $Hostile
        $page.cells | Should -Contain $Hostile
        $page.detailKey | Should -Be $Hostile
        $page.data | Should -Match ([regex]::Escape('<b>bold?</b>'))
        $page.images | Should -Be 0
        @($page.scripts) | Should -Be @('/assets/app.js')
        $page.pwned | Should -Be 0
        $page.dialogs | Should -BeNullOrEmpty
    }

    It 'shows no action when read-only and refuses a forged change' {
        $page = Invoke-Browser readonly $ReadOnlyUrl 'report-1'
        $page.mode | Should -Be 'read-only'
        $page.overviewActions | Should -Be 0
        $page.taskActions | Should -Be 0
        $page.forged.status | Should -Be 403
        $page.forged.body.error.id | Should -Be 'read_only'
        (Get-PQTask -Key 'report-1').Status | Should -Be Waiting
    }

    It 'refuses a form that another site posts to it' {
        $page = Invoke-Browser cross-site $Url 'report-2'
        $page.status | Should -Be 403
        $page.body | Should -Match 'forgery_check_failed'
        (Get-PQTask -Key 'report-2').Status | Should -Be Waiting
    }

    It 'asks for the access token, refuses a wrong one and keeps a session cookie, not the token' {
        $page = Invoke-Browser signin $TokenUrl $Token
        $page.signinShown | Should -BeTrue
        $page.deniedShown | Should -BeTrue
        $page.counts.Waiting | Should -BeGreaterThan 0
        $cookie = $page.cookies | Where-Object name -EQ "pq_session_$(([uri]$TokenUrl).Port)"
        $cookie.httpOnly | Should -BeTrue
        $cookie.sameSite | Should -Be 'Strict'
        $cookie.value | Should -Not -Be $Token
    }
}
