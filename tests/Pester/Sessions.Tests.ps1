# Who runs what, queue objects, config environments and completion, driven as a user would (issue 12, item 7):
# a worker shows Stopping as soon as SIGTERM reaches it and Dead a few missed beats after kill -9; Open-PQQueue
# leaves the session default alone; $env:PERFECTQUEUE_ENVIRONMENT picks the config environment; -User,
# -Environment and -Table complete. Waits poll for the event with a deadline, never fixed sleeps.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')

    function script:Get-Completion([string] $Line) {
        @((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches.CompletionText)
    }
    function script:New-Url { "sqlite:///$(Join-Path $TestDrive "q-$([guid]::NewGuid().ToString('N')).db")" }
    function script:Write-Config([string] $Name) {
        $path = Join-Path $TestDrive $Name
        Set-Content $path "development:`n  url: sqlite:///dev.db`n  table: dev_jobs`nstaging:`n  url: sqlite:///stage.db`n  table: stage_jobs`nproduction:`n  url: sqlite:///prod.db`n  table: prod_jobs`n"
        $path
    }
}

AfterAll {
    Disconnect-PQQueue
    Remove-Item Env:PERFECTQUEUE_ENVIRONMENT, Env:RAILS_ENV -ErrorAction Ignore
}

Describe 'A worker''s session state' -Skip:$IsWindows {
    BeforeEach {
        $script:Url = New-Url
        $script:Queue = Connect-PQQueue $Url -PassThru
        $Queue.Initialize()
    }

    It 'shows Stopping as soon as SIGTERM reaches the worker, while its running task drains, and the summary says graceful stop' {
        $go = Join-Path $TestDrive "go-$([guid]::NewGuid().ToString('N'))"
        $marker = Join-Path $TestDrive "runs-$([guid]::NewGuid().ToString('N')).txt"
        Submit-PQTask held work
        $child = Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$Url')
Start-PQWorker -Queue `$q -PollInterval 0.1 -HeartbeatInterval 0.2 -Handler @{ work = { param(`$Task) Add-Content '$marker' started; while (-not (Test-Path '$go')) { Start-Sleep -Milliseconds 50 }; 'done' } } 6>&1 | Out-String -Width 200
"@
        try {
            Wait-Until { (Get-Runs $marker).Count -eq 1 } 'the worker to start the task'
            Wait-Until { (Get-PQWorker).State -eq 'Alive' } 'the session'
            kill -TERM $child.Process.Id
            # Before the drain ends (the handler runs until $go exists), the session says Stopping.
            Wait-Until { (Get-PQWorker).State -eq 'Stopping' } 'the session to show Stopping' 15
            $child.Process.HasExited | Should -BeFalse
            (Get-PQWorker).StopRequested | Should -BeTrue
            New-Item -ItemType File $go | Out-Null
            $child.Process.WaitForExit(30000) | Should -BeTrue
            $child.Process.ExitCode | Should -Be 0
            $child.Output.Result | Should -Match 'StoppedBecause\s*:\s*graceful stop'
            $child.Output.Result | Should -Not -Match 'stop requested by Stop-PQWorker'
            (Get-PQTask held).Outcome | Should -Be 'Succeeded'
            Get-PQWorker | Should -BeNullOrEmpty
        }
        finally { $null = New-Item -ItemType File $go -Force; if (-not $child.Process.HasExited) { $child.Process.Kill() } }
    }

    It 'shows a kill -9''d worker as Dead after three missed beats (10 s floor), long before its alive time' {
        $child = Start-PwshScript @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$Url')
Start-PQWorker -Queue `$q -PollInterval 0.1 -HeartbeatInterval 0.2 -AliveTime 120 -Handler @{ work = { 'ok' } } 6>&1 | Out-String -Width 200
"@
        try {
            Wait-Until { Get-PQWorker } 'the worker to register'
            $alive = Get-PQWorker
            $alive.LastBeatAge | Should -BeOfType [timespan]
            $alive.LastBeatAge.TotalSeconds | Should -BeLessThan 10
            ($alive.AliveUntil - $alive.LastBeatAt).TotalSeconds | Should -Be 10   # 3 x 0.2 s, raised to the floor; not the 120 s alive time
            kill -KILL $child.Process.Id
            $child.Process.WaitForExit(10000) | Should -BeTrue
            $clock = [Diagnostics.Stopwatch]::StartNew()
            # The old rule (dead after alive_time) would take 120 s: the deadline is far below it.
            Wait-Until { (Get-PQWorker -Id $alive.Id).State -eq 'Dead' } 'the session to read as dead' 30
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 30
            $dead = Get-PQWorker -Id $alive.Id
            $dead.IsAlive | Should -BeFalse
            $dead.LastBeatAge.TotalSeconds | Should -BeGreaterOrEqual 10
            (Get-PQWorker -State Dead | Format-Table | Out-String -Width 200) | Should -Match 'LastBeatAge'
            (Get-PQWorker -State Dead | Format-Table | Out-String -Width 200) | Should -Match "$($alive.Id)\s.*\s1\ds\s*$"
        }
        finally { if (-not $child.Process.HasExited) { $child.Process.Kill() } }
    }
}

Describe 'Open-PQQueue' {
    BeforeEach {
        $script:DefaultUrl = New-Url
        $script:Default = Connect-PQQueue $DefaultUrl -PassThru
        Submit-PQTask in-default work
    }

    It 'is exported, writes a queue object, and leaves the session default unchanged' {
        (Get-Module PerfectQueue).ExportedCmdlets.Keys | Should -Contain 'Open-PQQueue'
        (Get-Command Open-PQQueue).OutputType.Type | Should -Contain ([PerfectQueue.Queue])
        $other = Open-PQQueue (New-Url) -Table other_jobs
        $other | Should -BeOfType [PerfectQueue.Queue]
        $other.Description | Should -Match 'table other_jobs'
        (Measure-PQQueue).Queue | Should -Be $Default.Description
        Submit-PQTask in-other work -Queue $other
        (Get-PQTask -Queue $other).Key | Should -Be 'in-other'
        (Get-PQTask).Key | Should -Be 'in-default'
        (Get-PQTask in-other -ErrorAction SilentlyContinue -ErrorVariable missing) | Should -BeNullOrEmpty
        $missing[0].FullyQualifiedErrorId | Should -BeLike 'TaskNotFound,*'
    }

    It 'has the parameter sets of Connect-PQQueue, from the same code' {
        $open = (Get-Command Open-PQQueue).ParameterSets | ForEach-Object { "$($_.Name): $(($_.Parameters.Name | Where-Object { $_ -notin [Management.Automation.PSCmdlet]::CommonParameters } | Sort-Object) -join ',')" }
        $connect = (Get-Command Connect-PQQueue).ParameterSets | ForEach-Object { "$($_.Name): $(($_.Parameters.Name | Where-Object { $_ -notin [Management.Automation.PSCmdlet]::CommonParameters -and $_ -ne 'PassThru' } | Sort-Object) -join ',')" }
        $open | Should -Be $connect
        [PerfectQueue.PowerShell.Commands.OpenPQQueueCommand].BaseType | Should -Be ([PerfectQueue.PowerShell.Commands.ConnectPQQueueCommand].BaseType)
    }

    It 'opens a config file''s environment and pipes into every -Queue' {
        $config = Write-Config 'open.yml'
        $staging = Open-PQQueue -ConfigPath $config -Environment staging
        $staging.Description | Should -Match 'stage\.db \(table stage_jobs\)'
        [pscustomobject]@{ Key = 'piped'; Type = 'work'; Queue = $staging } | Submit-PQTask
        Get-PQTask piped -Queue $staging | Request-PQCancel -PassThru | Select-Object -ExpandProperty Key | Should -Be 'piped'
        (Measure-PQQueue).Queue | Should -Be $Default.Description
    }

    It 'refuses bad input with InvalidConfiguration and keeps the session default' {
        { Open-PQQueue -Url 'mysqll://x/y' -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidConfiguration,*'
        { Open-PQQueue -Url (New-Url) -Table 'bad-name' -ErrorAction Stop } | Should -Throw
        (Measure-PQQueue).Queue | Should -Be $Default.Description
        (Get-PQTask).Key | Should -Be 'in-default'
    }
}

Describe 'The config file''s environment' {
    BeforeEach {
        Remove-Item Env:PERFECTQUEUE_ENVIRONMENT, Env:RAILS_ENV -ErrorAction Ignore
        $script:Config = Write-Config "env-$([guid]::NewGuid().ToString('N')).yml"
    }
    AfterEach { Remove-Item Env:PERFECTQUEUE_ENVIRONMENT, Env:RAILS_ENV -ErrorAction Ignore }

    It 'is development by default, and -Verbose says why' {
        $q = Open-PQQueue -ConfigPath $Config -Verbose 4>&1 | Tee-Object -Variable all | Where-Object { $_ -is [PerfectQueue.Queue] }
        $q.Description | Should -Match 'table dev_jobs'
        (($all | Where-Object { $_ -is [Management.Automation.VerboseRecord] }).Message -join "`n") | Should -Match 'environment development \(the default: neither -Environment, \$PERFECTQUEUE_ENVIRONMENT nor \$RAILS_ENV is set\)'
    }

    It 'comes from $env:PERFECTQUEUE_ENVIRONMENT, before $env:RAILS_ENV, unless -Environment is given' {
        $env:RAILS_ENV = 'production'
        (Open-PQQueue -ConfigPath $Config).Description | Should -Match 'table prod_jobs'
        $env:PERFECTQUEUE_ENVIRONMENT = 'staging'
        $verbose = Connect-PQQueue -ConfigPath $Config -Verbose 4>&1
        "$verbose" | Should -Match 'environment staging \(from \$PERFECTQUEUE_ENVIRONMENT\)'
        "$verbose" | Should -Match 'now use \S*stage\.db \(table stage_jobs\)'
        (Open-PQQueue -ConfigPath $Config -Environment development).Description | Should -Match 'table dev_jobs'
    }

    It 'names a missing environment, where the choice came from, and the file''s environments' {
        $env:PERFECTQUEUE_ENVIRONMENT = 'qa'
        $e = { Open-PQQueue -ConfigPath $Config -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidConfiguration,*' -PassThru
        "$e" | Should -Match "no environment 'qa' \(from \`$PERFECTQUEUE_ENVIRONMENT\)"
        "$e" | Should -Match 'development, staging, production'
    }

    It 'is chosen the same way by Start-PQWorker -ConfigPath, and the worker log says so' {
        # A database of its own: a queue opened by an earlier test (the process keeps it) may name a file TestDrive has deleted since.
        $own = Join-Path $TestDrive "own-$([guid]::NewGuid().ToString('N')).yml"
        Set-Content $own "development:`n  url: sqlite:///own-dev.db`nstaging:`n  url: sqlite:///own-$([guid]::NewGuid().ToString('N')).db`n"
        $env:PERFECTQUEUE_ENVIRONMENT = 'staging'
        $log = Join-Path $TestDrive "w-$([guid]::NewGuid().ToString('N')).log"
        $summary = Start-PQWorker -ConfigPath $own -UntilEmpty -PollInterval 0.1 -LogPath $log -Handler @{ work = { 'ok' } }
        $summary.Reason | Should -Be 'Empty'
        Get-Content $log -Raw | Should -Match "config .*: environment staging \(from \`$PERFECTQUEUE_ENVIRONMENT\)"
    }
}

