<#
.SYNOPSIS
    The PerfectQueue demo (placeholder): imports the assembled module and says that it loaded.
    Run through `dotnet pwsh ./build.ps1 demo`, which builds the module and passes its path.
#>
param(
    [string] $ModulePath = $env:PQ_MODULE_PATH
)

$ErrorActionPreference = 'Stop'
if (-not $ModulePath) { throw 'Pass -ModulePath or set PQ_MODULE_PATH to the assembled module folder (out/PerfectQueue).' }

# Import by path, as a user would with a copied module folder.
$module = Import-Module $ModulePath -PassThru
Write-Host "Loaded module $($module.Name) $($module.Version) from $($module.ModuleBase)"
