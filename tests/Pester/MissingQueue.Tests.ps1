# A mistyped SQLite file or table (issue 9): Connect-PQQueue and the read commands never create a queue other
# than the embedded default's, and say what does not exist and how to create it; Submit-PQTask creates it.

BeforeAll {
    $script:ModuleDir = $env:PQ_MODULE_PATH
    if (-not $ModuleDir -or -not (Test-Path (Join-Path $ModuleDir 'PerfectQueue.psd1'))) {
        throw "Set PQ_MODULE_PATH to the assembled module folder (run: dotnet pwsh ./build.ps1 test). Got: '$ModuleDir'."
    }
    $script:ModuleDir = (Resolve-Path $ModuleDir).ProviderPath
    Import-Module $ModuleDir -Force

    # Runs a command that must fail terminating; returns its error record.
    function script:Get-Failure([scriptblock] $Command) {
        try { & $Command; $null } catch { $_ }
    }
}

AfterAll { Disconnect-PQQueue -ErrorAction SilentlyContinue }

Describe 'A queue that does not exist' {
    It 'Get-PQTask, Measure-PQQueue and Wait-PQTask on a missing SQLite file fail naming the file, and create nothing' {
        $folder = Join-Path $TestDrive "typo-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $path = Join-Path $folder 'dev-qeueu.db'
        Connect-PQQueue "sqlite:///$path"
        foreach ($command in { Get-PQTask }, { Measure-PQQueue }, { Wait-PQTask -Key k -Timeout 1 }) {
            $e = Get-Failure $command
            $e | Should -Not -BeNullOrEmpty -Because "$command must not show an empty queue"
            $e.FullyQualifiedErrorId | Should -BeLike 'QueueNotInitialized,*'
            $e.Exception.Message | Should -BeLike "*$path*does not exist*"
            $e.Exception.Message | Should -Match 'Initialize-PQQueue'
            $e.Exception.Message | Should -Match 'submit'
        }
        Test-Path $path | Should -BeFalse -Because 'a read must not create the database file'
        Test-Path $folder | Should -BeFalse -Because 'a read must not create the folder'
    }

    It 'Get-PQTask on a mistyped table of an existing file fails naming the table, and creates no table' {
        $path = Join-Path $TestDrive "real-$([guid]::NewGuid().ToString('N').Substring(0, 8)).db"
        Submit-PQTask -Queue (Connect-PQQueue "sqlite:///$path" -Table nightly -PassThru) -Key k -Type t
        Connect-PQQueue "sqlite:///$path" -Table nighlty
        $e = Get-Failure { Get-PQTask }
        $e.FullyQualifiedErrorId | Should -BeLike 'QueueNotInitialized,*'
        $e.Exception.Message | Should -BeLike "*'nighlty' does not exist in $path*"
        (Get-PQTask -Queue (Connect-PQQueue "sqlite:///$path" -Table nightly -PassThru)).Key | Should -Be 'k'
        Connect-PQQueue "sqlite:///$path" -Table nighlty
        (Get-Failure { Measure-PQQueue }).FullyQualifiedErrorId | Should -BeLike 'QueueNotInitialized,*' -Because 'the failed read created no table'
    }

    It 'Submit-PQTask creates a missing file and table, as before' {
        $path = Join-Path $TestDrive "new-$([guid]::NewGuid().ToString('N').Substring(0, 8))/queue.db"
        Connect-PQQueue "sqlite:///$path"
        Test-Path $path | Should -BeFalse -Because 'Connect-PQQueue creates nothing'
        Submit-PQTask -Key k -Type t
        Test-Path $path | Should -BeTrue
        (Get-PQTask).Key | Should -Be 'k'
    }

    It 'the embedded default is still created by the first command' {
        $data = Join-Path $TestDrive "xdg-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $script = Join-Path $TestDrive 'embedded.ps1'
        "Import-Module '$ModuleDir'; `$env:PERFECTQUEUE_URL = `$null; @(Get-PQTask).Count; (Measure-PQQueue).Total" | Set-Content $script
        $env:XDG_DATA_HOME, $saved = $data, $env:XDG_DATA_HOME
        try { $out = & dotnet (Join-Path $PSHOME 'pwsh.dll') -NoProfile -NonInteractive -File $script 2>&1 }
        finally { $env:XDG_DATA_HOME = $saved }
        $LASTEXITCODE | Should -Be 0 -Because "$out"
        @($out) | Should -Be @('0', '0')
        Test-Path (Join-Path $data 'PerfectQueue/perfectqueue.db') | Should -BeTrue
    }
}
