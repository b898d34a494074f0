# The bad-input catalog of docs/errors.md, one test per row, on SQLite and on PostgreSQL (PQ_TEST_POSTGRES).
# Each row gives a command with one bad input, the error id it must fail with, and what its message must say
# (what is wrong and what to do). After each, the queue must be exactly as before: nothing stored half-way.
# Then the cases that need a queue in a given state: rows written before submit checked data, -Compression,
# Retry(TimeSpan), and a bad item amid a piped batch.

BeforeDiscovery {
    $script:Backends = @('sqlite', 'postgresql')
    $emoji = [char]::ConvertFromUtf32(0x1F600)
    $script:Catalog = @(
        # ---- keys ----
        @{ Name = 'an empty key'; Id = 'ParameterArgumentValidationError'; Message = 'null or empty'; Action = { Submit-PQTask -Key '' -Type t } }
        @{ Name = 'a key of only white space'; Id = 'InvalidArgument'; Message = 'key must not be empty or only white space'; Action = { Submit-PQTask -Key '   ' -Type t } }
        @{ Name = 'a key of 257 characters'; Id = 'InvalidArgument'; Message = 'key is 257 UTF-16 code units long; the limit is 256.*shorter key'; Action = { Submit-PQTask -Key ('k' * 257) -Type t } }
        @{ Name = 'a key of 129 emoji (258 UTF-16 code units)'; Id = 'InvalidArgument'; Message = 'key is 258 UTF-16 code units long; the limit is 256'; Action = [scriptblock]::Create("Submit-PQTask -Key ('$emoji' * 129) -Type t") }
        @{ Name = 'a key with NUL'; Id = 'InvalidArgument'; Message = 'key contains the control character U\+0000 at position 2\. Use printable text'; Action = { Submit-PQTask -Key "a`0b" -Type t } }
        @{ Name = 'a key with a line break'; Id = 'InvalidArgument'; Message = 'key contains the control character U\+000A'; Action = { Submit-PQTask -Key "a`nb" -Type t } }
        @{ Name = 'a key with an unpaired surrogate'; Id = 'InvalidArgument'; Message = 'key contains an unpaired surrogate U\+D800'; Action = { Submit-PQTask -Key ('a' + [char]0xD800) -Type t } }
        @{ Name = 'a key with a trailing space'; Id = 'InvalidArgument'; Message = 'key starts or ends with white space.*Trim it'; Action = { Submit-PQTask -Key 'k ' -Type t } }
        @{ Name = 'a key that is taken'; Id = 'TaskAlreadyExists'; Message = "key 'sentinel' already exists.*Use another key"; Action = { Submit-PQTask -Key sentinel -Type t } }
        # ---- types ----
        @{ Name = 'a blank type'; Id = 'InvalidArgument'; Message = "has no type. Give a type such as 'backup'"; Action = { Submit-PQTask -Key k -Type '  ' } }
        @{ Name = 'a type of 257 characters'; Id = 'InvalidArgument'; Message = 'type is 257 UTF-16 code units long; the limit is 256'; Action = { Submit-PQTask -Key k -Type ('t' * 257) } }
        @{ Name = 'a type with an escape character'; Id = 'InvalidArgument'; Message = 'type contains the control character U\+001B'; Action = { Submit-PQTask -Key k -Type "t`e[31m" } }
        # ---- users ----
        @{ Name = 'a user of 1000 characters'; Id = 'InvalidArgument'; Message = 'user is 1000 UTF-16 code units long; the limit is 256'; Action = { Submit-PQTask -Key k -Type t -User ('u' * 1000) } }
        @{ Name = 'a user with NUL'; Id = 'InvalidArgument'; Message = 'user contains the control character U\+0000.*Leave the user out'; Action = { Submit-PQTask -Key k -Type t -User "u`0" } }
        @{ Name = 'a user with a tab'; Id = 'InvalidArgument'; Message = 'user contains the control character U\+0009'; Action = { Submit-PQTask -Key k -Type t -User "a`tb" } }
        @{ Name = 'a user of only white space'; Id = 'InvalidArgument'; Message = 'user must not be empty or only white space'; Action = { Submit-PQTask -Key k -Type t -User '   ' } }
        # ---- data ----
        @{ Name = 'data that is not JSON'; Id = 'InvalidTaskData'; Message = 'not valid JSON.*Give a JSON object'; Action = { Submit-PQTask -Key k -Type t -Data 'not json' } }
        @{ Name = 'data that is a JSON array'; Id = 'InvalidTaskData'; Message = 'must be a JSON object.*not an array'; Action = { Submit-PQTask -Key k -Type t -Data '[1,2]' } }
        @{ Name = 'data that is a number'; Id = 'InvalidTaskData'; Message = 'must be a JSON object.*not a single number'; Action = { Submit-PQTask -Key k -Type t -Data 42 } }
        @{ Name = 'JSON with a repeated name'; Id = 'InvalidTaskData'; Message = "Duplicate property 'a'"; Action = { Submit-PQTask -Key k -Type t -Data '{"a":1,"a":2}' } }
        @{ Name = 'JSON with a repeated name inside'; Id = 'InvalidTaskData'; Message = "Duplicate property 'b'"; Action = { Submit-PQTask -Key k -Type t -Data '{"o":{"b":1,"b":2}}' } }
        @{ Name = 'JSON with a broken \u escape'; Id = 'InvalidTaskData'; Message = 'not valid Unicode'; Action = { Submit-PQTask -Key k -Type t -Data '{"s":"\ud800"}' } }
        @{ Name = 'hashtables nested 70 deep'; Id = 'InvalidTaskData'; Message = 'nests deeper than 64 levels'; Action = { $o = @{}; $c = $o; 1..70 | ForEach-Object { $n = @{}; $c.x = $n; $c = $n }; Submit-PQTask -Key k -Type t -Data $o } }
        @{ Name = 'JSON text nested 70 deep'; Id = 'InvalidTaskData'; Message = 'depth of 64'; Action = { Submit-PQTask -Key k -Type t -Data (('{"a":' * 70) + '1' + ('}' * 70)) } }
        @{ Name = 'data over 16 MiB'; Id = 'InvalidTaskData'; Message = 'the limit is 16,777,216 \(16 MiB\)\. Store big content elsewhere'; Action = { Submit-PQTask -Key k -Type t -Data @{ s = 'x' * 16MB } -Compress } }
        # ---- submit options ----
        @{ Name = '-MaxRunning 0'; Id = 'InvalidArgument'; Message = 'MaxRunning must be at least 1 \(got 0\)'; Action = { Submit-PQTask -Key k -Type t -MaxRunning 0 } }
        @{ Name = 'a negative -Delay'; Id = 'InvalidArgument'; Message = 'Delay must not be negative'; Action = { Submit-PQTask -Key k -Type t -Delay -5 } }
        @{ Name = '-Timeout 0'; Id = 'InvalidArgument'; Message = "Timeout \(the execution limit\) must be more than zero and at most 365 days \(got 00:00:00\)\. Give seconds or a TimeSpan.*leave it out for no limit"; Action = { Submit-PQTask -Key k -Type t -Timeout 0 } }
        @{ Name = 'a negative -Timeout'; Id = 'InvalidArgument'; Message = 'Timeout \(the execution limit\) must be more than zero.*\(got -00:00:05\)'; Action = { Submit-PQTask -Key k -Type t -Timeout -5 } }
        @{ Name = 'a -Timeout over a year'; Id = 'InvalidArgument'; Message = 'at most 365 days \(got 365\.00:00:01\)'; Action = { Submit-PQTask -Key k -Type t -Timeout 31536001 } }
        @{ Name = "-Timeout 'abc'"; Id = 'ParameterArgumentTransformationError'; Message = "'abc' is not a duration. Give a number of seconds"; Action = { Submit-PQTask -Key k -Type t -Timeout 'abc' } }
        @{ Name = '-RunAt with -Delay'; Id = 'AmbiguousParameterSet'; Message = 'cannot be used together'; Action = { Submit-PQTask -Key k -Type t -Delay 5 -RunAt (Get-Date) } }
        @{ Name = '-Compression Zip'; Id = 'CannotConvertArgumentNoMessage'; Message = 'None, Gzip'; Action = { Submit-PQTask -Key k -Type t -Compression Zip } }
        @{ Name = '-Compress with -Compression None'; Id = 'InvalidArgument'; Message = 'give one of them'; Action = { Submit-PQTask -Key k -Type t -Compress -Compression None } }
        # ---- URLs (the password must never show) ----
        @{ Name = 'an unknown URL scheme'; Id = 'InvalidConfiguration'; Message = 'is not a queue URL. Use sqlite:///'; Secret = 'S3cretZ'; Action = { Connect-PQQueue 'oracle://u:S3cretZ@h/db' } }
        @{ Name = 'a URL with nothing after the scheme'; Id = 'InvalidConfiguration'; Message = 'is not a valid URL. The form is scheme://'; Action = { Connect-PQQueue 'postgresql://' } }
        @{ Name = 'a URL with a bad port'; Id = 'InvalidConfiguration'; Message = 'is not a valid URL'; Secret = 'S3cretP'; Action = { Connect-PQQueue 'postgresql://u:S3cretP@h:99999/db' } }
        @{ Name = 'a URL whose password holds @'; Id = 'InvalidConfiguration'; Message = 'url'; Secret = 'S3cretB'; Action = { Connect-PQQueue 'postgresql://pq:p@S3cretB@127.0.0.1:1/db' } }
        @{ Name = 'a sqlite URL with a password and no path'; Id = 'InvalidConfiguration'; Message = 'has no file path. Use sqlite:///'; Secret = 'S3cretA'; Action = { Connect-PQQueue 'sqlite://pq:S3cretA@host/x.db' } }
        # ---- table names ----
        @{ Name = 'a table name with a dash'; Id = 'InvalidConfiguration'; Message = "'bad-name' is not a valid table name. Use 1-50 letters"; Action = { Connect-PQQueue 'sqlite:///x.db' -Table 'bad-name' } }
        @{ Name = 'a table name of 51 characters'; Id = 'InvalidConfiguration'; Message = 'not a valid table name. Use 1-50'; Action = { Connect-PQQueue 'sqlite:///x.db' -Table ('a' * 51) } }
        # ---- durations ----
        @{ Name = '-AliveTime 0'; Id = 'InvalidArgument'; Message = '-AliveTime must be more than zero'; Action = { Receive-PQTask -AliveTime 0 } }
        @{ Name = "-AliveTime 'abc'"; Id = 'ParameterArgumentTransformationError'; Message = "'abc' is not a duration. Give a number of seconds"; Action = { Receive-PQTask -AliveTime 'abc' } }
        @{ Name = '-PollInterval 0'; Id = 'InvalidArgument'; Message = 'PollInterval must be more than zero'; Action = { Start-PQWorker -Handler @{ t = {} } -PollInterval 0 -MaxTasks 1 } }
        @{ Name = 'Receive-PQTask -Count 0'; Id = 'ParameterArgumentValidationError'; Message = 'minimum allowed range of 1'; Action = { Receive-PQTask -Count 0 } }
        # ---- config files (written in BeforeAll) ----
        @{ Name = 'a config with alive_time -1'; Id = 'InvalidConfiguration'; Message = 'alive_time: must be more than zero seconds \(got -1\)'; Action = { Connect-PQQueue -ConfigPath (Join-Path $TestDrive 'neg.yml') -Environment production } }
        @{ Name = 'a config with processors: lots'; Id = 'InvalidConfiguration'; Message = "processors: 'lots' is not a number"; Action = { Connect-PQQueue -ConfigPath (Join-Path $TestDrive 'proc.yml') -Environment production } }
        @{ Name = 'a config with an unknown key'; Id = 'InvalidConfiguration'; Message = "'bogus_key' is not a configuration key. Known keys: type, url"; Action = { Connect-PQQueue -ConfigPath (Join-Path $TestDrive 'unknown.yml') -Environment production } }
        @{ Name = 'a config without the environment'; Id = 'InvalidConfiguration'; Message = "there is no environment 'production'. The file has: staging. Choose one with -Environment"; Action = { Connect-PQQueue -ConfigPath (Join-Path $TestDrive 'staging.yml') -Environment production } }
        @{ Name = 'a config that is not YAML'; Id = 'InvalidConfiguration'; Message = 'not valid YAML or JSON at line'; Action = { Connect-PQQueue -ConfigPath (Join-Path $TestDrive 'syntax.yml') -Environment production } }
        # ---- paths ----
        @{ Name = 'a config file that does not exist'; Id = 'InvalidConfiguration'; Message = 'cannot read the config file'; Action = { Connect-PQQueue -ConfigPath (Join-Path $TestDrive 'none.yml') -Environment production } }
        @{ Name = 'a -HandlerPath that does not exist'; Id = 'InvalidConfiguration'; Message = 'No handler script at .*Correct -HandlerPath'; Action = { Start-PQWorker -HandlerPath (Join-Path $TestDrive 'none.ps1') -MaxTasks 1 } }
        @{ Name = 'an -AssemblyPath that does not exist'; Id = 'InvalidConfiguration'; Message = 'No handler assembly at .*correct -AssemblyPath'; Action = { Start-PQWorker -AssemblyPath (Join-Path $TestDrive 'none.dll') -Dispatch My.Dispatch -MaxTasks 1 } }
        # ---- handler tables ----
        @{ Name = 'an empty handler table'; Id = 'InvalidArgument'; Message = 'The handler table is empty. Give at least one route'; Action = { Start-PQWorker -Handler @{} -MaxTasks 1 } }
        @{ Name = 'a handler that is not a scriptblock'; Id = 'InvalidArgument'; Message = "handler for 't' must be a scriptblock"; Action = { Start-PQWorker -Handler @{ t = 42 } -MaxTasks 1 } }
        @{ Name = 'a route that is not a valid regex'; Id = 'InvalidArgument'; Message = "route '\^\[' is not a valid regular expression"; Action = { Start-PQWorker -Handler @{ '^[' = {} } -MaxTasks 1 } }
        # ---- lookups ----
        @{ Name = 'Get-PQTask of a missing key'; Id = 'TaskNotFound'; Message = "No task has the key 'nope'"; Action = { Get-PQTask -Key nope } }
        @{ Name = 'Complete-PQTask of a missing key'; Id = 'TaskNotFound'; Message = "No task has the key 'nope'"; Action = { Complete-PQTask -Key nope } }
        @{ Name = 'Get-PQTask -Key with NUL'; Id = 'TaskNotFound'; Message = 'No task has the key'; Action = { Get-PQTask -Key "a`0" } }
    )
}

