# The MySQL/MariaDB backend driven as a user would: a mysql:// URL with a password, and the original's YAML
# config (type: rdb_compat, url: mysql://..., table: ...). The server is PQ_TEST_MYSQL (mysql://root@host:port/db;
# build.ps1 test starts a throwaway MariaDB and sets it). Skipped without one, except under CI, where it fails.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH
    . (Join-Path $PSScriptRoot 'WorkerHelpers.ps1')

    $script:HasServer = [bool]$env:PQ_TEST_MYSQL
    if (-not $HasServer -and $env:CI) { throw 'PQ_TEST_MYSQL is not set under CI: build.ps1 test could not start MariaDB.' }
    $script:Tables = [System.Collections.Generic.List[string]]::new()
    if ($HasServer) {
        # The module ships MySqlConnector (for its engine, in a load context of its own); this session loads the
        # same file to run the test's own SQL: a user with a password, and the cleanup.
        Add-Type -Path (Join-Path (Split-Path (Get-Module PerfectQueue).Path) 'lib/MySqlConnector.dll')
        $server = [Uri]$env:PQ_TEST_MYSQL
        $script:Database = $server.AbsolutePath.TrimStart('/')
        $script:HostPort = "$($server.Host):$(if ($server.Port -gt 0) { $server.Port } else { 3306 })"
        $admin = [MySqlConnector.MySqlConnectionStringBuilder]::new()
        $admin.Server = $server.Host
        $admin.Port = if ($server.Port -gt 0) { $server.Port } else { 3306 }
        $admin.UserID = [Uri]::UnescapeDataString(($server.UserInfo -split ':', 2)[0])
        if ($server.UserInfo -match ':') { $admin.Password = [Uri]::UnescapeDataString(($server.UserInfo -split ':', 2)[1]) }
        $admin.Database = $Database
        $script:AdminConnectionString = $admin.ConnectionString
        function Invoke-AdminSql([string] $Sql) {
            $c = [MySqlConnector.MySqlConnection]::new($AdminConnectionString)
            try { $c.Open(); $cmd = $c.CreateCommand(); $cmd.CommandText = $Sql; $null = $cmd.ExecuteNonQuery() } finally { $c.Dispose() }
        }
        $script:Secret = 'Pq-S3cret!' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        $script:User = 'pq_pester_' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        Invoke-AdminSql "CREATE USER '$User'@'%' IDENTIFIED BY '$Secret'"
        Invoke-AdminSql "GRANT CREATE, ALTER, INDEX, DROP, SELECT, INSERT, UPDATE, DELETE ON ``$Database``.* TO '$User'@'%'"
        $script:Url = "mysql://${User}:$([Uri]::EscapeDataString($Secret))@$HostPort/$Database"
    }
    function New-TableName { $t = 'pm_' + [guid]::NewGuid().ToString('N').Substring(0, 12); $Tables.Add($t); $t }
}

AfterAll {
    Disconnect-PQQueue
    if ($HasServer) {
        foreach ($t in $Tables) { Invoke-AdminSql "DROP TABLE IF EXISTS ``$t``, ``${t}_workers``, ``${t}_users``, ``${t}_pauses``" }
        Invoke-AdminSql "DELETE FROM perfectqueue_schema WHERE table_name LIKE 'pm\_%'"
        Invoke-AdminSql "DROP USER IF EXISTS '$User'@'%'"
    }
}

