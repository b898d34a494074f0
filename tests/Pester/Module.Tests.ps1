# Tests of the assembled module folder (out/PerfectQueue), imported as a user would import it.
# build.ps1 test runs this file in a child pwsh with PQ_MODULE_PATH set to that folder.

BeforeAll {
    $script:ModuleDir = $env:PQ_MODULE_PATH
    if (-not $ModuleDir -or -not (Test-Path (Join-Path $ModuleDir 'PerfectQueue.psd1'))) {
        throw "Set PQ_MODULE_PATH to the assembled module folder (run: dotnet pwsh ./build.ps1 test). Got: '$ModuleDir'."
    }
    $script:ModuleDir = (Resolve-Path $ModuleDir).ProviderPath
    $script:LibDir = Join-Path $ModuleDir 'lib'
    $script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).ProviderPath
    $script:Module = Import-Module $ModuleDir -PassThru -Force
    $script:Engine = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'PerfectQueue' }
    $script:EngineContext = [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($Engine)

    function script:Test-UnderFolder([string] $Path, [string] $Folder) {
        $Path.StartsWith($Folder.TrimEnd([IO.Path]::DirectorySeparatorChar) + [IO.Path]::DirectorySeparatorChar, [StringComparison]::Ordinal)
    }
}

Describe 'The module folder' {
    It 'imports by path' {
        $Module | Should -Not -BeNullOrEmpty
        $Module.Name | Should -Be 'PerfectQueue'
        $Module.ModuleType | Should -Be 'Binary'
        Get-Module PerfectQueue | Should -Not -BeNullOrEmpty
    }

    It 'has a manifest that passes Test-ModuleManifest' {
        $manifest = Test-ModuleManifest (Join-Path $ModuleDir 'PerfectQueue.psd1') -ErrorAction Stop
        $manifest.RootModule | Should -Be 'PerfectQueue.PowerShell.dll'
        $manifest.PowerShellVersion | Should -Be ([version]'7.6')
        $manifest.CompatiblePSEditions | Should -Be @('Core')
    }

    It 'carries the version of Directory.Build.props' {
        $props = [xml](Get-Content (Join-Path $RepoRoot 'Directory.Build.props') -Raw)
        $version = $props.SelectSingleNode('/Project/PropertyGroup/Version').InnerText
        $numeric, $prerelease = $version -split '-', 2
        $manifest = Test-ModuleManifest (Join-Path $ModuleDir 'PerfectQueue.psd1') -ErrorAction Stop
        $manifest.Version | Should -Be ([version]$numeric)
        $Module.Version | Should -Be ([version]$numeric)
        if ($prerelease) { $manifest.PrivateData.PSData.Prerelease | Should -Be ($prerelease -replace '[^A-Za-z0-9]', '') }
        # The assemblies are stamped from the same <Version>.
        $Engine.GetName().Version | Should -Be ([version]"$numeric.0")
    }

    It 'carries what a gallery shows: project and licence links, tags, and this version''s CHANGELOG section as release notes' {
        $manifest = Test-ModuleManifest (Join-Path $ModuleDir 'PerfectQueue.psd1') -ErrorAction Stop
        $data = $manifest.PrivateData.PSData
        [uri]::IsWellFormedUriString($data.ProjectUri, 'Absolute') | Should -BeTrue
        [uri]::IsWellFormedUriString($data.LicenseUri, 'Absolute') | Should -BeTrue
        $data.Tags | Should -Contain 'PSEdition_Core'
        foreach ($os in 'Linux', 'Windows', 'MacOS') { $data.Tags | Should -Contain $os }
        $data.ReleaseNotes | Should -BeLike "## ``[$($manifest.Version.ToString(3))``]*"
        $data.ReleaseNotes | Should -Not -Match ('(?m)^## \[(?!' + [regex]::Escape($manifest.Version.ToString(3)) + ')')   # this version's section only
        Join-Path $ModuleDir 'LICENSE' | Should -Exist
        (Get-Content (Join-Path $ModuleDir 'LICENSE') -TotalCount 2)[-1] | Should -Match 'Apache License'
    }

    It 'does not ship System.Management.Automation.dll' {
        Get-ChildItem $ModuleDir -Recurse -Filter 'System.Management.Automation.dll' | Should -BeNullOrEmpty
    }

    It 'keeps the engine and its dependencies in lib/, not beside the cmdlet assembly' {
        foreach ($name in 'PerfectQueue.dll', 'PerfectQueue.deps.json', 'Dapper.dll', 'Microsoft.Data.Sqlite.dll') {
            Join-Path $LibDir $name | Should -Exist
            Join-Path $ModuleDir $name | Should -Not -Exist
        }
    }
}