BeforeAll {
    $script:ModuleDir = $env:PQ_MODULE_PATH
    if (-not $ModuleDir -or -not (Test-Path (Join-Path $ModuleDir 'PerfectQueue.psd1'))) {
        throw "Set PQ_MODULE_PATH to the assembled module folder (run: dotnet pwsh ./build.ps1 test). Got: '$ModuleDir'."
    }
    Import-Module (Resolve-Path $ModuleDir).ProviderPath -Force

    "production:`n  url: sqlite:///x.db`n  alive_time: -1" | Set-Content (Join-Path $TestDrive 'neg.yml')
    "production:`n  url: sqlite:///x.db`n  processors: lots" | Set-Content (Join-Path $TestDrive 'proc.yml')
    "production:`n  url: sqlite:///x.db`n  bogus_key: 1" | Set-Content (Join-Path $TestDrive 'unknown.yml')
    "staging:`n  url: sqlite:///x.db" | Set-Content (Join-Path $TestDrive 'staging.yml')
    "production: [" | Set-Content (Join-Path $TestDrive 'syntax.yml')

    # Makes a fresh queue of the backend the session's default; $null when the backend is not available.
    function script:Connect-TestQueue([string] $Backend) {
        if ($Backend -eq 'postgresql') {
            if (-not $env:PQ_TEST_POSTGRES) {
                if ($env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI.' }
                return $null
            }
            $q = Connect-PQQueue $env:PQ_TEST_POSTGRES -Table ('bad_' + [guid]::NewGuid().ToString('N').Substring(0, 12)) -PassThru
            Initialize-PQQueue
            return $q
        }
        Connect-PQQueue ('sqlite:///' + (Join-Path $TestDrive "q-$([guid]::NewGuid().ToString('N').Substring(0, 12)).db")) -PassThru
    }

    # Everything a bad input could have changed, in one comparable text.
    function script:Get-QueueState($Queue) {
        (Get-PQTask -Queue $Queue | ForEach-Object { "$($_.Key)|$($_.Type)|$($_.User)|$($_.Status)|$($_.Attempts)|$($_.Message)|$($_.Data | ConvertTo-Json -Compress)" }) -join "`n"
    }

    # Runs a command and returns every error it raised, terminating or not.
    function script:Get-Errors([scriptblock] $Action) {
        $errors = [System.Collections.Generic.List[object]]::new()
        try {
            $ErrorActionPreference = 'Continue'
            foreach ($item in @(& $Action 2>&1)) { if ($item -is [System.Management.Automation.ErrorRecord]) { $errors.Add($item) } }
        }
        catch { $errors.Add($_) }
        , $errors.ToArray()
    }

    # Writes a task's stored data bytes directly, as rows written before submit checked data look.
    function script:Set-RawData($Queue, [string] $Key, [byte[]] $Bytes) {
        $context = [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext([PerfectQueue.Queue].Assembly)
        $hex = [Convert]::ToHexString($Bytes)
        $table = $Queue.Config.Table
        if ($Queue.Config.Url -like 'sqlite:*') {
            $type = $context.LoadFromAssemblyName([System.Reflection.AssemblyName]'Microsoft.Data.Sqlite').GetType('Microsoft.Data.Sqlite.SqliteConnection')
            $file = $Queue.Config.Url -replace '^sqlite:///', ''
            $connection = [Activator]::CreateInstance($type, "Data Source=$file")
            $sql = "UPDATE `"$table`" SET data = X'$hex' WHERE task_key = '$Key'"
        }
        else {
            $type = $context.LoadFromAssemblyName([System.Reflection.AssemblyName]'Npgsql').GetType('Npgsql.NpgsqlConnection')
            $u = [uri]$env:PQ_TEST_POSTGRES
            $user, $password = $u.UserInfo -split ':', 2
            $cs = "Host=$($u.Host);Port=$(if ($u.Port -gt 0) { $u.Port } else { 5432 });Username=$([uri]::UnescapeDataString($user));Database=$($u.AbsolutePath.TrimStart('/'))"
            if ($password) { $cs += ";Password=$([uri]::UnescapeDataString($password))" }
            $connection = [Activator]::CreateInstance($type, $cs)
            $sql = "UPDATE `"$table`" SET data = '\x$hex'::bytea WHERE task_key = '$Key'"
        }
        try {
            $connection.Open()
            $command = $connection.CreateCommand()
            $command.CommandText = $sql
            $command.ExecuteNonQuery() | Should -Be 1
        }
        finally { $connection.Dispose() }
    }
}

AfterAll { Disconnect-PQQueue }

Describe 'Bad input on <_>' -ForEach $Backends {
    BeforeAll { $script:Backend = $_ }
    BeforeEach {
        $script:Queue = Connect-TestQueue $Backend
        if (-not $Queue) { Set-ItResult -Skipped -Because 'no PostgreSQL here (set PQ_TEST_POSTGRES; build.ps1 test starts one when installed)'; return }
        Submit-PQTask -Key sentinel -Type t -Data @{ n = 1 } -User someone
    }

    It 'refuses <Name> with <Id>, says what to do, and changes nothing' -ForEach $Catalog {
        $before = Get-QueueState $Queue
        $errors = Get-Errors $Action
        @($errors).Count | Should -Be 1 -Because "one error was expected, got: $(@($errors) -join ' | ')"
        $e = $errors[0]
        $e.FullyQualifiedErrorId | Should -BeLike "$Id,*"
        $e.Exception.Message | Should -Match $Message
        if ($Secret) {
            # Everything the module wrote (not PowerShell's echo of the command line, which is the caller's own text).
            "$($e.Exception) $($e.ErrorDetails) $($e.TargetObject)" | Should -Not -Match $Secret -Because 'a password never shows in an error'
        }
        # A failed Connect-PQQueue keeps the session's queue.
        (Get-PQTask -Queue $Queue | Measure-Object).Count | Should -Be 1
        Get-QueueState $Queue | Should -Be $before
    }

    It 'stores the good neighbours of a bad piped item (<Name>)' -ForEach @(
        # Scriptblocks, not the objects: the test report is XML, which cannot hold NUL.
        @{ Name = 'a user with NUL'; Bad = { [pscustomobject]@{ Key = 'bad'; Type = 't'; User = "u`0" } } }
        @{ Name = 'a user of 300 characters'; Bad = { [pscustomobject]@{ Key = 'bad'; Type = 't'; User = 'u' * 300 } } }
        @{ Name = 'a type with a line break'; Bad = { [pscustomobject]@{ Key = 'bad'; Type = "t`n" } } }
        @{ Name = 'JSON data with a repeated name'; Bad = { [pscustomobject]@{ Key = 'bad'; Type = 't'; Data = '{"a":1,"a":2}' } } }
    ) {
        $item = & $Bad
        $errors = Get-Errors {
            @([pscustomobject]@{ Key = 'good-1'; Type = 't' }, $item, [pscustomobject]@{ Key = 'good-2'; Type = 't' }) | Submit-PQTask
        }
        (Get-PQTask).Key | Should -Be @('sentinel', 'good-1', 'good-2')
        @($errors).Count | Should -Be 1
        $errors[0].TargetObject | Should -Be 'bad'
    }

    It 'submits, receives, lists and finishes the longest key, type and user of 4-byte characters' {
        $longest = [char]::ConvertFromUtf32(0x1F600) * 128
        Submit-PQTask -Key $longest -Type ('t' + $longest.Substring(2) + 'y') -User ('u' + $longest.Substring(2) + 's') -MaxRunning 1
        $t = Receive-PQTask -Count 2 | Where-Object Key -EQ $longest
        $t.User.Length | Should -Be 256
        (Get-PQTask -User $t.User -Status Running).Key | Should -Be $longest
        $t | Complete-PQTask
        (Get-PQTask -Key $longest).Status | Should -Be 'Finished'
    }

    Context 'a row written before submit checked data' {
        BeforeEach {
            if (-not $Queue) { return }
            Submit-PQTask -Key bad -Type t -Data @{ a = 1 }
            Submit-PQTask -Key after -Type t -Data @{ n = 3 }
            Set-RawData $Queue bad ([Text.Encoding]::UTF8.GetBytes('{"a":1,"a":2}'))
        }

        It 'is its own TaskDataUnreadable error in Get-PQTask, and the other tasks still list' {
            $errors = Get-Errors { Get-PQTask }
            $listed = Get-PQTask -ErrorAction SilentlyContinue
            $listed.Key | Should -Be @('sentinel', 'after')
            $listed[1].Data.n | Should -Be 3
            @($errors).Count | Should -Be 1
            $errors[0].FullyQualifiedErrorId | Should -BeLike 'TaskDataUnreadable,*'
            "$($errors[0].CategoryInfo.Category)" | Should -Be 'InvalidData'
            $errors[0].TargetObject | Should -Be 'bad'
            $errors[0].Exception.Message | Should -Match "Duplicate property 'a'"
            $errors[0].ErrorDetails.RecommendedAction | Should -Match "Complete-PQTask -Key 'bad'"
            Complete-PQTask -Key bad # what the error recommends works
            "$($Queue['bad'].GetInfo().Status)" | Should -Be 'Finished'
        }

        It 'is released by Receive-PQTask, uncounted and reported, while the other tasks are handed out' {
            $errors = Get-Errors { $script:got = Receive-PQTask -Count 3 -AliveTime 60 }
            $got.Key | Should -Be @('sentinel', 'after')
            @($errors).Count | Should -Be 1
            $errors[0].FullyQualifiedErrorId | Should -BeLike 'TaskDataUnreadable,*'
            $errors[0].TargetObject | Should -Be 'bad'
            $errors[0].Exception.Message | Should -Match 'released \(its attempt not counted\)'
            $row = $Queue['bad'].GetInfo()
            "$($row.Status)" | Should -Be 'Waiting'
            $row.Attempts | Should -Be 0
            $got | ForEach-Object { $_.Finish() }
        }
    }

    It 'releases the received tasks that a stopped pipeline never took' {
        Submit-PQTask -Key second -Type t
        Submit-PQTask -Key third -Type t
        $first = Receive-PQTask -Count 3 -AliveTime 60 | Select-Object -First 1
        $first.Key | Should -Be 'sentinel'
        $rest = Get-PQTask -Key second, third
        $rest.Status | Should -Be @('Waiting', 'Waiting')
        $rest.Attempts | Should -Be @(0, 0)
        (Get-PQTask -Key sentinel).Status | Should -Be 'Running'
    }

    It 'stores data gzip-compressed with -Compression Gzip, and plainly with -Compression None' {
        (Submit-PQTask -Key z1 -Type t -Data @{ text = 'x' * 300 } -Compression Gzip -PassThru).Compressed | Should -BeTrue
        (Submit-PQTask -Key z2 -Type t -Data @{ n = 1 } -Compression None -PassThru).Compressed | Should -BeFalse
        $rows = 'Key,Type,Compression', 'z3,t,gzip', 'z4,t,' | ConvertFrom-Csv
        ($rows | Submit-PQTask -PassThru).Compressed | Should -Be @($true, $false)
        (Get-PQTask -Key z1).Data.text | Should -Be ('x' * 300)
        $t = Receive-PQTask -Count 10 | Where-Object Key -EQ z1
        $t.UpdateData(@{ text = 'y' * 300 })
        (Get-PQTask -Key z1).Compressed | Should -BeTrue -Because 'UpdateData keeps a gzip task gzip'
        (Get-PQTask -Key z1).Data.text | Should -Be ('y' * 300)
    }

    It 'retries after the TimeSpan given to $Task.Retry(TimeSpan), keeping the last message' {
        $t = Receive-PQTask
        $t.Retry('first failure', [timespan]::Zero) | Should -BeTrue
        $t = Receive-PQTask
        $t.Retry([timespan]::FromSeconds(2)) | Should -BeTrue
        $info = Get-PQTask -Key sentinel
        "$($info.Status)" | Should -Be 'Scheduled'
        $info.Message | Should -Be 'first failure' -Because 'a TimeSpan is not a message'
        ($info.Timeout - (Get-Date)).TotalSeconds | Should -BeLessThan 60 -Because 'the default retry_wait is 300 s'
    }

    # Regression (H2): the worker cut the last output line at 500 UTF-16 units, inside the emoji, and PostgreSQL
    # refused that and NUL: the finish failed, so tasks that had succeeded ran again after every lease.
    It 'finishes, once, handlers whose last output holds NUL or an emoji where the old cut fell' {
        Complete-PQTask -Key sentinel
        Submit-PQTask -Key emoji -Type out -Data @{ kind = 'emoji' }
        Submit-PQTask -Key nul -Type out -Data @{ kind = 'nul' }
        $long = ('a' * 499) + [char]::ConvertFromUtf32(0x1F600) + ('b' * 100)
        $summary = Start-PQWorker -UntilEmpty -PollInterval 0.1 -AliveTime 5 -Handler @{
            out = { param($Task) if ($Task.Data.kind -eq 'emoji') { ('a' * 499) + [char]::ConvertFromUtf32(0x1F600) + ('b' * 100) } else { "before`0after" } }
        }
        $summary.Processed | Should -Be 2
        $summary.Succeeded | Should -Be 2
        (Get-PQTask -Key emoji).Message | Should -BeExactly $long
        (Get-PQTask -Key nul).Message | Should -BeExactly "before$([char]0xFFFD)after"
        (Get-PQTask -Key emoji, nul).Attempts | Should -Be @(1, 1)
    }

    It 'retries after the TimeSpan a handler gives $Task.Retry' {
        $summary = Start-PQWorker -Handler @{ t = { param($Task) $null = $Task.Retry([timespan]::FromSeconds(1)) } } -MaxTasks 1 -PollInterval 0.1
        $summary.Retried | Should -Be 1
        $info = Get-PQTask -Key sentinel
        $info.Attempts | Should -Be 1
        ($info.Timeout - (Get-Date)).TotalSeconds | Should -BeLessThan 60
    }
}