Describe 'Tab completion of -User, -Environment and -Table' {
    BeforeAll {
        $script:Url = New-Url
        Connect-PQQueue $Url
        Submit-PQTask k1 work -User team-a
        Submit-PQTask k2 work -User team-b
        Submit-PQTask k3 work -User ops
        Initialize-PQQueue -Queue (Open-PQQueue $Url -Table nightly)
        $script:Config = Write-Config 'complete.yml'
    }

    It 'completes -User from the users of the queue''s tasks' {
        Get-Completion 'Get-PQTask -User team' | Should -Be @("'team-a'", "'team-b'")
        Get-Completion 'Submit-PQTask -Key x -Type work -User o' | Should -Be @("'ops'")
    }

    It 'completes -Environment from the file -ConfigPath names on the same line, in every command that takes it' {
        Get-Completion "Connect-PQQueue -ConfigPath '$Config' -Environment " | Should -Be @("'development'", "'production'", "'staging'")
        Get-Completion "Open-PQQueue -ConfigPath '$Config' -Environment st" | Should -Be @("'staging'")
        Get-Completion "Start-PQWorker -ConfigPath '$Config' -Environment pr" | Should -Be @("'production'")
        Get-Completion 'Open-PQQueue -ConfigPath ./no-such-file.yml -Environment ' | Should -BeNullOrEmpty   # not file names
    }

    It 'completes -Table from the queue tables of the database the line names, else of the session queue' {
        Get-Completion "Open-PQQueue -Url '$Url' -Table " | Should -Be @("'nightly'", "'perfectqueue'")
        Get-Completion "Connect-PQQueue '$Url' -Table ni" | Should -Be @("'nightly'")
        Get-Completion 'Open-PQQueue -Table night' | Should -Be @("'nightly'")   # the session's database
        Get-Completion "Open-PQQueue -Url '$(New-Url)' -Table " | Should -BeNullOrEmpty   # a database file that does not exist: nothing, and no file
    }
}
