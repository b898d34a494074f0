# Values that come from other people (task keys and types, folder names) must never become code, and secrets
# (database passwords) must never be shown. Driven against the assembled module (PQ_MODULE_PATH), as a user would.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH -Force
    function script:New-TestUrl { 'sqlite:///' + (Join-Path $TestDrive "s-$([guid]::NewGuid().ToString('N')).db") }
}

AfterAll { Disconnect-PQQueue }

Describe 'Tab completion of values planted in the queue' {
    BeforeAll {
        Connect-PQQueue (New-TestUrl)
        $script:Marker = Join-Path $TestDrive 'completion-ran'
        # Each key would run a command if the completed line treated it as code.
        $script:Planted = @(
            'y;hostname'
            'z$(hostname)'
            "x’; Set-Content -Path '$Marker' -Value 1; ’"        # U+2019 ends a PowerShell string like '
            "w;Set-Content -Path '$Marker' -Value 2"
            "v‘`$(Set-Content -Path '$Marker' -Value 3)‛"        # U+2018 and U+201B
        )
        foreach ($k in $Planted) { Submit-PQTask -Key $k -Type "t$($k[0])" }
    }

    It 'completes -Key <_> to one single-quoted string that means exactly the key' -ForEach @(
        'y;hostname'
        'z$(hostname)'
        "x’; Set-Content -Path '<marker>' -Value 1; ’"
        "w;Set-Content -Path '<marker>' -Value 2"
        "v‘`$(Set-Content -Path '<marker>' -Value 3)‛"
    ) {
        $key = $_.Replace('<marker>', $Marker)
        $line = "Get-PQTask -Key $($key.Substring(0, 1))"
        $completions = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches
        $match = @($completions | Where-Object ListItemText -eq $key)
        $match.Count | Should -Be 1 -Because "the key should be offered once, got: $($completions.CompletionText -join ' | ')"
        $text = $match[0].CompletionText
        $text | Should -BeLike "'*'"

        # The completed line parses to one command with one constant argument: the key, and nothing else.
        $completed = "Get-PQTask -Key $text"
        $tokens = $null; $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseInput($completed, [ref] $tokens, [ref] $errors)
        $errors | Should -BeNullOrEmpty
        $commands = $ast.FindAll({ $args[0] -is [System.Management.Automation.Language.CommandAst] }, $true)
        @($commands).Count | Should -Be 1
        $arguments = @($commands[0].CommandElements | Select-Object -Skip 2)
        $arguments.Count | Should -Be 1
        $arguments[0] | Should -BeOfType ([System.Management.Automation.Language.StringConstantExpressionAst])
        $arguments[0].Value | Should -BeExactly $key

        # Pressing Enter on it finds the task and runs nothing planted.
        (Invoke-Expression $completed).Key | Should -BeExactly $key
        Test-Path -LiteralPath $Marker | Should -BeFalse
    }

    It 'completes -Type the same way' {
        Submit-PQTask -Key type-planted -Type 'q;hostname'
        $line = 'Get-PQTask -Type q'
        $text = @((TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText)
        $text | Should -Be @("'q;hostname'")
    }

    It 'narrows by what was typed inside quotes, typographic ones included' {
        Submit-PQTask -Key "o'neil" -Type t
        Submit-PQTask -Key 'other' -Type t
        $line = "Get-PQTask -Key 'o''n"
        @((TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText) | Should -Be @("'o''neil'")
        $line = "Get-PQTask -Key ’o"
        @((TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText) | Should -Be @("'o''neil'", "'other'")
    }
}

Describe 'Start-PQWorker -HandlerPath in a folder whose name holds quotes' {
    BeforeEach { Connect-PQQueue (New-TestUrl) }

    It 'runs handlers from <_> and injects nothing' -ForEach @(
        "John’s handlers"
        "a’; Set-Content -Path `$env:PQ_SECURITY_MARKER -Value 1; ’"
        "b'; Set-Content -Path `$env:PQ_SECURITY_MARKER -Value 2; '"
    ) {
        $env:PQ_SECURITY_MARKER = Join-Path $TestDrive "injected-$([guid]::NewGuid().ToString('N'))"
        $folder = Join-Path $TestDrive $_
        $null = [IO.Directory]::CreateDirectory($folder)
        $script = Join-Path $folder 'handlers.ps1'
        [IO.File]::WriteAllText($script, '@{ work = { param($Task) ''ok'' } }')
        Submit-PQTask -Key h1 -Type work
        $summary = Start-PQWorker -HandlerPath $script -UntilEmpty -PollInterval 0.1 6>$null
        $summary.Succeeded | Should -Be 1
        (Get-PQTask h1).Outcome | Should -Be 'Succeeded'
        Test-Path -LiteralPath $env:PQ_SECURITY_MARKER | Should -BeFalse
    }
}

Describe 'Passwords are never shown' {
    BeforeAll {
        $script:Secret = 'Zq9Wx7s3cr3t'
        # A loopback port nothing listens on: the listener is closed again before use.
        function script:Get-DeadPort {
            $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
            $l.Start(); $port = $l.LocalEndpoint.Port; $l.Stop(); $port
        }

        # Everything a script can see of an error: its view, every property, and the whole exception chain.
        function script:Show-Error($Record) {
            $Record | Out-String -Width 400
            $Record | Format-List * -Force | Out-String -Width 400
            $Record.InvocationInfo | Format-List * | Out-String -Width 400
            for ($e = $Record.Exception; $e; $e = $e.InnerException) {
                $e | Format-List * -Force | Out-String -Width 400
            }
        }

        # Runs a block with every stream merged into text; a terminating error is shown like the others.
        function script:Invoke-Shown([scriptblock] $Block) {
            $VerbosePreference = 'Continue'; $DebugPreference = 'Continue'; $WarningPreference = 'Continue'
            $InformationPreference = 'Continue'
            $out = try { & $Block *>&1 } catch { $_ }
            foreach ($o in $out) {
                if ($o -is [System.Management.Automation.ErrorRecord]) { Show-Error $o }
                else {
                    $o | Out-String -Width 400
                    if ($o -isnot [string]) { $o | Format-List * -Force | Out-String -Width 400 }
                }
            }
        }

        # Every path that can print, on a queue whose URL (or connection string) holds the secret. The URL is
        # only ever in a variable, except once inline for -AsJob: Get-Job shows that command line.
        function script:Invoke-EveryPath([hashtable] $Connect) {
            $log = Join-Path $TestDrive "worker-$([guid]::NewGuid().ToString('N')).log"
            $text = [System.Collections.Generic.List[string]]::new()
            $text.Add((Invoke-Shown {
                $q = Connect-PQQueue @Connect -PassThru
                Initialize-PQQueue -Queue $q -Confirm:$false
                $q; $q | ConvertTo-Json -Depth 5; $q.Config | Format-List * -Force | Out-String -Width 400; $q.Config.Url; $q.Config.ConnectionString; $q.Config.EffectiveUrl
                Submit-PQTask -Queue $q -Key sec1 -Type work -Data @{ a = 1 } -PassThru | ConvertTo-Json -Depth 5
                Submit-PQTask -Queue $q -Key sec1 -Type work             # TaskAlreadyExists
                Submit-PQTask -Queue $q -Key sec-bad -Type work -Delay -5
                Get-PQTask -Queue $q | ConvertTo-Json -Depth 5
                Get-PQTask -Queue $q | Format-List * -Force | Out-String -Width 400
                Get-PQTask -Queue $q -Key missing                       # TaskNotFound
                Test-PQTask -Queue $q -Key sec1
                Request-PQCancel -Queue $q -Key missing
                Complete-PQTask -Queue $q -Key missing
                Wait-PQTask -Queue $q -Key sec1 -Timeout 0.1             # WaitTimeout
                Measure-PQQueue -Queue $q | ConvertTo-Json -Depth 5
                Receive-PQTask -Queue $q -Count 1 -AliveTime 30 | ForEach-Object { $_ | ConvertTo-Json -Depth 5; $_.Release() }
                Stop-PQWorker -Queue $q -Id nope
                Get-PQWorker -Queue $q -Id nope
                Start-PQWorker -Queue $q -UntilEmpty -PollInterval 0.1 -RetryWait 0 -MaxAttempts 1 -Verbose -Handler @{
                    work = { param($Task) Write-Warning "warned $($Task.Key)"; $Task | ConvertTo-Json -Depth 5 -WarningAction SilentlyContinue; throw "failed on $($Task.Queue)" }
                } | ConvertTo-Json -Depth 5
                Submit-PQTask -Queue $q -Key sec2 -Type work
                Start-PQWorker -Queue $q -UntilEmpty -PollInterval 0.1 -LogPath $log -Handler @{ work = { param($Task) $Task.Queue.Config | Format-List * | Out-String -Width 400 } }
            }))
            $text.Add((Get-Content -Raw -LiteralPath $log))

            # -AsJob with the URL written out in the command: Get-Job shows that line, and the job keeps a log.
            $inline = if ($Connect.Url) { "-Url '$($Connect.Url)'" } else { "-ConnectionString '$($Connect.ConnectionString)' -Provider $($Connect.Provider)" }
            $inline += " -Table $($Connect.Table)"
            Submit-PQTask -Queue (Connect-PQQueue @Connect -PassThru) -Key sec3 -Type slow
            $job = Invoke-Expression "Start-PQWorker -Queue (Connect-PQQueue $inline -PassThru) -AsJob -PollInterval 0.1 -HeartbeatInterval 0.2 -Handler @{ slow = { param(`$Task) while (-not `$Task.IsCancellationRequested) { Start-Sleep -Milliseconds 20 } } }"
            try {
                $q = Connect-PQQueue @Connect -PassThru
                $clock = [Diagnostics.Stopwatch]::StartNew()
                while (-not (Get-PQWorker -Queue $q)) {
                    if ($clock.Elapsed.TotalSeconds -gt 30) { throw "The -AsJob worker did not start: $($job | Receive-Job *>&1)" }
                    Start-Sleep -Milliseconds 50
                }
                $text.Add((Invoke-Shown {
                    Get-PQWorker -Queue $q | ConvertTo-Json -Depth 5
                    Get-PQWorker -Queue $q | Format-List * -Force | Out-String -Width 400
                    Get-Job -Id $job.Id | Format-List * -Force | Out-String -Width 400
                    Get-Job -Id $job.Id | ConvertTo-Json -Depth 3 -WarningAction SilentlyContinue
                    (Get-Job -Id $job.Id).Command
                }))
            }
            finally {
                Request-PQCancel -Queue (Connect-PQQueue @Connect -PassThru) -Key sec3 -ErrorAction SilentlyContinue
                $job | Stop-Job
                $null = $job | Wait-Job -Timeout 60
                $text.Add((Invoke-Shown { $job | Receive-Job }))
                $job | Remove-Job -Force
            }
            $text -join "`n"
        }
    }

    AfterEach { Disconnect-PQQueue }

    It 'shows no password in malformed URLs or connection errors (<Name>)' -ForEach @(
        @{ Name = 'sqlite URL with a user'; Url = 'sqlite://pq:<secret>@host/x.db'; Expect = "'sqlite://pq:\*\*\*@host/x.db' has no file path" }
        @{ Name = "an unescaped '@' in the password"; Url = 'postgresql://pq:p@<secret>@127.0.0.1:<port>/db'; Expect = 'postgresql://pq:\*\*\*@127' }
        @{ Name = 'an unknown scheme'; Url = 'oracle://pq:<secret>@127.0.0.1/db' }
        @{ Name = 'an unreachable MySQL server'; Url = 'mysql://pq:<secret>@127.0.0.1:<port>/db' }
        @{ Name = 'an unknown option'; Url = 'postgresql://pq:<secret>@127.0.0.1:<port>/db?nosuch=1' }
        @{ Name = 'an unreachable server'; Url = 'postgresql://pq:<secret>@127.0.0.1:<port>/db'; Expect = 'acquire failed' }
        @{ Name = 'an unreachable server, connection string'; ConnectionString = 'Host=127.0.0.1;Port=<port>;Username=pq;Password=<secret>;Database=db'; Provider = 'postgresql'; Expect = 'Cannot connect to the database of the queue postgresql://pq@127\.0\.0\.1' }
        @{ Name = 'a SQLite connection string with a password'; ConnectionString = 'Data Source=<file>;Password=<secret>'; Provider = 'sqlite' }
    ) {
        $port = Get-DeadPort
        $file = Join-Path $TestDrive "pw-$([guid]::NewGuid().ToString('N')).db"
        $connect = @{}
        if ($Url) { $connect.Url = $Url.Replace('<secret>', $Secret).Replace('<port>', $port) }
        else { $connect.ConnectionString = $ConnectionString.Replace('<secret>', $Secret).Replace('<port>', $port).Replace('<file>', $file); $connect.Provider = $Provider }
        # Each command on its own: a terminating error must not hide the next command's.
        $shown = @(
            Invoke-Shown { Connect-PQQueue @connect -PassThru | ConvertTo-Json -Depth 5 }
            Invoke-Shown { Get-PQTask -Queue (Connect-PQQueue @connect -PassThru) }
            Invoke-Shown { Submit-PQTask -Queue (Connect-PQQueue @connect -PassThru) -Key k -Type t }
            Invoke-Shown { Initialize-PQQueue -Queue (Connect-PQQueue @connect -PassThru) -Confirm:$false }
            Invoke-Shown { Measure-PQQueue -Queue (Connect-PQQueue @connect -PassThru) }
            Invoke-Shown { Get-PQWorker -Queue (Connect-PQQueue @connect -PassThru) }
            Invoke-Shown {
                # A worker on an unreachable queue keeps trying: its log must not show the password either.
                $job = Start-PQWorker -Queue (Connect-PQQueue @connect -PassThru) -AsJob -UntilEmpty -PollInterval 0.1 -Handler @{ t = { 'ok' } }
                $clock = [Diagnostics.Stopwatch]::StartNew()
                while ($job.State -eq 'Running' -and -not ($job.Information.MessageData.Message -match 'acquire failed') -and $clock.Elapsed.TotalSeconds -lt 20) { Start-Sleep -Milliseconds 50 }
                $job | Stop-Job
                $null = $job | Wait-Job -Timeout 30
                $job | Receive-Job
                $job | Remove-Job -Force
            }
        ) -join "`n"
        if ($Expect) { $shown | Should -Match $Expect }
        $shown | Should -Not -BeNullOrEmpty
        $shown | Should -Not -Match $Secret
    }

    It 'shows no password anywhere on PostgreSQL (<Name>)' -ForEach @(
        @{ Name = 'URL'; Form = 'url' }
        @{ Name = 'connection string'; Form = 'cs' }
    ) {
        if (-not $env:PQ_TEST_POSTGRES) {
            if ($env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI.' }
            Set-ItResult -Skipped -Because 'no PostgreSQL here (set PQ_TEST_POSTGRES)'
            return
        }
        # The shared test server trusts every password, so one in the URL connects.
        $server = [uri] $env:PQ_TEST_POSTGRES
        $user = $server.UserInfo.Split(':')[0]
        $table = 'pester_secret_' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        $connect = if ($Form -eq 'url') {
            @{ Url = "postgresql://${user}:$Secret@$($server.Host):$($server.Port)$($server.AbsolutePath)"; Table = $table }
        } else {
            @{ ConnectionString = "Host=$($server.Host);Port=$($server.Port);Username=$user;Password=$Secret;Database=$($server.AbsolutePath.TrimStart('/'))"; Provider = 'postgresql'; Table = $table }
        }
        $shown = Invoke-EveryPath $connect
        if ($env:PQ_DEBUG_DIR) { Set-Content (Join-Path $env:PQ_DEBUG_DIR "shown-$Form.txt") $shown }
        $shown | Should -Match 'TaskAlreadyExists'         # the paths did run
        $shown | Should -Match 'end sec2 \(work\)'         # the -LogPath file
        $shown | Should -Match 'PerfectQueueWorker'        # Get-Job
        $shown | Should -Match 'Start-PQWorker -Queue \(Connect-PQQueue'   # the job's command line
        $shown | Should -Match 'postgresql://'
        $shown | Should -Not -Match $Secret
    }

    It 'shows no password anywhere on SQLite, whose queue is opened from a connection string with one' {
        $connect = @{ ConnectionString = "Data Source=$(Join-Path $TestDrive 'cs.db');Password=$Secret"; Provider = 'sqlite' }
        $shown = Invoke-Shown { Connect-PQQueue @connect -PassThru | ConvertTo-Json -Depth 5; Get-PQTask }
        $shown | Should -Not -Match $Secret
    }
}

Describe 'The worker log file' {
    It 'is created readable by its owner only' -Skip:$IsWindows {
        Connect-PQQueue (New-TestUrl)
        Submit-PQTask -Key l1 -Type work
        $log = Join-Path $TestDrive 'private.log'
        $null = Start-PQWorker -UntilEmpty -PollInterval 0.1 -LogPath $log -Handler @{ work = { 'ok' } }
        (Get-Content -Raw $log) | Should -Match 'end l1'
        (Get-Item $log).UnixFileMode | Should -Be ([System.IO.UnixFileMode]'UserRead, UserWrite')
    }
}
