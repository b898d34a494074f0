# The cmdlets driven as a user drives them, against the assembled module folder (PQ_MODULE_PATH) and a fresh
# SQLite file per Describe/Context (per test where tests change state). build.ps1 test runs this file in a
# child pwsh; $env:PQ_TEST_POSTGRES, when set, names a PostgreSQL server for the server-only cases.
#
# Tests whose comment starts "Regression:" pin a defect found while writing them (fixed since).

BeforeAll {
    $script:ModuleDir = $env:PQ_MODULE_PATH
    if (-not $ModuleDir -or -not (Test-Path (Join-Path $ModuleDir 'PerfectQueue.psd1'))) {
        throw "Set PQ_MODULE_PATH to the assembled module folder (run: dotnet pwsh ./build.ps1 test). Got: '$ModuleDir'."
    }
    $script:ModuleDir = (Resolve-Path $ModuleDir).ProviderPath
    Import-Module $ModuleDir -Force

    # A new SQLite file under $TestDrive; an absolute path gives the sqlite:////abs form.
    function script:New-PQTestUrl([string] $Name = 'queue') {
        'sqlite:///' + (Join-Path $TestDrive "$Name-$([guid]::NewGuid().ToString('N').Substring(0, 12)).db")
    }

    # Makes a fresh, empty SQLite queue the session's default and returns its URL (created here: connecting
    # and reading never create a queue other than the embedded default).
    function script:Connect-FreshQueue([string] $Name = 'queue') {
        $url = New-PQTestUrl $Name
        Connect-PQQueue $url
        Initialize-PQQueue
        $url
    }

    # The one error of a non-terminating failure, with its stable id, category and target.
    function script:Assert-PQError($Errors, [string] $Id, [string] $Category, $Target) {
        @($Errors).Count | Should -Be 1 -Because "exactly one $Id error was expected, got: $(@($Errors) -join ' | ')"
        $e = @($Errors)[0]
        $e.FullyQualifiedErrorId | Should -BeLike "$Id,*"
        "$($e.CategoryInfo.Category)" | Should -Be $Category
        if ($PSBoundParameters.ContainsKey('Target')) { $e.TargetObject | Should -Be $Target }
    }

    # Polls a condition (no fixed sleeps): returns when it holds, fails after the timeout.
    function script:Wait-Until([scriptblock] $Condition, [double] $TimeoutSeconds = 15, [string] $What = 'the condition') {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        while (-not (& $Condition)) {
            if ($clock.Elapsed.TotalSeconds -gt $TimeoutSeconds) { throw "Timed out after $TimeoutSeconds s waiting for $What." }
            Start-Sleep -Milliseconds 25
        }
    }

    # Compares task data with what was submitted: same keys, values and .NET types, recursively.
    function script:Assert-DataEqual($Actual, $Expected, [string] $Path = 'Data') {
        if ($Expected -is [System.Collections.IDictionary]) {
            $Actual -is [System.Collections.IDictionary] | Should -BeTrue -Because "$Path should be a dictionary"
            $Actual.Count | Should -Be $Expected.Count -Because "$Path should have $($Expected.Count) keys"
            foreach ($k in $Expected.Keys) {
                $Actual.Contains($k) | Should -BeTrue -Because "$Path should have the key '$k'"
                Assert-DataEqual $Actual[$k] $Expected[$k] "$Path.$k"
            }
        }
        elseif ($Expected -is [array]) {
            $Actual -is [array] | Should -BeTrue -Because "$Path should be an array"
            $Actual.Count | Should -Be $Expected.Count -Because "$Path should have $($Expected.Count) items"
            for ($i = 0; $i -lt $Expected.Count; $i++) { Assert-DataEqual $Actual[$i] $Expected[$i] "$Path[$i]" }
        }
        else {
            $Actual | Should -Be $Expected -Because $Path
            $Actual.GetType().FullName | Should -Be $Expected.GetType().FullName -Because "$Path keeps its type"
        }
    }

    function script:Remove-Ansi([string] $Text) { $Text -replace "`e\[[0-9;]*[A-Za-z]", '' }

    # A runspace of this process with the module imported: for Ctrl+C and concurrent waits.
    function script:New-ModuleShell {
        $ps = [powershell]::Create()
        $null = $ps.AddScript("Import-Module '$ModuleDir'").Invoke()
        $ps.Commands.Clear()
        $ps.Streams.ClearStreams()
        $ps
    }
}

AfterAll {
    Disconnect-PQQueue
}