Describe 'Isolated loading of the engine' {
    It 'loads the engine into its own AssemblyLoadContext from lib/' {
        $Engine | Should -HaveCount 1
        $EngineContext | Should -Not -Be ([System.Runtime.Loader.AssemblyLoadContext]::Default)
        $EngineContext.Name | Should -Be 'PerfectQueue'
        $Engine.Location | Should -Be (Join-Path $LibDir 'PerfectQueue.dll')
    }

    It 'keeps the cmdlet assembly in the default context' {
        $cmdlets = $Module.ImplementingAssembly
        [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($cmdlets) | Should -Be ([System.Runtime.Loader.AssemblyLoadContext]::Default)
        $cmdlets.Location | Should -Be (Join-Path $ModuleDir 'PerfectQueue.PowerShell.dll')
    }

    It 'resolves <_> from lib/ inside the engine context' -ForEach 'Dapper', 'Microsoft.Data.Sqlite', 'SQLitePCLRaw.core', 'Npgsql', 'Microsoft.Data.SqlClient' {
        $assembly = $EngineContext.LoadFromAssemblyName([Reflection.AssemblyName]::new($_))
        [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($assembly) | Should -Be $EngineContext
        Test-UnderFolder $assembly.Location $LibDir | Should -BeTrue -Because "$($assembly.Location) should be under $LibDir"
    }

    It 'leaves System.Management.Automation to pwsh' {
        $sma = $EngineContext.LoadFromAssemblyName([Reflection.AssemblyName]::new('System.Management.Automation'))
        $sma | Should -Be ([psobject].Assembly)
    }

    It 'lets scripts name engine types although PowerShell does not search custom contexts' {
        $type = 'PerfectQueue.Queue' -as [type]
        $type | Should -Not -BeNullOrEmpty
        $type.Assembly | Should -Be $Engine
        [PerfectQueue.AcquiredTask].Assembly | Should -Be $Engine
    }

    It 'names only the public engine types, never the storage layer' {
        'PerfectQueue.Workers.Worker' -as [type] | Should -Not -BeNullOrEmpty
        'PerfectQueue.Application.Base' -as [type] | Should -Not -BeNullOrEmpty
        'PerfectQueue.Storage.TaskRow' -as [type] | Should -BeNullOrEmpty
        'PerfectQueue.Storage.Sqlite.SqliteQueueStore' -as [type] | Should -BeNullOrEmpty
        'PerfectQueue.TaskText' -as [type] | Should -BeNullOrEmpty
    }

    It 'lets other runspaces of the session name engine types' {
        $ps = [powershell]::Create()
        try {
            $ps.AddScript('[PerfectQueue.Queue].Assembly.Location').Invoke() | Should -Be $Engine.Location
        }
        finally { $ps.Dispose() }
    }

    It 'survives Remove-Module and a second Import-Module with the same engine' {
        Remove-Module PerfectQueue
        Get-Module PerfectQueue | Should -BeNullOrEmpty
        $again = Import-Module $ModuleDir -PassThru
        $again.Name | Should -Be 'PerfectQueue'
        ('PerfectQueue.Queue' -as [type]).Assembly | Should -Be $Engine
        @([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'PerfectQueue' }) | Should -HaveCount 1
    }
}

Describe 'Driving the engine from PowerShell on SQLite' {
    BeforeAll {
        $script:DbPath = Join-Path $TestDrive 'queue.db'
        $script:Queue = [PerfectQueue.Queue]::Open('sqlite:///' + $DbPath)   # an absolute path gives sqlite:////...
    }
    AfterAll {
        if ($Queue) { $Queue.Dispose() }
    }

    It 'submits, polls, finishes and reads back a task' {
        $Queue.Initialize($false)
        $null = $Queue.Submit('k1', 'type1', '{"a":1}')
        $Queue['k1'].GetInfo().Status | Should -Be 'Waiting'

        $task = $Queue.Poll()
        $task | Should -Not -BeNullOrEmpty
        $task.Key | Should -Be 'k1'
        $task.Type | Should -Be 'type1'
        $task.Data.ToJsonString() | Should -Be '{"a":1}'
        $Queue.Poll() | Should -BeNullOrEmpty
        $Queue['k1'].GetInfo().Status | Should -Be 'Running'

        $task.Finish()
        $info = $Queue['k1'].GetInfo()
        $info.Status | Should -Be 'Finished'
        $info.Outcome | Should -Be 'Succeeded'
        $DbPath | Should -Exist
    }

    It 'refuses a duplicate key with an exception PowerShell can catch by type' {
        $caught = try { $null = $Queue.Submit('k1', 'type1', $null); 'not thrown' } catch [PerfectQueue.AlreadyExistsException] { $_.Exception }
        $caught | Should -Not -Be 'not thrown'
        $caught.GetType().FullName | Should -Match '^PerfectQueue\.(Idempotent)?AlreadyExistsException$'
    }

    It 'stores PowerShell values (wrapped strings, PSCustomObjects, nested hashtables) as plain JSON' {
        $data = @{
            when   = (Get-Date -Date '2026-11-26T10:00:00Z' -AsUTC -Format 'yyyy-MM-dd')   # a PSObject-wrapped string
            object = [pscustomobject]@{ Name = 'sales'; Size = 3 }
            nested = @{ list = @(1, 'two', @{ three = 3 }) }
        }
        $null = $Queue.Submit('ps-values', 'type1', $data)
        $stored = $Queue['ps-values'].GetInfo().Data
        $stored['when'].ToString() | Should -Be '2026-11-26'
        $stored['object']['Name'].ToString() | Should -Be 'sales'
        [int]$stored['object']['Size'].GetValue[int]() | Should -Be 3
        [int]$stored['nested']['list'][2]['three'].GetValue[int]() | Should -Be 3
        $stored.ToJsonString() | Should -Not -Match 'BaseObject|Members|ImmediateBaseObject'
    }

    It 'used Microsoft.Data.Sqlite, Dapper and the native e_sqlite3 from lib/' {
        $used = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -match '^(Dapper|Microsoft\.Data\.Sqlite|SQLitePCLRaw\..+)$' }
        $used.GetName().Name | Should -Contain 'Microsoft.Data.Sqlite'
        $used.GetName().Name | Should -Contain 'Dapper'
        foreach ($assembly in $used) {
            [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($assembly) | Should -Be $EngineContext
            Test-UnderFolder $assembly.Location $LibDir | Should -BeTrue -Because "$($assembly.Location) should be under $LibDir"
        }
        $native = (Get-Process -Id $PID).Modules | Where-Object ModuleName -Match 'e_sqlite3'
        $native | Should -Not -BeNullOrEmpty
        foreach ($file in $native.FileName) {
            Test-UnderFolder $file (Join-Path $LibDir 'runtimes') | Should -BeTrue -Because "$file should be under lib/runtimes"
        }
    }
}

Describe 'Driving the engine from PowerShell on PostgreSQL' {
    It 'submits, polls and finishes a task on the server in PQ_TEST_POSTGRES, through Npgsql loaded from lib/' {
        if (-not $env:PQ_TEST_POSTGRES) {
            if ($env:CI) { throw 'PQ_TEST_POSTGRES is not set under CI: build.ps1 test could not start PostgreSQL.' }
            Set-ItResult -Skipped -Because 'no PostgreSQL here: install postgresql (build.ps1 test starts a throwaway cluster) or set PQ_TEST_POSTGRES'
            return
        }
        $config = [PerfectQueue.QueueConfig]::new()
        $config.Url = $env:PQ_TEST_POSTGRES
        $config.Table = 'pester_' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        $queue = [PerfectQueue.Queue]::Open($config)
        try {
            $queue.Initialize($false)
            $null = $queue.Submit('pg-1', 'type1', @{ n = 1 })
            $task = $queue.Poll()
            $task.Key | Should -Be 'pg-1'
            $task.Data['n'].GetValue[int]() | Should -Be 1
            $task.Finish()
            $queue['pg-1'].GetInfo().Outcome | Should -Be 'Succeeded'
            $npgsql = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Npgsql' }
            $npgsql.Location | Should -BeLike (Join-Path $env:PQ_MODULE_PATH 'lib*')
        }
        finally {
            $queue.Initialize($true)   # leave nothing behind: force drops the table (then recreates it empty)
            $queue.Dispose()
        }
    }
}
