# The help of the assembled module (out/PerfectQueue): every exported cmdlet has real help (synopsis,
# description, every parameter, at least two examples), about_PerfectQueue is found, and every example in
# the help RUNS. build.ps1 test runs this file in a child pwsh with PQ_MODULE_PATH set to the module folder;
# the help itself is built by build/New-PQHelp.ps1 from docs/cmdlets/*.md and docs/about_PerfectQueue.md.
#
# How an example runs (Invoke-HelpExample below): in a fresh runspace of this process, with the module
# imported, its location a fresh temporary folder, $env:PERFECTQUEUE_URL a fresh SQLite file in that folder,
# and $env:XDG_DATA_HOME (and LOCALAPPDATA) pointing into it too, so nothing touches the user's embedded
# default queue. The examples run one after another (the environment is per process). An example passes
# when it throws nothing, writes no error record (examples must be self-contained on an empty queue), and
# leaves what HelpExamples.Expected.ps1 says it does: its output, warnings, the tasks in its default queue
# and the files in its folder. Every example and runnable README block needs an entry there.
#
# README.md: every ```powershell block right after a line `<!-- runnable -->` (blank lines may come between)
# runs the same way. Its `Import-Module ...PerfectQueue...` lines are skipped: the module is already
# imported, and a relative path would not resolve from the temporary folder.

BeforeDiscovery {
    $moduleDir = $env:PQ_MODULE_PATH
    if (-not $moduleDir -or -not (Test-Path (Join-Path $moduleDir 'PerfectQueue.psd1'))) {
        throw "Set PQ_MODULE_PATH to the assembled module folder (run: dotnet pwsh ./build.ps1 test). Got: '$moduleDir'."
    }
    $module = Import-Module (Join-Path $moduleDir 'PerfectQueue.psd1') -PassThru
    $common = [System.Management.Automation.PSCmdlet]::CommonParameters + 'UseTransaction'

    $cmdletCases = foreach ($command in $module.ExportedCmdlets.Values | Sort-Object Name) {
        @{
            Name       = $command.Name
            Parameters = @($command.Parameters.Keys | Where-Object { $_ -notin $common } | Sort-Object)
        }
    }

    $exampleCases = foreach ($command in $cmdletCases) {
        $n = 0
        foreach ($example in @((Get-Help $command.Name -Examples).examples.example)) {
            if (-not $example) { continue }
            $n++
            $title = ($example.title -replace '^-+\s*|\s*-+$', '').Trim()
            @{ Name = $command.Name; Number = $n; Title = $title; Code = [string]$example.code }
        }
    }

    # README.md blocks marked runnable.
    $readme = Join-Path $PSScriptRoot '../../README.md'
    $readmeCases = @()
    if (Test-Path $readme) {
        $lines = @(Get-Content $readme)
        for ($i = 0; $i -lt $lines.Count; $i++) {
            if ($lines[$i] -notmatch '^\s*<!--\s*runnable\s*-->\s*$') { continue }
            $marker = $i + 1
            $j = $i + 1
            while ($j -lt $lines.Count -and $lines[$j] -match '^\s*$') { $j++ }
            if ($j -ge $lines.Count -or $lines[$j] -notmatch '^\s*```\s*(powershell|pwsh|ps1)\s*$') {
                $readmeCases += @{ Line = $marker; Code = $null; Problem = "the <!-- runnable --> marker on line $marker is not followed by a ``````powershell block" }
                continue
            }
            $code = [System.Collections.Generic.List[string]]::new()
            $j++
            while ($j -lt $lines.Count -and $lines[$j] -notmatch '^\s*```\s*$') {
                if ($lines[$j] -notmatch '^\s*Import-Module\s+\S*PerfectQueue\S*\s*$') { $code.Add($lines[$j]) }
                $j++
            }
            $readmeCases += @{ Line = $marker; Code = ($code -join "`n"); Problem = $null; Key = "README: $(@($code)[0].Trim())" }
            $i = $j
        }
    }
    $allKeys = @(@($exampleCases | ForEach-Object { "$($_.Name): $($_.Title)" }) + @($readmeCases | Where-Object Key | ForEach-Object Key))
}