Describe 'Connect-PQQueue' {
    It 'connects to a sqlite:/// URL with an absolute path, and -PassThru returns the queue' {
        $path = Join-Path $TestDrive 'url.db'
        $none = Connect-PQQueue "sqlite:///$path"
        $none | Should -BeNullOrEmpty -Because 'without -PassThru nothing is written'
        Submit-PQTask -Key k1 -Type t
        $path | Should -Exist
        (Get-PQTask).Key | Should -Be 'k1'

        $queue = Connect-PQQueue "sqlite:///$path" -PassThru
        $queue | Should -BeOfType ([PerfectQueue.Queue])
        $queue.Description | Should -BeLike "*$path*"
        (Get-PQTask).Key | Should -Be 'k1' -Because 'the same file holds the same tasks'
    }

    It 'connects with -ConnectionString and -Provider' {
        $path = Join-Path $TestDrive 'cs.db'
        $queue = Connect-PQQueue -ConnectionString "Data Source=$path" -Provider sqlite -PassThru
        $queue.Description | Should -BeLike "*$path*"
        Submit-PQTask -Key cs1 -Type t
        $path | Should -Exist
        (Get-PQTask -Key cs1).Queue.Description | Should -Be $queue.Description
    }

    It 'refuses an unknown -Provider' {
        { Connect-PQQueue -ConnectionString 'Data Source=x.db' -Provider oracle } | Should -Throw -ErrorId 'ParameterArgumentValidationError*'
    }

    It 'keeps tasks of another -Table apart' {
        $url = New-PQTestUrl
        $other = Connect-PQQueue $url -Table jobs2 -PassThru
        $other.Description | Should -BeLike '*(table jobs2)'
        Submit-PQTask -Key in-jobs2 -Type t
        Connect-PQQueue $url
        { Get-PQTask } | Should -Throw -ErrorId 'QueueNotInitialized,*' -Because 'the default table perfectqueue was never created'
        Connect-PQQueue $url -Table jobs2
        (Get-PQTask).Key | Should -Be 'in-jobs2'
    }

    It 'resolves a relative sqlite path against PowerShell''s current location, not the process directory' {
        $folder = Join-Path $TestDrive 'relative'
        $null = New-Item -ItemType Directory $folder
        [Environment]::CurrentDirectory | Should -Not -Be $folder
        Push-Location $folder
        try {
            $queue = Connect-PQQueue 'sqlite:///rel.db' -PassThru
            Submit-PQTask -Key rel1 -Type t
        }
        finally { Pop-Location }
        Join-Path $folder 'rel.db' | Should -Exist
        $queue.Description | Should -BeLike "*$(Join-Path $folder 'rel.db')*"
        Join-Path ([Environment]::CurrentDirectory) 'rel.db' | Should -Not -Exist
    }

    Context 'with -ConfigPath' {
        BeforeAll {
            $script:DevPath = Join-Path $TestDrive 'dev.db'
            $script:ProdPath = Join-Path $TestDrive 'prod.db'
            $script:Yaml = Join-Path $TestDrive 'perfectqueue.yml'
            @"
development:
  type: rdb_compat
  url: sqlite:///$DevPath
  alive_time: 42
production:
  url: sqlite:///$ProdPath
  table: prodtasks
  retention_time: 3600
"@ | Set-Content $Yaml
            $script:Json = Join-Path $TestDrive 'perfectqueue.json'
            @{
                development = @{ url = "sqlite:///$DevPath" }
                production  = @{ url = "sqlite:///$ProdPath"; table = 'jsontasks'; alive_time = 7 }
            } | ConvertTo-Json | Set-Content $Json
        }

        It 'reads the development environment of a YAML file by default' {
            $queue = Connect-PQQueue -ConfigPath $Yaml -PassThru
            $queue.Description | Should -BeLike "*$DevPath (table perfectqueue)"
            $queue.Config.AliveTime | Should -Be ([TimeSpan]::FromSeconds(42)) -Because 'durations in the file are seconds'
            Submit-PQTask -Key dev1 -Type t
            $DevPath | Should -Exist
        }

        It 'reads the environment named by -Environment from a YAML file' {
            $queue = Connect-PQQueue -ConfigPath $Yaml -Environment production -PassThru
            $queue.Description | Should -BeLike "*$ProdPath (table prodtasks)"
            $queue.Config.RetentionTime | Should -Be ([TimeSpan]::FromHours(1))
            Submit-PQTask -Key prod1 -Type t
            (Get-PQTask).Key | Should -Be 'prod1'
        }

        It 'reads a JSON file, and -Table overrides the file''s table' {
            $queue = Connect-PQQueue -ConfigPath $Json -Environment production -PassThru
            $queue.Description | Should -BeLike "*$ProdPath (table jsontasks)"
            $queue.Config.AliveTime | Should -Be ([TimeSpan]::FromSeconds(7))
            $over = Connect-PQQueue -ConfigPath $Json -Environment production -Table overridden -PassThru
            $over.Description | Should -BeLike "*$ProdPath (table overridden)"
        }

        It 'resolves a relative -ConfigPath against PowerShell''s current location' {
            Push-Location $TestDrive
            try { $queue = Connect-PQQueue -ConfigPath 'perfectqueue.yml' -Environment production -PassThru }
            finally { Pop-Location }
            $queue.Description | Should -BeLike '*(table prodtasks)'
        }

        It 'fails with InvalidConfiguration naming a bad key and the file, and keeps the session''s queue' {
            Connect-FreshQueue | Out-Null
            Submit-PQTask -Key before-bad-config -Type t
            $bad = Join-Path $TestDrive 'bad.yml'
            "development:`n  url: sqlite:///$DevPath`n  alive_tyme: 30`n" | Set-Content $bad
            $caught = $null
            try { Connect-PQQueue -ConfigPath $bad; 'not thrown' }
            catch [PerfectQueue.ConfigException] { $caught = $_ }
            $caught | Should -Not -BeNullOrEmpty -Because 'a bad config is a terminating error catchable as ConfigException'
            $caught.FullyQualifiedErrorId | Should -BeLike 'InvalidConfiguration,*'
            "$($caught.CategoryInfo.Category)" | Should -Be 'InvalidArgument'
            $caught.Exception.Message | Should -Match 'alive_tyme'
            $caught.Exception.Message | Should -Match ([regex]::Escape($bad))
            $caught.Exception.ConfigKey | Should -Be 'alive_tyme'
            (Get-PQTask).Key | Should -Be 'before-bad-config' -Because 'a failed Connect-PQQueue leaves the session default as it was'
        }

        It 'fails with InvalidConfiguration for an environment the file lacks' {
            $caught = $null
            try { Connect-PQQueue -ConfigPath $Yaml -Environment staging } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -BeLike 'InvalidConfiguration,*'
            $caught.Exception.Message | Should -Match 'staging'
            $caught.Exception.Message | Should -Match 'production'
        }

        It 'fails with InvalidConfiguration for a missing file' {
            $caught = $null
            try { Connect-PQQueue -ConfigPath (Join-Path $TestDrive 'nope.yml') } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -BeLike 'InvalidConfiguration,*'
            $caught.Exception.Message | Should -Match 'nope\.yml'
        }
    }

    It 'fails with InvalidConfiguration for a URL that is no queue URL' {
        $caught = $null
        try { Connect-PQQueue 'oracle://host/db' } catch [PerfectQueue.ConfigException] { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -BeLike 'InvalidConfiguration,*'
        "$($caught.CategoryInfo.Category)" | Should -Be 'InvalidArgument'
    }

    # Regression: a Queue handed out by -PassThru is disposed as soon as the session connects elsewhere; using it
    # then fails with a raw System.ObjectDisposedException (no PerfectQueue error id).
    It 'keeps a queue returned by -PassThru usable after the session connects to another queue' {
        $urlB = New-PQTestUrl 'b'
        $b = Connect-PQQueue $urlB -PassThru
        Connect-FreshQueue 'a' | Out-Null
        Submit-PQTask -Queue $b -Key in-b -Type t -ErrorVariable err -ErrorAction SilentlyContinue
        $err | Should -BeNullOrEmpty -Because "the queue object the user holds should still work (got: $($err.FullyQualifiedErrorId))"
        (Get-PQTask -Queue $b -Key in-b -ErrorAction SilentlyContinue).Key | Should -Be 'in-b'
    }
}

Describe 'Disconnect-PQQueue' {
    It 'falls back to $env:PERFECTQUEUE_URL' {
        $saved = $env:PERFECTQUEUE_URL
        try {
            $envUrl = New-PQTestUrl 'env'
            $env:PERFECTQUEUE_URL = $envUrl
            $sessionUrl = Connect-FreshQueue 'session'
            Submit-PQTask -Key in-session -Type t

            Disconnect-PQQueue
            Submit-PQTask -Key in-env -Type t
            $tasks = @(Get-PQTask)
            $tasks.Key | Should -Be @('in-env')
            $tasks[0].Queue.Description | Should -BeLike "*$($envUrl.Substring('sqlite:///'.Length))*"

            Connect-PQQueue $sessionUrl
            (Get-PQTask).Key | Should -Be 'in-session' -Because 'the session file never saw in-env'
        }
        finally {
            $env:PERFECTQUEUE_URL = $saved
            Disconnect-PQQueue
        }
    }

    It 'writes nothing and does not fail when no queue is connected' {
        Disconnect-PQQueue
        Disconnect-PQQueue | Should -BeNullOrEmpty
    }
}

Describe 'Initialize-PQQueue' {
    BeforeEach {
        Connect-FreshQueue | Out-Null
        Submit-PQTask -Key keep1 -Type t
        Submit-PQTask -Key keep2 -Type t
    }

    It 'is idempotent without -Force: tasks stay' {
        Initialize-PQQueue
        (Get-PQTask).Count | Should -Be 2
    }

    It 'drops every task with -Force -Confirm:$false, and -PassThru returns the queue' {
        $queue = Initialize-PQQueue -Force -Confirm:$false -PassThru
        $queue | Should -BeOfType ([PerfectQueue.Queue])
        Get-PQTask | Should -BeNullOrEmpty
        Submit-PQTask -Key keep1 -Type t -PassThru | Should -Not -BeNullOrEmpty -Because 'the table exists anew, and the key is free again'
    }

    It 'changes nothing with -Force -WhatIf' {
        Initialize-PQQueue -Force -WhatIf
        (Get-PQTask).Key | Should -Be @('keep1', 'keep2')
    }

    It 'asks before -Force drops tasks (a host that cannot prompt gets an error, and nothing is dropped)' {
        $url = Connect-FreshQueue
        Submit-PQTask -Key precious -Type t
        $ps = New-ModuleShell
        try {
            $null = $ps.AddScript("Connect-PQQueue '$url'; Initialize-PQQueue -Force").Invoke()
            $ps.Streams.Error.Count | Should -BeGreaterThan 0
        }
        finally { $ps.Dispose() }
        (Get-PQTask).Key | Should -Be 'precious'
    }

    Context 'on a queue whose table does not exist' {
        BeforeEach {
            $script:NoTablePath = Join-Path $TestDrive "notable-$([guid]::NewGuid().ToString('N')).db"
            $config = Join-Path $TestDrive 'no-auto.yml'
            "development:`n  url: sqlite:///$NoTablePath`n  auto_initialize: false`n" | Set-Content $config
            Connect-PQQueue -ConfigPath $config
        }

        It 'makes Get-PQTask and Submit-PQTask fail with QueueNotInitialized naming Initialize-PQQueue' {
            $caught = $null
            try { Get-PQTask } catch [PerfectQueue.QueueNotInitializedException] { $caught = $_ }
            $caught | Should -Not -BeNullOrEmpty -Because 'a missing table is a terminating error catchable by type'
            $caught.FullyQualifiedErrorId | Should -BeLike 'QueueNotInitialized,*'
            "$($caught.CategoryInfo.Category)" | Should -Be 'ResourceUnavailable'
            $caught.Exception.Message | Should -Match 'Initialize-PQQueue'
            $caught.ErrorDetails.RecommendedAction | Should -Match 'Initialize-PQQueue'

            $caught = $null
            try { Submit-PQTask -Key k -Type t } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -BeLike 'QueueNotInitialized,*'
        }

        It 'changes nothing with -WhatIf, then creates the table' {
            Initialize-PQQueue -WhatIf
            { Get-PQTask } | Should -Throw -ErrorId 'QueueNotInitialized,*'
            Initialize-PQQueue
            Get-PQTask | Should -BeNullOrEmpty
            Submit-PQTask -Key now-ok -Type t
            (Get-PQTask).Key | Should -Be 'now-ok'
        }
    }

    It 'reports QueueNotInitialized for a server queue without its table (PostgreSQL)' {
        if (-not $env:PQ_TEST_POSTGRES) {
            if ($env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI.' }
            Set-ItResult -Skipped -Because 'no PostgreSQL here (set PQ_TEST_POSTGRES; build.ps1 test starts one when installed)'
            return
        }
        $table = 'pester_noinit_' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        Connect-PQQueue $env:PQ_TEST_POSTGRES -Table $table
        try {
            $caught = $null
            try { Get-PQTask } catch [PerfectQueue.QueueNotInitializedException] { $caught = $_ }
            $caught | Should -Not -BeNullOrEmpty
            $caught.FullyQualifiedErrorId | Should -BeLike 'QueueNotInitialized,*'
            "$($caught.CategoryInfo.Category)" | Should -Be 'ResourceUnavailable'
            $caught.Exception.Message | Should -Match 'Initialize-PQQueue'
        }
        finally { Disconnect-PQQueue }
    }
}

Describe 'Submit-PQTask' {
    BeforeEach { Connect-FreshQueue | Out-Null }

    It 'stores a waiting task and writes nothing without -PassThru' {
        Submit-PQTask -Key s1 -Type backup | Should -BeNullOrEmpty
        $t = Get-PQTask -Key s1
        $t.Type | Should -Be 'backup'
        $t.Status | Should -Be 'Waiting'
        $t.User | Should -BeNullOrEmpty
        $t.Data.Count | Should -Be 0
    }

    It 'writes the stored task with -PassThru' {
        $t = Submit-PQTask s2 backup @{ db = 'sales' } -User team-a -MaxRunning 3 -PassThru
        $t | Should -BeOfType ([PerfectQueue.PowerShell.PQTask])
        $t.Key | Should -Be 's2'
        $t.User | Should -Be 'team-a'
        $t.MaxRunning | Should -Be 3
        $t.Data.db | Should -Be 'sales'
        (Get-Command Submit-PQTask).OutputType.Type | Should -Contain ([PerfectQueue.PowerShell.PQTask])
    }

    It 'takes -Delay 60 as seconds: the task is Scheduled about a minute ahead' {
        $before = Get-Date
        $t = Submit-PQTask -Key d1 -Type t -Delay 60 -PassThru
        $t.Status | Should -Be 'Scheduled'
        ($t.Timeout - $before).TotalSeconds | Should -BeGreaterThan 50
        ($t.Timeout - $before).TotalSeconds | Should -BeLessThan 70
        Receive-PQTask | Should -BeNullOrEmpty -Because 'a scheduled task is not due'
    }

    It 'takes -Delay as a TimeSpan too' {
        $t = Submit-PQTask -Key d2 -Type t -Delay ([TimeSpan]::FromMinutes(2)) -PassThru
        ($t.Timeout - (Get-Date)).TotalSeconds | Should -BeGreaterThan 100
    }

    It 'takes -RunAt: future is Scheduled at that local time, past is Waiting' {
        $at = (Get-Date).AddMinutes(10)
        $t = Submit-PQTask -Key r1 -Type t -RunAt $at -PassThru
        $t.Status | Should -Be 'Scheduled'
        [Math]::Abs(($t.Timeout - $at).TotalSeconds) | Should -BeLessThan 1
        (Submit-PQTask -Key r2 -Type t -RunAt (Get-Date).AddMinutes(-1) -PassThru).Status | Should -Be 'Waiting'
    }

    It 'refuses -RunAt together with -Delay' {
        { Submit-PQTask -Key both -Type t -RunAt (Get-Date) -Delay 5 } | Should -Throw -ErrorId 'AmbiguousParameterSet*'
    }

    It 'applies -MaxRunning per -User: no more of that user''s tasks run at once' {
        Submit-PQTask -Key u1 -Type t -User team-a -MaxRunning 1
        Submit-PQTask -Key u2 -Type t -User team-a -MaxRunning 1
        Submit-PQTask -Key o1 -Type t -User team-b
        $got = Receive-PQTask -Count 3 -AliveTime 30
        @($got).Count | Should -Be 2
        @($got | Where-Object User -EQ 'team-a').Count | Should -Be 1
        (Get-PQTask -Key u1).MaxRunning | Should -Be 1
        (Get-PQTask -User team-a -Status Waiting).Count | Should -Be 1
    }

    It 'stores data gzip-compressed with -Compress and reads it back' {
        $t = Submit-PQTask -Key z1 -Type t -Data @{ text = 'x' * 500; n = 5 } -Compress -PassThru
        $t.Compressed | Should -BeTrue
        (Get-PQTask -Key z1).Data.text | Should -Be ('x' * 500)
        (Submit-PQTask -Key z2 -Type t -Data @{ n = 1 } -PassThru).Compressed | Should -BeFalse
        (Receive-PQTask).Data.n | Should -Be 5
    }

    It 'takes data as a <Name>' -ForEach @(
        @{ Name = 'hashtable'; Data = @{ db = 'sales'; n = 3 } }
        @{ Name = 'PSCustomObject'; Data = [pscustomobject]@{ db = 'sales'; n = 3 } }
        @{ Name = 'JSON text'; Data = '{"db":"sales","n":3}' }
    ) {
        Submit-PQTask -Key data -Type t -Data $Data
        $t = Get-PQTask -Key data
        $t.Data.db | Should -Be 'sales'
        $t.Data.n | Should -Be 3
        $t.Data.Count | Should -Be 2
    }

    It 'refuses data that is not an object (<Name>) with InvalidTaskData, and stores nothing' -ForEach @(
        @{ Name = 'an array'; Data = @(1, 2) }
        @{ Name = 'a number'; Data = 42 }
        @{ Name = 'JSON array text'; Data = '[1,2]' }
        @{ Name = 'text that is not JSON'; Data = 'db=sales' }
    ) {
        Submit-PQTask -Key bad -Type t -Data $Data -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err InvalidTaskData InvalidArgument -Target 'bad'
        Test-PQTask -Key bad | Should -BeFalse
    }

    It 'reports a bad item in a pipe and stores the others' {
        @(
            [pscustomobject]@{ Key = 'ok1'; Type = 't'; Data = @{ a = 1 } }
            [pscustomobject]@{ Key = 'bad'; Type = 't'; Data = @(1, 2, 3) }
            [pscustomobject]@{ Key = 'ok2'; Type = 't' }
        ) | Submit-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err InvalidTaskData InvalidArgument -Target 'bad'
        (Get-PQTask).Key | Should -Be @('ok1', 'ok2')
    }

    It 'refuses a duplicate key with a non-terminating TaskAlreadyExists, also after the task finished' {
        Submit-PQTask -Key dup -Type t
        Submit-PQTask -Key dup -Type other -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err TaskAlreadyExists ResourceExists -Target 'dup'
        (Get-PQTask -Key dup).Type | Should -Be 't'

        Complete-PQTask -Key dup
        Submit-PQTask -Key dup -Type t -ErrorVariable err2 -ErrorAction SilentlyContinue
        Assert-PQError $err2 TaskAlreadyExists ResourceExists -Target 'dup'
    }

    It 'throws a duplicate as AlreadyExistsException with -ErrorAction Stop' {
        Submit-PQTask -Key dup -Type t
        $caught = $null
        try { Submit-PQTask -Key dup -Type t -ErrorAction Stop } catch [PerfectQueue.AlreadyExistsException] { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
        $caught.Exception -is [PerfectQueue.IIdempotentError] | Should -BeTrue
    }

    It 'changes nothing with -WhatIf' {
        Submit-PQTask -Key wi -Type t -WhatIf
        Test-PQTask -Key wi | Should -BeFalse
        @([pscustomobject]@{ Key = 'wi2'; Type = 't' }) | Submit-PQTask -WhatIf
        Get-PQTask | Should -BeNullOrEmpty
    }
}

Describe 'Submit-PQTask pipelines' {
    BeforeEach { Connect-FreshQueue | Out-Null }

    It 'submits Import-Csv rows by property name; a repeated key gives exactly one TaskAlreadyExists' {
        $csv = Join-Path $TestDrive "jobs-$([guid]::NewGuid().ToString('N')).csv"
        @'
Key,Type,User,Delay,MaxRunning
job-1,backup,team-a,0,2
job-2,report,team-b,120,1
job-1,backup,team-a,0,2
job-3,backup,team-a,0,2
'@ | Set-Content $csv
        Import-Csv $csv | Submit-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err TaskAlreadyExists ResourceExists -Target 'job-1'
        $tasks = Get-PQTask
        $tasks.Key | Should -Be @('job-1', 'job-2', 'job-3')
        $job2 = $tasks | Where-Object Key -EQ 'job-2'
        $job2.Type | Should -Be 'report'
        $job2.User | Should -Be 'team-b'
        $job2.Status | Should -Be 'Scheduled' -Because 'Delay 120 from the CSV is seconds'
        $job2.MaxRunning | Should -Be 1
        ($tasks | Where-Object Key -EQ 'job-3').Status | Should -Be 'Waiting'
    }

    # Regression: an empty CSV cell for an optional column (Delay, MaxRunning) fails parameter binding for that row
    # ('' is not a duration / 0 is below the range) instead of meaning "not given".
    It 'treats empty optional CSV cells (Delay, MaxRunning) as not given' {
        $csv = Join-Path $TestDrive "sparse-$([guid]::NewGuid().ToString('N')).csv"
        @'
Key,Type,User,Delay,MaxRunning
sp-1,backup,,,
sp-2,backup,team-a,60,
sp-3,backup,team-a,,2
'@ | Set-Content $csv
        Import-Csv $csv | Submit-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        $err | Should -BeNullOrEmpty -Because "empty cells should mean 'not given' (got: $($err.FullyQualifiedErrorId -join ', '))"
        (Get-PQTask).Key | Should -Be @('sp-1', 'sp-2', 'sp-3')
    }

    It 'takes -Timeout as the execution limit, shown as ExecutionTimeout; Timeout stays the due time' {
        Submit-PQTask -Key lim-1 -Type t -Timeout 30
        Submit-PQTask -Key lim-2 -Type t -Timeout ([TimeSpan]::FromMinutes(10))
        Submit-PQTask -Key lim-3 -Type t
        $tasks = Get-PQTask
        ($tasks | Where-Object Key -EQ 'lim-1').ExecutionTimeout | Should -Be ([TimeSpan]::FromSeconds(30))
        ($tasks | Where-Object Key -EQ 'lim-1').ExecutionTimeout.ToString() | Should -Be '00:00:30'
        ($tasks | Where-Object Key -EQ 'lim-2').ExecutionTimeout | Should -Be ([TimeSpan]::FromMinutes(10))
        ($tasks | Where-Object Key -EQ 'lim-3').ExecutionTimeout | Should -BeNullOrEmpty
        ($tasks | Where-Object Key -EQ 'lim-1').Timeout | Should -BeOfType [datetime] -Because 'Timeout is the original due-time column'
        (Receive-PQTask -Count 3 | Where-Object Key -EQ 'lim-1').Task.Timeout | Should -Be ([TimeSpan]::FromSeconds(30)) -Because 'the acquired task carries the limit (AcquiredTask.Timeout)'
        $list = Remove-Ansi (Get-PQTask -Key lim-1 | Format-List | Out-String -Width 200)
        $list | Should -Match 'ExecutionTimeout\s*:\s*00:00:30'
    }

    It 'refuses -Timeout <Value> with a clear error and stores nothing' -ForEach @(
        @{ Value = 0; Id = 'InvalidArgument'; Message = 'must be more than zero and at most 365 days' }
        @{ Value = -5; Id = 'InvalidArgument'; Message = 'must be more than zero and at most 365 days' }
        @{ Value = 'abc'; Id = 'ParameterArgumentTransformationError'; Message = "'abc' is not a duration" }
    ) {
        $errors = @()
        try { Submit-PQTask -Key bad-lim -Type t -Timeout $Value -ErrorVariable +errors -ErrorAction SilentlyContinue } catch { $errors += $_ }
        @($errors).Count | Should -Be 1
        @($errors)[0].FullyQualifiedErrorId | Should -BeLike "$Id*"
        "$(@($errors)[0])" | Should -Match $Message
        Get-PQTask | Should -BeNullOrEmpty
    }

    It 'binds Timeout from a CSV column by property name; an empty cell is no limit' {
        $csv = Join-Path $TestDrive "limits-$([guid]::NewGuid().ToString('N')).csv"
        @'
Key,Type,Timeout
csv-1,backup,30
csv-2,backup,
csv-3,backup,00:05:00
'@ | Set-Content $csv
        Import-Csv $csv | Submit-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        $err | Should -BeNullOrEmpty
        $tasks = Get-PQTask
        $tasks.Key | Should -Be @('csv-1', 'csv-2', 'csv-3')
        ($tasks | Where-Object Key -EQ 'csv-1').ExecutionTimeout | Should -Be ([TimeSpan]::FromSeconds(30))
        ($tasks | Where-Object Key -EQ 'csv-2').ExecutionTimeout | Should -BeNullOrEmpty
        ($tasks | Where-Object Key -EQ 'csv-3').ExecutionTimeout | Should -Be ([TimeSpan]::FromMinutes(5))
    }

    It 'resubmits tasks piped from Get-PQTask: their Timeout (the due time, a DateTime) is not taken for the execution limit' {
        $url = New-PQTestUrl 'other'
        $other = [PerfectQueue.Queue]::Open($url)
        $other.Initialize()
        Submit-PQTask -Key again-1 -Type t -Data @{ n = 1 } -Queue $other
        Get-PQTask -Queue $other | Select-Object Key, Type, Data, Timeout | Submit-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        $err | Should -BeNullOrEmpty
        $copy = Get-PQTask -Key again-1
        $copy.Data.n | Should -Be 1
        $copy.ExecutionTimeout | Should -BeNullOrEmpty
        $other.Dispose()
    }

    It 'writes only the stored tasks with -PassThru when a piped key repeats' {
        $out = @('p1', 'p2', 'p1', 'p3') | ForEach-Object { [pscustomobject]@{ Key = $_; Type = 't' } } |
            Submit-PQTask -PassThru -ErrorVariable err -ErrorAction SilentlyContinue
        $out.Key | Should -Be @('p1', 'p2', 'p3')
        Assert-PQError $err TaskAlreadyExists ResourceExists -Target 'p1'
    }

    # Regression: Submit-PQTask checks only -Data per item in ProcessRecord; everything else the engine refuses
    # (a negative -Delay, a blank key or type) is found when the batch is flushed, so one bad row fails the
    # whole batch: nothing is stored, and the one error names the queue instead of the bad key.
    It 'refuses a bad piped item (<Name>) on its own, and stores the rest of the batch' -ForEach @(
        @{ Name = 'a negative Delay'; Bad = [pscustomobject]@{ Key = 'bad'; Type = 't'; Delay = -5 }; Target = 'bad' }
        @{ Name = 'a blank Key'; Bad = [pscustomobject]@{ Key = '   '; Type = 't' }; Target = '   ' }
        @{ Name = 'a blank Type'; Bad = [pscustomobject]@{ Key = 'bad'; Type = '   ' }; Target = 'bad' }
    ) {
        @(
            [pscustomobject]@{ Key = 'good-1'; Type = 't' }
            $Bad
            [pscustomobject]@{ Key = 'good-2'; Type = 't' }
        ) | Submit-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        (Get-PQTask).Key | Should -Be @('good-1', 'good-2') -Because 'one bad row must not lose the rest of its batch'
        @($err).Count | Should -Be 1
        @($err)[0].TargetObject | Should -Be $Target -Because 'the error names the bad item'
    }

    It 'stores every task of a big pipe in batches (-BatchSize 500)' {
        1..1200 | ForEach-Object { [pscustomobject]@{ Key = "big-$_"; Type = 'bulk' } } | Submit-PQTask -BatchSize 500
        $m = Measure-PQQueue
        $m.Total | Should -Be 1200
        $m.Waiting | Should -Be 1200
        (Get-PQTask -Key big-1, big-600, big-1200).Count | Should -Be 3
    }

    It 'submits piped items to the -Queue each one names' {
        $other = [PerfectQueue.Queue]::Open((New-PQTestUrl 'other'))
        try {
            @(
                [pscustomobject]@{ Key = 'here-1'; Type = 't' }
                [pscustomobject]@{ Key = 'there-1'; Type = 't'; Queue = $other }
                [pscustomobject]@{ Key = 'here-2'; Type = 't' }
            ) | Submit-PQTask
            (Get-PQTask).Key | Should -Be @('here-1', 'here-2')
            (Get-PQTask -Queue $other).Key | Should -Be 'there-1'
        }
        finally { $other.Dispose() }
    }
}

Describe 'Get-PQTask and Test-PQTask' {
    BeforeAll {
        Connect-FreshQueue | Out-Null
        Submit-PQTask -Key g1 -Type backup -User team-a
        Submit-PQTask -Key g2 -Type report -User team-b
        Submit-PQTask -Key g3 -Type backup -User team-b -Delay 300
        Submit-PQTask -Key g4 -Type report
        Complete-PQTask -Key g4
    }

    It 'lists every task, oldest first' {
        $all = Get-PQTask
        $all.Key | Should -Be @('g1', 'g2', 'g3', 'g4')
        $all | ForEach-Object { $_ | Should -BeOfType ([PerfectQueue.PowerShell.PQTask]) }
    }

    It 'filters by -Key' {
        (Get-PQTask -Key g2, g3).Key | Should -Be @('g2', 'g3')
        (Get-PQTask g1).Key | Should -Be 'g1'
    }

    It 'filters by -Status' {
        (Get-PQTask -Status Waiting).Key | Should -Be @('g1', 'g2')
        (Get-PQTask -Status Scheduled).Key | Should -Be 'g3'
        (Get-PQTask -Status Finished).Key | Should -Be 'g4'
        (Get-PQTask -Status Scheduled, Finished).Key | Should -Be @('g3', 'g4')
        { Get-PQTask -Status Pending } | Should -Throw -ErrorId 'CannotConvertArgumentNoMessage*'
    }

    It 'filters by -Type and -User, together' {
        (Get-PQTask -Type backup).Key | Should -Be @('g1', 'g3')
        (Get-PQTask -User team-b).Key | Should -Be @('g2', 'g3')
        (Get-PQTask -Type backup -User team-b).Key | Should -Be 'g3'
        Get-PQTask -Type nothing-of-this-type | Should -BeNullOrEmpty
    }

    It 'limits with -First' {
        (Get-PQTask -First 2).Key | Should -Be @('g1', 'g2')
        (Get-PQTask -Type report -First 1).Key | Should -Be 'g2'
    }

    It 'reports an unknown key as a non-terminating TaskNotFound and still lists the others' {
        $found = Get-PQTask -Key g1, missing -ErrorVariable err -ErrorAction SilentlyContinue
        $found.Key | Should -Be 'g1'
        Assert-PQError $err TaskNotFound ObjectNotFound -Target 'missing'
    }

    It 'throws TaskNotFound as NotFoundException with -ErrorAction Stop' {
        $caught = $null
        try { Get-PQTask -Key missing -ErrorAction Stop } catch [PerfectQueue.NotFoundException] { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -BeLike 'TaskNotFound,*'
    }

    It 'tests whether keys exist (finished tasks too)' {
        Test-PQTask -Key g1 | Should -BeTrue
        Test-PQTask -Key g4 | Should -BeTrue -Because 'a finished task exists until its retention ends'
        Test-PQTask -Key missing | Should -BeFalse
        Test-PQTask -Key g1, missing, g3 | Should -Be @($true, $false, $true)
        [pscustomobject]@{ Key = 'g2' } | Test-PQTask | Should -BeTrue
        (Get-Command Test-PQTask).OutputType.Type | Should -Contain ([bool])
    }
}

Describe 'Request-PQCancel' {
    BeforeEach { Connect-FreshQueue | Out-Null }

    It 'finishes a waiting task as Cancelled at once' {
        Submit-PQTask -Key w1 -Type t
        $t = Request-PQCancel -Key w1 -PassThru
        $t.Status | Should -Be 'Finished'
        $t.Outcome | Should -Be 'Cancelled'
        (Get-PQTask -Key w1).Outcome | Should -Be 'Cancelled'
        Receive-PQTask | Should -BeNullOrEmpty -Because 'a cancelled task is never handed out'
    }

    It 'finishes a scheduled task as Cancelled at once' {
        Submit-PQTask -Key s1 -Type t -Delay 300
        $t = Request-PQCancel s1 -PassThru
        $t.Status | Should -Be 'Finished'
        $t.Outcome | Should -Be 'Cancelled'
    }

    It 'marks a running task CancelRequested, and its holder''s heartbeat says so' {
        Submit-PQTask -Key r1 -Type t
        $held = Receive-PQTask -AliveTime 30
        $held.Key | Should -Be 'r1'
        Request-PQCancel -Key r1 | Should -BeNullOrEmpty -Because 'without -PassThru nothing is written'
        (Request-PQCancel -Key r1 -PassThru).Status | Should -Be 'CancelRequested' -Because 'asking twice is harmless while it runs'
        $t = Get-PQTask -Key r1
        $t.Status | Should -Be 'CancelRequested'
        $t.CancelRequested | Should -BeTrue
        $held.Heartbeat() | Should -Be 'CancelRequested'
        $held.IsCancellationRequested | Should -BeTrue
        $held | Complete-PQTask -Outcome Cancelled -Message 'stopped on request'
        $t = Get-PQTask -Key r1
        $t.Status | Should -Be 'Finished'
        $t.Outcome | Should -Be 'Cancelled'
        $t.Message | Should -Be 'stopped on request'
    }

    It 'reports an unknown key as TaskNotFound and goes on with the other keys' {
        Submit-PQTask -Key w2 -Type t
        Request-PQCancel -Key missing, w2 -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err TaskNotFound ObjectNotFound -Target 'missing'
        (Get-PQTask -Key w2).Outcome | Should -Be 'Cancelled'
    }

    It 'reports a finished task as TaskAlreadyFinished' {
        Submit-PQTask -Key f1 -Type t
        Complete-PQTask -Key f1
        Request-PQCancel -Key f1 -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err TaskAlreadyFinished InvalidOperation -Target 'f1'
        (Get-PQTask -Key f1).Outcome | Should -Be 'ForceFinished'
    }

    It 'cancels what Get-PQTask -Status Waiting pipes, and nothing else' {
        Submit-PQTask -Key p1 -Type t
        Submit-PQTask -Key p2 -Type t
        Submit-PQTask -Key later -Type t -Delay 300
        Get-PQTask -Status Waiting | Request-PQCancel
        (Get-PQTask -Key p1, p2).Outcome | Should -Be @('Cancelled', 'Cancelled')
        (Get-PQTask -Key later).Status | Should -Be 'Scheduled'
    }

    It 'changes nothing with -WhatIf' {
        Submit-PQTask -Key w3 -Type t
        Request-PQCancel -Key w3 -WhatIf
        (Get-PQTask -Key w3).Status | Should -Be 'Waiting'
        $held = Receive-PQTask -AliveTime 30
        $held.Key | Should -Be 'w3'
        Get-PQTask -Key w3 | Request-PQCancel -WhatIf
        (Get-PQTask -Key w3).Status | Should -Be 'Running'
        $held.Heartbeat() | Should -Be 'Alive'
    }
}

Describe 'Complete-PQTask' {
    BeforeEach { Connect-FreshQueue | Out-Null }

    It 'force-finishes by key, with -Message and -PassThru' {
        Submit-PQTask -Key k1 -Type t
        $t = Complete-PQTask -Key k1 -Message 'done by hand' -PassThru
        $t | Should -BeOfType ([PerfectQueue.PowerShell.PQTask])
        $t.Status | Should -Be 'Finished'
        $t.Outcome | Should -Be 'ForceFinished'
        $t.Message | Should -Be 'done by hand'
        $t.FinishedAt | Should -Not -BeNullOrEmpty
    }

    It 'force-finishes by a positional key' {
        Submit-PQTask -Key k2 -Type t
        Complete-PQTask k2
        (Get-PQTask -Key k2).Outcome | Should -Be 'ForceFinished'
    }

    It 'force-finishes a running task; its holder learns it at the next heartbeat and can no longer finish it' {
        Submit-PQTask -Key run -Type t
        $held = Receive-PQTask -AliveTime 30
        Complete-PQTask -Key run
        (Get-PQTask -Key run).Outcome | Should -Be 'ForceFinished'
        $caught = $null
        try { $held.Heartbeat() } catch { $caught = $_.Exception.InnerException }
        $caught | Should -BeOfType ([PerfectQueue.PreemptedException])
        "$($caught.Reason)" | Should -Be 'ForceFinished'
        $held | Complete-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err TaskPreempted InvalidOperation -Target 'run'
        (Get-PQTask -Key run).Outcome | Should -Be 'ForceFinished'
    }

    It 'finishes a task piped from Receive-PQTask as Succeeded' {
        Submit-PQTask -Key a1 -Type t
        $held = Receive-PQTask -AliveTime 30
        $held | Complete-PQTask | Should -BeNullOrEmpty
        $held.IsCompleted | Should -BeTrue
        $t = Get-PQTask -Key a1
        $t.Status | Should -Be 'Finished'
        $t.Outcome | Should -Be 'Succeeded'
        $t.Attempts | Should -Be 1
    }

    It 'finishes a received task with -Outcome Failed and -Message' {
        Submit-PQTask -Key a2 -Type t
        $t = Receive-PQTask -AliveTime 30 | Complete-PQTask -Outcome Failed -Message 'disk full' -PassThru
        $t.Outcome | Should -Be 'Failed'
        $t.Message | Should -Be 'disk full'
    }

    It 'refuses -Outcome ForceFinished for a received task' {
        Submit-PQTask -Key a3 -Type t
        $held = Receive-PQTask -AliveTime 30
        { $held | Complete-PQTask -Outcome ForceFinished } | Should -Throw -ErrorId 'ParameterArgumentValidationError*'
        (Get-PQTask -Key a3).Status | Should -Be 'Running'
    }

    It 'finishes what Get-PQTask pipes, binding by Key (ForceFinished)' {
        Submit-PQTask -Key b1 -Type t
        Submit-PQTask -Key b2 -Type t
        Get-PQTask | Complete-PQTask
        (Get-PQTask).Outcome | Should -Be @('ForceFinished', 'ForceFinished')
    }

    It 'reports unknown and finished keys (TaskNotFound, TaskAlreadyFinished) and goes on' {
        Submit-PQTask -Key done -Type t
        Submit-PQTask -Key open -Type t
        Complete-PQTask -Key done
        Complete-PQTask -Key missing, done, open -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 2
        Assert-PQError $err[0] TaskNotFound ObjectNotFound -Target 'missing'
        Assert-PQError $err[1] TaskAlreadyFinished InvalidOperation -Target 'done'
        (Get-PQTask -Key open).Outcome | Should -Be 'ForceFinished'
    }

    It 'reports finishing a received task twice as TaskAlreadyFinished' {
        Submit-PQTask -Key twice -Type t
        $held = Receive-PQTask -AliveTime 30
        $held | Complete-PQTask
        $held | Complete-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err TaskAlreadyFinished InvalidOperation -Target 'twice'
    }

    It 'reports a holder whose lease expired and was re-acquired as TaskPreempted' {
        Submit-PQTask -Key pre -Type t
        $first = Receive-PQTask -AliveTime 0.5
        $first.Key | Should -Be 'pre'
        $box = @{}
        Wait-Until { ($box.Second = Receive-PQTask -AliveTime 30) } -What 'the expired lease to be re-acquired'
        $second = $box.Second
        $second.Key | Should -Be 'pre'
        $second.Attempt | Should -Be 2

        $first | Complete-PQTask -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-PQError $err TaskPreempted InvalidOperation -Target 'pre'
        (Get-PQTask -Key pre).Status | Should -Be 'Running' -Because 'the stale holder changed nothing'

        $caught = $null
        try { $first | Complete-PQTask -ErrorAction Stop } catch [PerfectQueue.PreemptedException] { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty

        $second | Complete-PQTask
        (Get-PQTask -Key pre).Outcome | Should -Be 'Succeeded'
    }

    It 'changes nothing with -WhatIf (by key, or piped from Receive-PQTask)' {
        Submit-PQTask -Key wk -Type t
        Complete-PQTask -Key wk -WhatIf
        (Get-PQTask -Key wk).Status | Should -Be 'Waiting'
        $held = Receive-PQTask -AliveTime 30
        $held | Complete-PQTask -WhatIf
        $held.IsCompleted | Should -BeFalse
        (Get-PQTask -Key wk).Status | Should -Be 'Running'
    }

    It 'acts on tasks piped from another -Queue in their own queue' {
        $other = [PerfectQueue.Queue]::Open((New-PQTestUrl 'other'))
        try {
            Submit-PQTask -Key same -Type t
            Submit-PQTask -Key same -Type t -Queue $other
            Submit-PQTask -Key only-there -Type t -Queue $other
            Get-PQTask -Queue $other | Complete-PQTask
            (Get-PQTask -Queue $other).Outcome | Should -Be @('ForceFinished', 'ForceFinished')
            (Get-PQTask -Key same).Status | Should -Be 'Waiting' -Because 'the session default queue was not touched'

            Submit-PQTask -Key cancel-there -Type t -Queue $other
            Get-PQTask -Queue $other -Key cancel-there | Request-PQCancel
            (Get-PQTask -Queue $other -Key cancel-there).Outcome | Should -Be 'Cancelled'

            Submit-PQTask -Key held-there -Type t -Queue $other
            $held = Receive-PQTask -Queue $other -AliveTime 30
            $held.Queue | Should -Be $other
            $held | Complete-PQTask
            (Get-PQTask -Queue $other -Key held-there).Outcome | Should -Be 'Succeeded'
            (Get-PQTask -Queue $other -Key held-there | Wait-PQTask -Timeout 5).Outcome | Should -Be 'Succeeded'
        }
        finally { $other.Dispose() }
    }
}

Describe 'Receive-PQTask' {
    BeforeEach { Connect-FreshQueue | Out-Null }

    It 'acquires one due task by default, oldest first, as an acquired task' {
        Submit-PQTask -Key q1 -Type t -Data @{ n = 1 } -User u
        Submit-PQTask -Key q2 -Type t
        $held = Receive-PQTask
        @($held).Count | Should -Be 1
        $held | Should -BeOfType ([PerfectQueue.PowerShell.PQAcquiredTask])
        $held.Key | Should -Be 'q1'
        $held.User | Should -Be 'u'
        $held.Attempt | Should -Be 1
        $held.Data.n | Should -Be 1
        $held.Queue.Description | Should -Be (Get-PQTask -Key q1).Queue.Description
        (Get-PQTask -Key q1).Status | Should -Be 'Running'
        (Get-PQTask -Key q2).Status | Should -Be 'Waiting'
    }

    It 'acquires up to -Count tasks' {
        1..5 | ForEach-Object { Submit-PQTask -Key "c$_" -Type t }
        $held = Receive-PQTask -Count 3
        $held.Key | Should -Be @('c1', 'c2', 'c3')
        (Get-PQTask -Status Running).Count | Should -Be 3
        (Receive-PQTask -Count 10).Count | Should -Be 2
    }

    It 'takes -AliveTime 30 as seconds: the lease ends about 30 s ahead' {
        Submit-PQTask -Key l1 -Type t
        $before = Get-Date
        $held = Receive-PQTask -AliveTime 30
        $held.LeaseExpiresAt.Kind | Should -Be 'Local'
        ($held.LeaseExpiresAt - $before).TotalSeconds | Should -BeGreaterThan 25
        ($held.LeaseExpiresAt - $before).TotalSeconds | Should -BeLessThan 35
        ((Get-PQTask -Key l1).Timeout - $held.LeaseExpiresAt).Duration().TotalSeconds | Should -BeLessThan 2
    }

    It 'writes nothing, and no error, when nothing is due' {
        Receive-PQTask -ErrorVariable err | Should -BeNullOrEmpty
        Submit-PQTask -Key later -Type t -Delay 300
        Receive-PQTask -Count 5 -ErrorVariable +err | Should -BeNullOrEmpty
        $err | Should -BeNullOrEmpty
    }

    It 'refuses -AliveTime 0' {
        Submit-PQTask -Key z -Type t
        { Receive-PQTask -AliveTime 0 } | Should -Throw
        (Get-PQTask -Key z).Status | Should -Be 'Waiting'
    }

    It 'changes nothing with -WhatIf' {
        Submit-PQTask -Key wi -Type t
        Receive-PQTask -WhatIf | Should -BeNullOrEmpty
        (Get-PQTask -Key wi).Status | Should -Be 'Waiting'
        (Get-PQTask -Key wi).Attempts | Should -Be 0
    }
}

Describe 'Wait-PQTask' {
    BeforeEach { $script:WaitUrl = Connect-FreshQueue }

    It 'returns a finished task at once' {
        Submit-PQTask -Key done -Type t
        Complete-PQTask -Key done
        $t = Wait-PQTask -Key done -Timeout 5
        $t | Should -BeOfType ([PerfectQueue.PowerShell.PQTask])
        $t.Status | Should -Be 'Finished'
        $t.Outcome | Should -Be 'ForceFinished'
    }

    It 'waits until another session finishes the task, then returns it' {
        Submit-PQTask -Key later -Type t
        $ps = New-ModuleShell
        try {
            $null = $ps.AddScript("Connect-PQQueue '$WaitUrl'; Wait-PQTask -Key later -PollInterval 0.1 -Timeout 20")
            $async = $ps.BeginInvoke()
            Wait-Until { $ps.Streams.Progress.Count -gt 0 -or $async.IsCompleted } -What 'Wait-PQTask to start waiting'
            $async.IsCompleted | Should -BeFalse -Because 'the task is not finished yet'
            Complete-PQTask -Key later -Message 'finished meanwhile'
            $result = @($ps.EndInvoke($async))
            $ps.Streams.Error | Should -BeNullOrEmpty
            $result.Count | Should -Be 1
            $result[0].Key | Should -Be 'later'
            $result[0].Status | Should -Be 'Finished'
            $result[0].Message | Should -Be 'finished meanwhile'
        }
        finally { $ps.Dispose() }
    }

    It 'reports a task unfinished after -Timeout 1 (seconds) as WaitTimeout' {
        Submit-PQTask -Key slow -Type t
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $out = Wait-PQTask -Key slow -Timeout 1 -PollInterval 0.1 -ErrorVariable err -ErrorAction SilentlyContinue
        $clock.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 0.9
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 10
        $out | Should -BeNullOrEmpty
        Assert-PQError $err WaitTimeout OperationTimeout -Target 'slow'
        $caught = $null
        try { Wait-PQTask -Key slow -Timeout 0.2 -PollInterval 0.1 -ErrorAction Stop } catch [TimeoutException] { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
    }

    It 'reports an unknown key as TaskNotFound and still returns the others' {
        Submit-PQTask -Key there -Type t
        Complete-PQTask -Key there
        $out = Wait-PQTask -Key missing, there -Timeout 5 -ErrorVariable err -ErrorAction SilentlyContinue
        $out.Key | Should -Be 'there'
        Assert-PQError $err TaskNotFound ObjectNotFound -Target 'missing'
    }

    It 'stops on Ctrl+C (PowerShell.Stop) without an error record' {
        Submit-PQTask -Key forever -Type t
        $ps = New-ModuleShell
        try {
            $null = $ps.AddScript("Connect-PQQueue '$WaitUrl'; Wait-PQTask -Key forever -PollInterval 0.1")
            $async = $ps.BeginInvoke()
            Wait-Until { $ps.Streams.Progress.Count -gt 0 -or $async.IsCompleted } -What 'Wait-PQTask to start waiting'
            $async.IsCompleted | Should -BeFalse
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 5 -Because 'Ctrl+C ends the wait promptly'
            "$($ps.InvocationStateInfo.State)" | Should -Be 'Stopped'
            $ps.Streams.Error | Should -BeNullOrEmpty
        }
        finally { $ps.Dispose() }
    }
}

Describe 'Measure-PQQueue' {
    BeforeAll {
        Connect-FreshQueue | Out-Null
        # Acquired in order: Receive-PQTask takes the oldest due task.
        Submit-PQTask -Key running -Type alpha
        $script:HeldRunning = Receive-PQTask -AliveTime 60
        Submit-PQTask -Key cancelling -Type beta -User u1
        $script:HeldCancelling = Receive-PQTask -AliveTime 60
        Request-PQCancel -Key cancelling
        Submit-PQTask -Key finished -Type gamma
        Complete-PQTask -Key finished
        Submit-PQTask -Key waiting-1 -Type alpha -User u1
        Submit-PQTask -Key waiting-2 -Type alpha -User u1
        Submit-PQTask -Key scheduled -Type beta -User u2 -Delay 300
        $script:Measure = Measure-PQQueue
    }

    It 'counts tasks per status' {
        $Measure | Should -BeOfType ([PerfectQueue.PowerShell.PQQueueMeasure])
        $Measure.Total | Should -Be 6
        $Measure.Waiting | Should -Be 2
        $Measure.Scheduled | Should -Be 1
        $Measure.Running | Should -Be 1
        $Measure.CancelRequested | Should -Be 1
        $Measure.Finished | Should -Be 1
    }

    It 'counts tasks per type and per user' {
        $Measure.ByType['alpha'] | Should -Be 3
        $Measure.ByType['beta'] | Should -Be 2
        $Measure.ByType['gamma'] | Should -Be 1
        $Measure.ByType.Count | Should -Be 3
        $Measure.ByUser['u1'] | Should -Be 3
        $Measure.ByUser['u2'] | Should -Be 1
        $Measure.ByUser[''] | Should -Be 2 -Because 'tasks without a user count under the empty name'
    }

    It 'agrees with Get-PQTask -Status' {
        (Get-PQTask -Status Running).Key | Should -Be 'running'
        (Get-PQTask -Status CancelRequested).Key | Should -Be 'cancelling'
        (Get-PQTask -Status Waiting).Key | Should -Be @('waiting-1', 'waiting-2')
    }

    It 'ages the oldest waiting task' {
        $Measure.OldestWaitingAge | Should -BeOfType ([TimeSpan])
        $Measure.OldestWaitingAge | Should -BeGreaterOrEqual ([TimeSpan]::Zero)
        $Measure.OldestWaitingAge | Should -BeLessThan ([TimeSpan]::FromMinutes(1))
    }

    It 'shows no age and zero counts for an empty queue' {
        $empty = [PerfectQueue.Queue]::Open((New-PQTestUrl 'empty'))
        $empty.Initialize()
        try {
            $m = Measure-PQQueue -Queue $empty
            $m.Total | Should -Be 0
            $m.Waiting | Should -Be 0
            $m.OldestWaitingAge | Should -BeNullOrEmpty
        }
        finally { $empty.Dispose() }
    }

    It 'shows the counts in its default view' {
        $text = Remove-Ansi ($Measure | Out-String -Width 200)
        $text | Should -Match '(?m)^Total\s*:\s*6\s*$'
        $text | Should -Match '(?m)^Waiting\s*:\s*2\s*$'
        $text | Should -Match '(?m)^Scheduled\s*:\s*1\s*$'
        $text | Should -Match '(?m)^Running\s*:\s*1\s*$'
        $text | Should -Match '(?m)^CancelRequested\s*:\s*1\s*$'
        $text | Should -Match '(?m)^Finished\s*:\s*1\s*$'
        $text | Should -Match '(?m)^OldestWaitingAge\s*:\s*\S'
        $text | Should -Match '(?m)^ByType\s*:\s*alpha=3, beta=2, gamma=1\s*$'
        $text | Should -Match '(?m)^ByUser\s*:.*\(none\)=2'
    }
}

Describe 'Formatting' {
    BeforeAll {
        Connect-FreshQueue | Out-Null
        Submit-PQTask -Key fmt-1 -Type backup -User team-a -Data @{ db = 'sales' } -MaxRunning 3
        Submit-PQTask -Key fmt-2 -Type report
        Complete-PQTask -Key fmt-2 -Message 'done by hand'
    }

    It 'shows exactly Key, Type, User, Status, When, Data in a table, When saying what its time is' {
        $lines = (Remove-Ansi (Get-PQTask | Format-Table | Out-String -Width 200)) -split '\r?\n' | Where-Object { $_.Trim() }
        ($lines[0].Trim() -split '\s+') | Should -Be @('Key', 'Type', 'User', 'Status', 'When', 'Data')
        $lines[1] | Should -Match '^[-\s]+$'
        $row1 = $lines | Where-Object { $_ -match '^fmt-1\s' }
        $row1 | Should -Match 'backup\s+team-a\s+Waiting\s+due \d\d-\d\d \d\d:\d\d\s'
        $row1 | Should -Match ([regex]::Escape('{"db":"sales"}'))
        $row2 = $lines | Where-Object { $_ -match '^fmt-2\s' }
        $row2 | Should -Match 'Finished/ForceFinished\s+purge \d\d-\d\d \d\d:\d\d\s'
    }

    It 'uses the table view by default' {
        $text = Remove-Ansi (Get-PQTask | Out-String -Width 200)
        (($text -split '\r?\n' | Where-Object { $_.Trim() } | Select-Object -First 1).Trim() -split '\s+') |
            Should -Be @('Key', 'Type', 'User', 'Status', 'When', 'Data')
    }

    It 'shows a received task as Key, Type, User, Attempt, LeaseExpiresAt, Data' {
        Submit-PQTask -Key fmt-3 -Type backup -User team-c -Data @{ n = 1 }
        $held = @(Receive-PQTask -Count 5 -AliveTime 30)
        try {
            $lines = (Remove-Ansi ($held | Out-String -Width 200)) -split '\r?\n' | Where-Object { $_.Trim() }
            ($lines[0].Trim() -split '\s+') | Should -Be @('Key', 'Type', 'User', 'Attempt', 'LeaseExpiresAt', 'Data')
            $lines | Where-Object { $_ -match '^fmt-3\s' } | Should -Match 'backup\s+team-c\s+1\s.*\{"n":1\}'
        }
        finally { $held | ForEach-Object { $_.Release() } }
    }

    It 'shows Attempts, Outcome, Message, MaxRunning and FinishedAt in a list' {
        $text = Remove-Ansi (Get-PQTask -Key fmt-2 | Format-List | Out-String -Width 200)
        $text | Should -Match '(?m)^Attempts\s*:\s*0\s*$'
        $text | Should -Match '(?m)^Outcome\s*:\s*ForceFinished\s*$'
        $text | Should -Match '(?m)^Message\s*:\s*done by hand\s*$'
        $text | Should -Match '(?m)^MaxRunning\s*:'
        $text | Should -Match '(?m)^FinishedAt\s*:\s*\S'
        $one = Remove-Ansi (Get-PQTask -Key fmt-1 | Format-List | Out-String -Width 200)
        $one | Should -Match '(?m)^MaxRunning\s*:\s*3\s*$'
    }

    It 'gives local times close to now' {
        $t = Get-PQTask -Key fmt-2
        $t.CreatedAt.Kind | Should -Be 'Local'
        $t.Timeout.Kind | Should -Be 'Local'
        $t.FinishedAt.Kind | Should -Be 'Local'
        ((Get-Date) - $t.CreatedAt).Duration().TotalMinutes | Should -BeLessThan 5
    }

    It 'keeps times local, and -RunAt local, in a time zone away from UTC' {
        $savedTz = $env:TZ
        try {
            $env:TZ = 'Asia/Tokyo'
            [TimeZoneInfo]::ClearCachedData()
            if ([TimeZoneInfo]::Local.BaseUtcOffset -eq [TimeSpan]::Zero) {
                Set-ItResult -Skipped -Because 'this platform does not take the time zone from TZ'
                return
            }
            $t = Submit-PQTask -Key tz-1 -Type t -PassThru
            ((Get-Date) - $t.CreatedAt).Duration().TotalMinutes | Should -BeLessThan 5
            $at = [datetime]::SpecifyKind((Get-Date).AddHours(2), 'Unspecified')
            $s = Submit-PQTask -Key tz-2 -Type t -RunAt $at -PassThru
            ($s.Timeout - $at).Duration().TotalSeconds | Should -BeLessThan 1 -Because 'an unspecified -RunAt is local time'
            $s.Status | Should -Be 'Scheduled'
        }
        finally {
            $env:TZ = $savedTz
            [TimeZoneInfo]::ClearCachedData()
        }
    }
}

Describe 'Task data' {
    BeforeAll {
        Connect-FreshQueue | Out-Null
        $script:Sent = @{
            i = 42
            l = 5000000000
            d = 1.5
            b = $true
            f = $false
            s = 'text'
            a = @(1, 'two', 3.5)
            h = @{ x = 1; y = @{ z = 'deep' } }
        }
        Submit-PQTask -Key data-1 -Type t -Data $Sent
    }

    It 'comes back equal, with Int32, Int64 and Double kept, from Get-PQTask' {
        $t = Get-PQTask -Key data-1
        Assert-DataEqual $t.Data $Sent
        $t.Data.i | Should -BeOfType ([int])
        $t.Data.l | Should -BeOfType ([long])
        $t.Data.d | Should -BeOfType ([double])
    }

    It 'comes back equal from Receive-PQTask' {
        $held = Receive-PQTask -AliveTime 30
        try {
            $held.Key | Should -Be 'data-1'
            Assert-DataEqual $held.Data $Sent
            $held.Data.L | Should -BeOfType ([long])
            $held.Data.H.Y.Z | Should -Be 'deep' -Because 'keys are case-insensitive in acquired data too'
        }
        finally { $held.Release() }
    }

    It 'finds keys whatever their case' {
        Submit-PQTask -Key data-case -Type t -Data @{ db = 'sales'; Nested = @{ Inner = 1 } }
        $t = Get-PQTask -Key data-case
        $t.Data.DB | Should -Be 'sales'
        $t.Data['Db'] | Should -Be 'sales'
        $t.Data.nested.INNER | Should -Be 1
    }
}

Describe 'Tab completion' {
    BeforeAll {
        Connect-FreshQueue | Out-Null
        Submit-PQTask -Key key-backup -Type backup
        Submit-PQTask -Key key-batch -Type batch
        Submit-PQTask -Key other -Type report

        function script:Get-Completion([string] $Line) {
            (TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches.CompletionText
        }
    }

    It 'offers the session queue''s types for Submit-PQTask -Type' {
        Get-Completion 'Submit-PQTask -Type ba' | Should -Be @("'backup'", "'batch'")   # always quoted: values are data, never code
        Get-Completion 'Get-PQTask -Type ' | Should -Be @("'backup'", "'batch'", "'report'")
    }

    It 'offers the task states for Get-PQTask -Status' {
        $states = Get-Completion 'Get-PQTask -Status '
        foreach ($s in 'Scheduled', 'Waiting', 'Running', 'CancelRequested', 'Finished') { $states | Should -Contain $s }
    }

    It 'offers keys for -Key' {
        Get-Completion 'Get-PQTask -Key k' | Should -Be @("'key-backup'", "'key-batch'")
        Get-Completion 'Request-PQCancel -Key o' | Should -Be @("'other'")
    }

    It 'offers the keys of the queue named by -Queue' {
        $script:CompletionOther = [PerfectQueue.Queue]::Open((New-PQTestUrl 'completion'))
        try {
            Submit-PQTask -Queue $CompletionOther -Key key-elsewhere -Type t
            Get-Completion 'Get-PQTask -Queue $CompletionOther -Key key-' | Should -Be @("'key-elsewhere'")
        }
        finally { $CompletionOther.Dispose() }
    }

    It 'offers nothing, and does not fail, for a prefix no key has' {
        Get-Completion 'Get-PQTask -Key zzz' | Should -BeNullOrEmpty
    }
}
