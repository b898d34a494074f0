# Schedules driven as a user would: the cmdlets end to end (-WhatIf, the pipeline, per-item errors), and the
# issue's headline check: one 2-second schedule fired by three workers in two processes for 20 s, every fire
# submitted exactly once, none skipped or missing, on SQLite and on every server named by PQ_TEST_POSTGRES and
# PQ_TEST_MYSQL.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')
}

Describe 'Cronos in the module folder' {
    It 'ships in lib/ beside the engine and loads into the engine''s own load context' {
        $lib = Join-Path $env:PQ_MODULE_PATH 'lib'
        Join-Path $lib 'Cronos.dll' | Should -Exist
        Join-Path $env:PQ_MODULE_PATH 'Cronos.dll' | Should -Not -Exist
        $q = [PerfectQueue.Queue]::Open("sqlite:///$(Join-Path $TestDrive 'cronos.db')")
        Register-PQSchedule -Queue $q nightly '0 3 * * *' backup   # parsing the cron needs Cronos
        $cronos = @([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Cronos' })
        $cronos | Should -HaveCount 1
        $engine = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'PerfectQueue' }
        [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($cronos[0]) | Should -Be ([System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($engine))
        $cronos[0].Location | Should -Be (Join-Path $lib 'Cronos.dll')
    }
}

Describe 'The schedule cmdlets' {
    BeforeEach {
        $script:Url = "sqlite:///$(Join-Path $TestDrive "s-$([guid]::NewGuid().ToString('N')).db")"
        $script:Queue = Connect-PQQueue $Url -PassThru
        $Queue.Initialize()
    }
    AfterAll { Disconnect-PQQueue }

    It 'are exported, support -WhatIf where they change state, and have a table view' {
        $commands = (Get-Module PerfectQueue).ExportedCmdlets.Keys
        foreach ($name in 'Register-PQSchedule', 'Get-PQSchedule', 'Set-PQSchedule', 'Unregister-PQSchedule', 'Suspend-PQSchedule', 'Resume-PQSchedule') {
            $commands | Should -Contain $name
            if ($name -ne 'Get-PQSchedule') { (Get-Command $name).Parameters.Keys | Should -Contain 'WhatIf' }
        }
        Register-PQSchedule nightly '0 3 * * *' backup
        (Get-PQSchedule | Format-Table | Out-String -Width 200) | Should -Match 'Name\s+Cron\s+TimeZone\s+Type\s+Paused\s+NextFireAt\s+LastFireAt\s+LastFire\s+Skipped\s+Missed'
        (Get-PQSchedule | Format-Table | Out-String -Width 200) | Should -Match 'nightly\s+0 3 \* \* \*\s+UTC\s+backup\s+False\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+0\s+0'
    }

    It 'register with -WhatIf stores nothing; a register keeps the data as Submit-PQTask does' {
        Register-PQSchedule nightly '0 3 * * *' backup -WhatIf
        Get-PQSchedule | Should -BeNullOrEmpty
        $data = @{ db = 'sales'; tables = @('a', 'b'); opts = @{ full = $true; n = 3 } }
        $s = Register-PQSchedule nightly '0 3 * * *' backup -Data $data -User team-a -MaxRunning 1 -TimeZone 'Europe/Berlin' -PassThru
        $s.Data.db | Should -Be 'sales'
        $s.Data.tables | Should -Be @('a', 'b')
        $s.Data.opts.full | Should -BeTrue
        $s.Data.opts.n | Should -Be 3
        $s.TimeZone | Should -Be 'Europe/Berlin'
        $s.NextFireAt | Should -BeGreaterThan (Get-Date)
        $s.Queue.Description | Should -Be $Queue.Description
        Submit-PQTask probe backup -Data $data
        (Get-PQTask probe).Data | ConvertTo-Json -Depth 5 -Compress | Should -Be ((Get-PQSchedule nightly).Data | ConvertTo-Json -Depth 5 -Compress)
    }

    It 'a taken name and bad input are errors that store nothing and name the fix' {
        Register-PQSchedule nightly '0 3 * * *' backup
        Register-PQSchedule nightly '0 4 * * *' backup -ErrorVariable taken -ErrorAction SilentlyContinue
        $taken[0].FullyQualifiedErrorId | Should -BeLike 'ScheduleAlreadyExists,*'
        "$($taken[0])" | Should -Match 'Set-PQSchedule'
        (Get-PQSchedule nightly).Cron | Should -Be '0 3 * * *'

        Register-PQSchedule bad '0 3 * 13 *' backup -ErrorVariable bad -ErrorAction SilentlyContinue
        $bad[0].FullyQualifiedErrorId | Should -BeLike 'InvalidArgument,*'
        "$($bad[0])" | Should -Match 'month field'
        Register-PQSchedule 'a@b' '0 3 * * *' backup -ErrorVariable at -ErrorAction SilentlyContinue
        "$($at[0])" | Should -Match "'@'"
        Register-PQSchedule zone '0 3 * * *' backup -TimeZone 'Nowhere/Land' -ErrorVariable zone -ErrorAction SilentlyContinue
        "$($zone[0])" | Should -Match 'IANA'
        @(Get-PQSchedule).Name | Should -Be @('nightly')

        Register-PQSchedule nightly '0 4 * * *' report -Force
        (Get-PQSchedule nightly).Type | Should -Be 'report'
    }

    It 'Get-PQSchedule | Suspend-PQSchedule suspends every schedule, and Resume-PQSchedule resumes from now' {
        Register-PQSchedule a '* * * * *' t
        Register-PQSchedule b '* * * * *' t
        Get-PQSchedule | Suspend-PQSchedule -WhatIf
        @(Get-PQSchedule | Where-Object Paused).Count | Should -Be 0
        Get-PQSchedule | Suspend-PQSchedule
        @(Get-PQSchedule | Where-Object Paused).Count | Should -Be 2
        $resumed = Get-PQSchedule | Resume-PQSchedule -PassThru
        $resumed.Paused | Should -Be @($false, $false)
        $resumed[0].NextFireAt | Should -BeGreaterThan (Get-Date).AddSeconds(-1)
    }

    It 'Set-PQSchedule changes what it is given and keeps the rest; unknown names are per-item ScheduleNotFound errors' {
        Register-PQSchedule nightly '0 3 * * *' backup -Data @{ db = 'sales' } -User team-a
        $before = Get-PQSchedule nightly
        Get-PQSchedule nightly | Set-PQSchedule -Type report -WhatIf
        (Get-PQSchedule nightly).Type | Should -Be 'backup'
        $after = Set-PQSchedule nightly -Type report -User '' -PassThru
        $after.Type | Should -Be 'report'
        $after.User | Should -BeNullOrEmpty
        $after.Data.db | Should -Be 'sales'
        $after.NextFireAt | Should -Be $before.NextFireAt
        (Set-PQSchedule nightly -Cron '30 2 * * *' -PassThru).NextFireAt | Should -Not -Be $before.NextFireAt

        'nope', 'nightly' | Suspend-PQSchedule -ErrorVariable missing -ErrorAction SilentlyContinue
        $missing.Count | Should -Be 1
        $missing[0].FullyQualifiedErrorId | Should -BeLike 'ScheduleNotFound,*'
        (Get-PQSchedule nightly).Paused | Should -BeTrue
        Get-PQSchedule nope -ErrorVariable notFound -ErrorAction SilentlyContinue
        $notFound[0].FullyQualifiedErrorId | Should -BeLike 'ScheduleNotFound,*'
        Get-PQSchedule 'no*' | Should -BeNullOrEmpty
    }

    It 'Unregister-PQSchedule -WhatIf keeps them; piped, it removes them; again, it reports each missing one' {
        Register-PQSchedule a '* * * * *' t
        Register-PQSchedule b '* * * * *' t
        Get-PQSchedule | Unregister-PQSchedule -WhatIf
        @(Get-PQSchedule).Count | Should -Be 2
        Get-PQSchedule | Unregister-PQSchedule
        Get-PQSchedule | Should -BeNullOrEmpty
        'a', 'b' | Unregister-PQSchedule -ErrorVariable gone -ErrorAction SilentlyContinue
        $gone.Count | Should -Be 2
        $gone[0].FullyQualifiedErrorId | Should -BeLike 'ScheduleNotFound,*'
    }

    It 'a worker fires a due schedule, and a worker started with -NoSchedules does not' {
        $q = $Queue
        Register-PQSchedule tick '* * * * * *' tick -Overlap Allow
        $quiet = Start-PQWorker -Queue $q -NoSchedules -PollInterval 0.1 -MaxTasks 1 -AsJob -Handler @{ tick = { 'ok' } }
        try {
            Start-Sleep -Milliseconds 2500   # two fire times pass with only the -NoSchedules worker running
            Get-PQTask | Should -BeNullOrEmpty
        }
        finally { $quiet | Stop-Job; $quiet | Remove-Job -Force }
        $summary = Start-PQWorker -Queue $q -PollInterval 0.1 -MaxTasks 2 -Handler @{ tick = { 'ok' } } 6>$null
        $summary.Succeeded | Should -Be 2
        @(Get-PQTask).Key | ForEach-Object { $_ | Should -Match '^tick@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' }
        (Get-PQSchedule tick).LastFireKey | Should -Match '^tick@'
    }
}

Describe 'Firing without a leader: a 2-second schedule, three workers in two processes, 20 seconds' {
    BeforeDiscovery {
        $script:Backends = @(@{ Backend = 'sqlite' })
        if ($env:PQ_TEST_POSTGRES) { $Backends += @{ Backend = 'postgresql' } }
        if ($env:PQ_TEST_MYSQL) { $Backends += @{ Backend = 'mysql' } }
    }

    It 'submits every fire exactly once, skips none and misses none, on <Backend>' -ForEach $Backends {
        $table = 'sched_' + [guid]::NewGuid().ToString('N').Substring(0, 12)
        $url = switch ($Backend) {
            'sqlite' { "sqlite:///$(Join-Path $TestDrive "h-$table.db")" }
            'postgresql' { $env:PQ_TEST_POSTGRES }
            'mysql' { $env:PQ_TEST_MYSQL }
        }
        $q = Connect-PQQueue $url -Table $table -PassThru
        $q.Initialize()
        $worker = { param($n) @"
Import-Module '$env:PQ_MODULE_PATH'
`$q = [PerfectQueue.Queue]::Open('$url', '$table')
`$runs = foreach (`$i in 1..$n) {
    `$ps = [powershell]::Create()
    `$null = `$ps.AddScript('param(`$m, `$q) Import-Module `$m; Start-PQWorker -Queue `$q -PollInterval 0.2 -HeartbeatInterval 0.5 -Handler @{ heart = { "beat" } } 6>&1 | Out-String -Width 300').AddArgument('$env:PQ_MODULE_PATH').AddArgument(`$q)
    [pscustomobject]@{ PowerShell = `$ps; Handle = `$ps.BeginInvoke() }
}
foreach (`$r in `$runs) { `$r.PowerShell.EndInvoke(`$r.Handle) }
"@ }
        $children = @((Start-PwshScript (& $worker 2)), (Start-PwshScript (& $worker 1)))
        try {
            Wait-Until { @(Get-PQWorker -Queue $q).Count -eq 3 } 'three workers in two processes' -Seconds 60
            $s = Register-PQSchedule heart '*/2 * * * * *' heart -Overlap Allow -MissedRuns Skip -Queue $q -PassThru
            $first = $s.NextFireAt
            Start-Sleep -Seconds 20   # the run itself: the test watches a 20-second window of fires
            Suspend-PQSchedule heart -Queue $q
            $last = (Get-PQSchedule heart -Queue $q).LastFireAt
            Get-PQWorker -Queue $q | Stop-PQWorker -Queue $q
            foreach ($c in $children) { $c.Process.WaitForExit(60000) | Should -BeTrue }
        }
        finally {
            foreach ($c in $children) { if (-not $c.Process.HasExited) { $c.Process.Kill($true) } }
        }
        $logs = ($children | ForEach-Object { $_.Output.Result }) -join "`n"

        $fires = @(Get-PQTask -Queue $q -Type heart | Sort-Object Key)
        $times = @($fires | ForEach-Object { [datetimeoffset]::Parse($_.Key.Substring('heart@'.Length), [cultureinfo]::InvariantCulture) })
        $fires.Count | Should -BeGreaterOrEqual 9 -Because "20 s of a 2-second schedule (first fire $first, last $last)"
        $times[0].LocalDateTime | Should -Be $first
        for ($i = 1; $i -lt $times.Count; $i++) {
            ($times[$i] - $times[$i - 1]).TotalSeconds | Should -Be 2 -Because "the fires form an unbroken 2-second sequence (after $($fires[$i - 1].Key))"
        }
        # Exactly once: of the three workers, one submitted each fire (the others' submits were refused as taken).
        foreach ($f in $fires) {
            ([regex]::Matches($logs, "fired $([regex]::Escape($f.Key))")).Count | Should -Be 1 -Because "$($f.Key) is submitted by one worker"
            $f.Attempts | Should -Be 1
        }
        $after = Get-PQSchedule heart -Queue $q
        $after.SkipCount | Should -Be 0
        $after.MissedCount | Should -Be 0
        Get-PQTask -Queue $q -Type pq.notice | Should -BeNullOrEmpty
        # Which worker wins each fire is a race (on SQLite one process may win them all); all three kept trying.
        @($children | ForEach-Object { $_.Output.Result } | Where-Object { $_ -match 'worker stopped \(stop requested\)' }).Count | Should -Be 2
    }
}
