# Shared by the worker test files (dot-sourced in their BeforeAll).

function Wait-Until([scriptblock] $Condition, [string] $What, [double] $Seconds = 30) {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    while (-not (& $Condition)) {
        if ($clock.Elapsed.TotalSeconds -gt $Seconds) { throw "Timed out waiting for $What." }
        Start-Sleep -Milliseconds 50
    }
}

# Runs Start-PQWorker in another runspace of this process, so the test can act while it runs.
function Start-BackgroundWorker([PerfectQueue.Queue] $Queue, [hashtable] $Parameters) {
    $ps = [powershell]::Create()
    $null = $ps.AddScript('param($m, $q, $p) Import-Module $m; Start-PQWorker -Queue $q @p 6>$null').AddArgument($env:PQ_MODULE_PATH).AddArgument($Queue).AddArgument($Parameters)
    [pscustomobject]@{ PowerShell = $ps; Handle = $ps.BeginInvoke() }
}

# Runs a script in a child pwsh (so a test can signal or kill it); its output and errors are collected.
function Start-PwshScript([string] $Text) {
    $script = Join-Path $TestDrive "child-$([guid]::NewGuid().ToString('N')).ps1"
    Set-Content $script $Text
    Start-PwshProcess '-File', $script
}

# pwsh -Command, as a service unit runs it: its exit code is the last command's (-File ends 0 after a cmdlet's error).
function Start-PwshCommand([string] $Command) { Start-PwshProcess '-Command', $Command }

function Start-PwshProcess([string[]] $Arguments) {
    $info = [Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($a in @((Join-Path $PSHOME 'pwsh.dll'), '-NoProfile', '-NonInteractive') + $Arguments) { $info.ArgumentList.Add($a) }
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $process = [Diagnostics.Process]::Start($info)
    [pscustomobject]@{ Process = $process; Output = $process.StandardOutput.ReadToEndAsync(); Errors = $process.StandardError.ReadToEndAsync() }
}

# The lines a test's handlers appended to their marker file.
function Get-Runs([string] $Marker) { if (Test-Path $Marker) { @(Get-Content $Marker) } else { @() } }
