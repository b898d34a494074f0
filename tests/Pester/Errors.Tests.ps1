# Database errors as a script sees them: the stable id DatabaseError (category ConnectionError), and a
# terminating error, because after the database failed once the command cannot usefully go on with its other
# items (PQErrors.IsTerminating). Run against the assembled module (PQ_MODULE_PATH), like Cmdlets.Tests.ps1.
#
# A database error on demand, with no SQL of our own: a queue whose table is PerfectQueue's own bookkeeping
# table perfectqueue_schema. That table exists (any Initialize creates it), so the queue opens; but it has
# none of a queue's columns, so every task query fails in the database itself.

BeforeAll {
    $script:ModuleDir = $env:PQ_MODULE_PATH
    if (-not $ModuleDir -or -not (Test-Path (Join-Path $ModuleDir 'PerfectQueue.psd1'))) {
        throw "Set PQ_MODULE_PATH to the assembled module folder (run: dotnet pwsh ./build.ps1 test). Got: '$ModuleDir'."
    }
    Import-Module $ModuleDir -Force

    # Per key, Test-PQTask runs one database query; a non-terminating error would give one record per key.
    # Returns what the script saw: whether the statement after the call ran, what try/catch caught, and the
    # error records of -ErrorVariable (-ErrorAction SilentlyContinue hides non-terminating ones only).
    function script:Invoke-OnBrokenQueue([PerfectQueue.Queue] $Queue) {
        $seen = @{ Reached = $false; Caught = $null; Errors = $null }
        try {
            Test-PQTask -Key first, second, third -Queue $Queue -ErrorAction SilentlyContinue -ErrorVariable ev
            $seen.Reached = $true
        }
        catch { $seen.Caught = $_ }
        $seen.Errors = @($ev)
        $seen
    }

    function script:Assert-TerminatingDatabaseError($Seen, [string] $Command) {
        $Seen.Reached | Should -BeFalse -Because 'a database error is terminating: the statement after the command must not run'
        $Seen.Caught | Should -Not -BeNullOrEmpty
        $Seen.Caught.FullyQualifiedErrorId | Should -Be "DatabaseError,PerfectQueue.PowerShell.Commands.$Command"
        "$($Seen.Caught.CategoryInfo.Category)" | Should -Be 'ConnectionError'
        $Seen.Caught.Exception | Should -BeOfType ([System.Data.Common.DbException])
        $Seen.Caught.TargetObject | Should -Be 'first' -Because 'the first item failed and the command stopped there'
        $Seen.Errors.Count | Should -Be 1 -Because 'the later keys are never tried'
    }
}

Describe 'A database error' {
    It 'on SQLite has the id DatabaseError and ends the command at its first item' {
        $file = Join-Path $TestDrive "db-$([guid]::NewGuid().ToString('N')).db"
        $good = [PerfectQueue.Queue]::Open("sqlite:///$file")
        try { $good.Initialize() } finally { $good.Dispose() }   # creates perfectqueue_schema in the file
        $broken = [PerfectQueue.Queue]::Open("sqlite:///$file", 'perfectqueue_schema')
        try { Assert-TerminatingDatabaseError (Invoke-OnBrokenQueue $broken) 'TestPQTaskCommand' }
        finally { $broken.Dispose() }
    }

    It 'on PostgreSQL has the id DatabaseError and ends the command at its first item' {
        if (-not $env:PQ_TEST_POSTGRES) {
            if ($env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI.' }
            Set-ItResult -Skipped -Because 'no PostgreSQL here (set PQ_TEST_POSTGRES; build.ps1 test starts one when installed)'
            return
        }
        $table = 'e_' + [guid]::NewGuid().ToString('N').Substring(0, 12)
        $good = [PerfectQueue.Queue]::Open($env:PQ_TEST_POSTGRES, $table)
        try {
            $good.Initialize()   # makes sure perfectqueue_schema exists on the server
            $broken = [PerfectQueue.Queue]::Open($env:PQ_TEST_POSTGRES, 'perfectqueue_schema')
            try { Assert-TerminatingDatabaseError (Invoke-OnBrokenQueue $broken) 'TestPQTaskCommand' }
            finally { $broken.Dispose() }
        }
        finally { $good.Dispose() }   # its empty table stays, as other server cases' do: the test cluster is throwaway
    }

    It 'stops a pipeline: later piped items never reach the database' {
        $file = Join-Path $TestDrive "db-$([guid]::NewGuid().ToString('N')).db"
        $good = [PerfectQueue.Queue]::Open("sqlite:///$file")
        try { $good.Initialize() } finally { $good.Dispose() }
        $broken = [PerfectQueue.Queue]::Open("sqlite:///$file", 'perfectqueue_schema')
        try {
            $after = [System.Collections.Generic.List[string]]::new()
            $caught = $null
            try {
                'first', 'second', 'third' | ForEach-Object { $after.Add($_); $_ } |
                    Request-PQCancel -Queue $broken -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable ev
            }
            catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'DatabaseError,PerfectQueue.PowerShell.Commands.RequestPQCancelCommand'
            @($ev).Count | Should -Be 1
            $after | Should -Be @('first') -Because 'a terminating error stops the pipeline before its next item'
        }
        finally { $broken.Dispose() }
    }

    It 'reading a file that is not a database is DatabaseError, terminating' {
        $file = Join-Path $TestDrive 'not-a-database.db'
        Set-Content -Path $file -Value ('this is a text file, not SQLite ' * 200)
        $caught = $null
        # Connecting opens nothing (it never creates or reads a file other than the embedded default's):
        # the first command that reads finds out.
        Connect-PQQueue "sqlite:///$file"
        try {
            Get-PQTask -ErrorAction SilentlyContinue
            'not reached'
        }
        catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -BeLike 'DatabaseError,*'
        "$($caught.CategoryInfo.Category)" | Should -Be 'ConnectionError'
        $caught.Exception | Should -BeOfType ([System.Data.Common.DbException])
    }
}