Describe 'PerfectQueue on MySQL/MariaDB' {
    BeforeEach {
        if (-not $HasServer) { Set-ItResult -Skipped -Because 'no MySQL/MariaDB here: install mariadb-server (build.ps1 test starts a throwaway server) or set PQ_TEST_MYSQL'; return }
    }

    It 'connects with a password in a mysql:// URL, drains the queue with a worker within max_running, and never shows the password' {
        $table = New-TableName
        $queue = Connect-PQQueue $Url -Table $table -PassThru
        $queue.Description | Should -Be "mysql://$User@$HostPort/$Database (table $table)"
        "$queue $($queue.Config.Url)" | Should -Not -Match ([regex]::Escape($Secret))
        Initialize-PQQueue
        1..6 | ForEach-Object { Submit-PQTask "m$_" work @{ n = $_ } -User "u$($_ % 2)" -MaxRunning 1 }
        Submit-PQTask 'plain' work @{ n = 0 }
        $log = Join-Path $TestDrive "mysql-$([guid]::NewGuid().ToString('N')).log"
        # Each handler reports when it started and ended as its message.
        $summary = Start-PQWorker -Processors 3 -PollInterval 0.1 -HeartbeatInterval 0.2 -UntilEmpty -LogPath $log -Handler @{
            work = { param($Task) $start = [DateTime]::UtcNow.Ticks; Start-Sleep -Milliseconds 50; "$start $([DateTime]::UtcNow.Ticks) $($Task.Data.n)" }
        } 6>$null
        $summary.Succeeded | Should -Be 7
        $tasks = Get-PQTask
        @($tasks).Count | Should -Be 7
        $tasks.Outcome | Sort-Object -Unique | Should -Be 'Succeeded'
        foreach ($taskUser in 'u0', 'u1') {   # not $user: PowerShell names ignore case, and $User is the login
            $runs = @($tasks | Where-Object User -EQ $taskUser | ForEach-Object { $s, $e, $null = $_.Message -split ' '; [pscustomobject]@{ Start = [long]$s; End = [long]$e } } | Sort-Object Start)
            $runs.Count | Should -Be 3
            for ($i = 1; $i -lt $runs.Count; $i++) { $runs[$i].Start | Should -BeGreaterOrEqual $runs[$i - 1].End -Because "max_running 1 for $taskUser" }
        }
        $text = Get-Content $log -Raw
        $text | Should -Match "worker started: 3 processor\(s\) on mysql://$User@"
        $text | Should -Not -Match ([regex]::Escape($Secret))
    }

    It 'reads the original''s YAML config (type rdb_compat, a mysql2:// url, a table), cancels a waiting task and lists the running worker' {
        $table = New-TableName
        $yaml = Join-Path $TestDrive "perfectqueue-$table.yml"
        @"
development:
  type: rdb_compat
  url: $($Url -replace '^mysql://', 'mysql2://')
  table: $table
  alive_time: 30
"@ | Set-Content $yaml
        $queue = Connect-PQQueue -ConfigPath $yaml -PassThru
        $queue.Description | Should -BeLike "mysql://$User@*(table $table)"
        $queue.Config.AliveTime | Should -Be ([TimeSpan]::FromSeconds(30))
        Initialize-PQQueue
        Submit-PQTask 'blocker' work
        Submit-PQTask 'unwanted' work
        (Request-PQCancel 'unwanted' -PassThru).Status | Should -Be 'Finished'
        $cancelled = Get-PQTask 'unwanted'
        $cancelled.Outcome | Should -Be 'Cancelled'

        $go = Join-Path $TestDrive "go-$table"
        $handler = [scriptblock]::Create("while (-not (Test-Path '$go')) { Start-Sleep -Milliseconds 20 }; 'done'")
        $job = Start-PQWorker -PollInterval 0.1 -HeartbeatInterval 0.2 -UntilEmpty -Handler @{ work = $handler } -AsJob
        try {
            Wait-Until { @(Get-PQWorker | Where-Object Running -EQ 1).Count -eq 1 } 'the worker to report its running task'
            $w = Get-PQWorker
            $w.Host | Should -Be ([Environment]::MachineName)
            $w.Pid | Should -Be $PID
            $w.State | Should -Be 'Alive'
            $running = Get-PQTask 'blocker'
            $running.Status | Should -Be 'Running'
            # Who runs what (schema version 7): the session lists the key, the task names the session and host.
            $w.RunningKeys | Should -Be @('blocker')
            $running.Worker | Should -Be $w.Id
            $running.Host | Should -Be ([Environment]::MachineName)
            $running.StartedAt | Should -BeOfType [datetime]
            New-Item -ItemType File $go | Out-Null
            $null = Wait-Job $job -Timeout 60
            $job.State | Should -Be 'Completed'
            (Receive-Job $job 6>$null).Succeeded | Should -Be 1
        }
        finally { Stop-Job $job -ErrorAction SilentlyContinue; Remove-Job $job -Force -ErrorAction SilentlyContinue }
        $done = Get-PQTask 'blocker'
        $done.Outcome | Should -Be 'Succeeded'
        $done.Worker | Should -BeNullOrEmpty
        $done.LastDuration | Should -Be ($done.FinishedAt - $running.StartedAt)
        Get-PQWorker | Should -BeNullOrEmpty   # a clean exit removes its session
    }

    It 'says how to create a missing queue, naming the server without the password' {
        $table = New-TableName
        Connect-PQQueue $Url -Table $table
        { Submit-PQTask 'x' work -ErrorAction Stop } | Should -Throw "*does not exist in mysql://$User@$HostPort/$Database (table $table)*Initialize-PQQueue*"
        try { Submit-PQTask 'x' work -ErrorAction Stop } catch { "$_ $($_.Exception)" | Should -Not -Match ([regex]::Escape($Secret)) }
    }
}