BeforeAll {
    $script:ModuleDir = (Resolve-Path $env:PQ_MODULE_PATH).ProviderPath
    $script:Manifest = Join-Path $ModuleDir 'PerfectQueue.psd1'
    Import-Module $Manifest
    $script:Expected = & (Join-Path $PSScriptRoot 'HelpExamples.Expected.ps1')

    # Runs $Code as described at the top of this file. Returns Output (as text), Errors (error records),
    # Warnings (their messages), Exception (what stopped it, if anything), UsedEmbeddedDefault, State (the
    # tasks left in the default queue, 'key|status|outcome|message') and Files (names in its folder).
    function script:Invoke-HelpExample([string] $Code, [int] $TimeoutSeconds = 60) {
        $dir = Join-Path ([IO.Path]::GetTempPath()) "pq-help-example-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
        $null = New-Item -ItemType Directory $dir
        $variables = 'PERFECTQUEUE_URL', 'XDG_DATA_HOME', 'LOCALAPPDATA'
        $saved = @{}
        foreach ($v in $variables) { $saved[$v] = [Environment]::GetEnvironmentVariable($v) }
        $runspace = $null; $ps = $null
        $result = [pscustomobject]@{ Output = ''; Errors = @(); Warnings = @(); Exception = $null; UsedEmbeddedDefault = $false; State = @(); Files = @() }
        try {
            [Environment]::SetEnvironmentVariable('PERFECTQUEUE_URL', 'sqlite:///' + (Join-Path $dir 'queue.db').Replace('\', '/'))
            [Environment]::SetEnvironmentVariable('XDG_DATA_HOME', (Join-Path $dir 'data'))
            [Environment]::SetEnvironmentVariable('LOCALAPPDATA', (Join-Path $dir 'data'))
            $state = [initialsessionstate]::CreateDefault2()
            $state.ImportPSModule([string[]]@($Manifest))
            $runspace = [runspacefactory]::CreateRunspace($state)
            $runspace.Open()
            $runspace.SessionStateProxy.Path.SetLocation([System.Management.Automation.WildcardPattern]::Escape($dir)) | Out-Null
            # A fresh, empty queue: connecting and reading never create one, so it is created here.
            $init = [powershell]::Create($runspace)
            try { $null = $init.AddCommand('Initialize-PQQueue').Invoke() } finally { $init.Dispose() }
            $ps = [powershell]::Create($runspace)
            $null = $ps.AddScript($Code).AddCommand('Out-String').AddParameter('Width', 160)
            $async = $ps.BeginInvoke()
            if (-not $async.AsyncWaitHandle.WaitOne([timespan]::FromSeconds($TimeoutSeconds))) {
                $ps.Stop()
                throw "The example did not finish within $TimeoutSeconds seconds."
            }
            $result.Output = ($ps.EndInvoke($async) | Out-String).Trim()
            $result.Warnings = @($ps.Streams.Warning | ForEach-Object Message)
            # What the example left in its default queue, read in its own runspace (the module is loaded there).
            $look = [powershell]::Create($runspace)
            try {
                $null = $look.AddScript('$q = [PerfectQueue.Queue]::Open($env:PERFECTQUEUE_URL); try { Get-PQTask -Queue $q | ForEach-Object { "$($_.Key)|$($_.Status)|$($_.Outcome)|$($_.Message)" } } finally { $q.Dispose() }')
                $result.State = @($look.Invoke() | ForEach-Object { "$_" })
            }
            finally { $look.Dispose() }
        }
        catch { $result.Exception = $_.Exception }
        finally {
            if ($ps) { $result.Errors = @($ps.Streams.Error); $ps.Dispose() }
            $result.Files = @(Get-ChildItem -LiteralPath $dir -Name -ErrorAction SilentlyContinue)
            if ($runspace) { $runspace.Dispose() }
            foreach ($v in $variables) { [Environment]::SetEnvironmentVariable($v, $saved[$v]) }
            $result.UsedEmbeddedDefault = Test-Path (Join-Path $dir 'data/PerfectQueue')
            Remove-Item $dir -Recurse -Force -ErrorAction SilentlyContinue
        }
        $result
    }

    # Fails with everything that went wrong, and the example's output.
    function script:Assert-RanCleanly($Result, [string] $Code) {
        $problems = @(
            if ($Result.Exception) {
                $inner = $Result.Exception
                while ($inner.InnerException -and $inner -is [System.Management.Automation.MethodInvocationException]) { $inner = $inner.InnerException }
                $position = if ($inner -is [System.Management.Automation.IContainsErrorRecord] -and $inner.ErrorRecord.InvocationInfo) { $inner.ErrorRecord.InvocationInfo.PositionMessage }
                "it threw: $($inner.Message)`n$position"
            }
            foreach ($e in $Result.Errors) { "it wrote an error [$($e.FullyQualifiedErrorId)]: $e`n$($e.InvocationInfo.PositionMessage)" }
            if ($Result.UsedEmbeddedDefault) { 'it used the embedded default queue instead of $env:PERFECTQUEUE_URL' }
        )
        if ($problems) {
            throw ("The example failed:`n- " + ($problems -join "`n- ") + "`n--- code ---`n$Code`n--- output ---`n$($Result.Output)")
        }
    }

    # Fails unless the example left what HelpExamples.Expected.ps1 says it does (see there).
    function script:Assert-LeftWhatItClaims($Result, [string] $Key, [string] $Code) {
        $claims = $Expected[$Key]
        if (-not $claims) { throw "HelpExamples.Expected.ps1 has no entry '$Key': add what this example leaves (output, tasks, files)." }
        $output = ($Result.Output -split "`r?`n" | ForEach-Object TrimEnd) -join "`n"
        $problems = [System.Collections.Generic.List[string]]::new()
        $outputs = @($claims.Output)
        if ($claims.ContainsKey('Output') -and $outputs.Count -eq 1 -and $outputs[0] -eq '') {
            if ($output) { $problems.Add('it should write no output') }
        }
        else {
            foreach ($p in $outputs) { if ($output -notmatch "(?m)$p") { $problems.Add("its output does not match /$p/") } }
        }
        foreach ($p in @($claims.NoOutput)) { if ($p -and $output -match "(?m)$p") { $problems.Add("its output matches /$p/, which it must not") } }
        foreach ($p in @($claims.Warnings)) { if ($p -and -not ($Result.Warnings | Where-Object { $_ -match $p })) { $problems.Add("no warning matches /$p/") } }
        foreach ($f in @($claims.Files)) { if ($f -and $f -notin $Result.Files) { $problems.Add("it left no file '$f' in its folder") } }
        if ($claims.ContainsKey('State')) {
            # Each pattern claims one task line; none may be left over.
            $left = [System.Collections.Generic.List[string]]::new([string[]]@($Result.State))
            foreach ($p in @($claims.State)) {
                $hit = $left | Where-Object { $_ -match "^(?:$p)$" } | Select-Object -First 1
                if ($null -eq $hit) { $problems.Add("no task left in the default queue matches /$p/") } else { $null = $left.Remove($hit) }
            }
            foreach ($l in $left) { $problems.Add("it left a task nobody claims: $l") }
        }
        if ($problems.Count) {
            throw ("The example ran, but did not leave what it claims:`n- " + ($problems -join "`n- ") +
                "`n--- code ---`n$Code`n--- output ---`n$($Result.Output)`n--- tasks in its default queue ---`n$($Result.State -join "`n")")
        }
    }
}

Describe 'Help of <Name>' -ForEach $cmdletCases {
    BeforeAll {
        $help = Get-Help $Name -Full
        $documented = @($help.parameters.parameter | Where-Object { $_ } | ForEach-Object { [string]$_.name })
    }

    It 'has a synopsis of its own' {
        $synopsis = ([string]$help.Synopsis).Trim()
        $synopsis | Should -Not -BeNullOrEmpty
        # Without help, PowerShell makes the synopsis from the syntax ("Name [-Param] <type> ...").
        $synopsis | Should -Not -Match "^$([regex]::Escape($Name))(\s|$)" -Because 'the synopsis must come from the MAML help, not the syntax'
        $synopsis | Should -Match '^[A-Z][a-z]+s\b' -Because 'a synopsis starts with a verb (Gets, Submits, ...)'
    }

    It 'has a description' {
        (@($help.description | ForEach-Object { $_.Text }) -join '').Trim() | Should -Not -BeNullOrEmpty
    }

    if ($Parameters) {
        It 'documents -<_>' -ForEach $Parameters {
            $parameter = @($help.parameters.parameter | Where-Object name -EQ $_)
            $parameter | Should -HaveCount 1 -Because "Get-Help $Name -Full should describe -$_ once"
            (@($parameter[0].description | ForEach-Object { $_.Text }) -join '').Trim() | Should -Not -BeNullOrEmpty
        }
    }

    It 'documents only parameters it has' {
        $documented | Where-Object { $_ -notin $Parameters } | Should -BeNullOrEmpty
    }

    It 'shows a syntax for each parameter set' {
        @($help.syntax.syntaxItem).Count | Should -Be @((Get-Command $Name).ParameterSets).Count
    }

    It 'has at least two examples' {
        $examples = @((Get-Help $Name -Examples).examples.example | Where-Object { $_ })
        $examples.Count | Should -BeGreaterOrEqual 2
        foreach ($e in $examples) {
            ([string]$e.code).Trim() | Should -Not -BeNullOrEmpty
            (@($e.remarks | ForEach-Object { $_.Text }) -join '').Trim() | Should -Not -BeNullOrEmpty -Because "example '$($e.title)' should explain itself"
        }
    }
}

Describe 'about_PerfectQueue' {
    It 'is found by Get-Help' {
        $text = Get-Help about_PerfectQueue | Out-String
        $text | Should -Match 'about_PerfectQueue'
        $text | Should -Match 'SHORT DESCRIPTION'
    }

    It 'explains <_>' -ForEach @('PERFECTQUEUE_URL', 'Connect-PQQueue', 'CancelRequested', 'ForceFinished', 'retry_wait', 'alive_time', 'TaskAlreadyExists', 'QueueNotInitialized', 'WaitTimeout') {
        Get-Help about_PerfectQueue | Out-String | Should -Match ([regex]::Escape($_))
    }
}

Describe 'Every help example runs on a fresh queue' {
    It '<Name> <Title>' -ForEach $exampleCases {
        $result = Invoke-HelpExample $Code
        Assert-RanCleanly $result $Code
        Assert-LeftWhatItClaims $result "$($Name): $Title" $Code
    }

    It 'HelpExamples.Expected.ps1 names only examples and README blocks that exist' -ForEach @(@{ Keys = $allKeys }) {
        @($Expected.Keys | Where-Object { $_ -notin $Keys }) | Should -BeNullOrEmpty -Because 'an entry for an example that was renamed or removed checks nothing'
    }
}

Describe 'README.md runnable blocks' {
    if (-not $readmeCases) {
        It 'README.md marks blocks to run' {
            Set-ItResult -Skipped -Because 'README.md has no ```powershell block after a <!-- runnable --> line'
        }
    }

    else {
        It 'the block after line <Line> runs on a fresh queue' -ForEach $readmeCases {
            if ($Problem) { throw $Problem }
            $result = Invoke-HelpExample $Code
            Assert-RanCleanly $result $Code
            Assert-LeftWhatItClaims $result $Key $Code
        }
    }
}
