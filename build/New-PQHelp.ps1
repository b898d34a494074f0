<#
.SYNOPSIS
    Builds the module's help: en-US/PerfectQueue.PowerShell.dll-Help.xml (MAML, for the binary cmdlets) and
    en-US/about_*.help.txt, from docs/ and from the cmdlets' live metadata.
.DESCRIPTION
    Run it in its own pwsh process (it imports the assembled module, and an imported binary module locks its
    dll): dotnet pwsh -NoProfile -File build/New-PQHelp.ps1 -ModulePath out/PerfectQueue
    build.ps1's build task does that after it assembles the module folder.

    What comes from where:
      - Syntax (parameter sets), parameter types, Mandatory, Position, pipeline input, aliases, wildcard
        support, accepted values (enums, ValidateSet), input types, and the default values of parameters
        (read from a new instance of the cmdlet class): from the imported module (Get-Command), so the help
        can never disagree with the code.
      - Everything a person writes (synopsis, description, parameter texts, examples, outputs, notes,
        links): from docs/cmdlets/<Cmdlet-Name>.md, in the layout below.

    The build FAILS (this script throws, listing every problem with the cmdlet and parameter it concerns) when:
      - an exported cmdlet has no docs/cmdlets/<Cmdlet-Name>.md (or a markdown file names no exported cmdlet);
      - a parameter of the cmdlet has no '### -Name' section, or the markdown documents a parameter the
        cmdlet does not have (-WhatIf and -Confirm get standard text when the markdown leaves them out);
      - a cmdlet has fewer than two examples, or an example has no powershell code block or no explanation;
      - a section is missing or unknown, the synopsis is not one line starting with a verb (its first word
        must end in 's': Gets, Submits, Finishes), or OUTPUTS disagrees with [OutputType];
      - an about topic lacks its title, SHORT DESCRIPTION or LONG DESCRIPTION.

    MARKDOWN LAYOUT of docs/cmdlets/<Cmdlet-Name>.md (level-2 sections in any order; text is plain
    paragraphs separated by blank lines, '- ' list items, `code` spans, [text](link) links, and fenced blocks):

        # Submit-PQTask

        ## SYNOPSIS
        Submits a task to the queue.                      <- one line, starting with a verb

        ## DESCRIPTION
        Paragraphs.

        ## PARAMETERS                                    <- present even when the cmdlet has no parameters
        ### -Key                                         <- one per parameter of the cmdlet, common ones excepted;
        Paragraphs.                                          Get-Help -Full lists them in this order
        Default value: text                               <- optional last line: overrides the default read from the code

        ## EXAMPLES
        ### Example 1: Submit a backup task               <- at least two, numbered from 1
        ```powershell
        code that runs on a fresh queue (Help.Tests.ps1 runs every example, with PERFECTQUEUE_URL set to a
        fresh SQLite file, in a fresh runspace with the module imported, the location a fresh folder)
        ```
        Paragraphs explaining it.

        ## INPUTS                                        <- optional: '### TypeName' + text per piped type; types
                                                             that bind by value and are not listed, and one entry
                                                             for by-property-name binding, are added from the code
        ## OUTPUTS
        ### PerfectQueue.PowerShell.PQTask                <- every [OutputType] of the cmdlet, by full name;
        Text.                                                '### None' is allowed (e.g. without -PassThru)

        ## NOTES
        Paragraphs.

        ## RELATED LINKS
        - [Get-PQTask](Get-PQTask.md)                      <- link text is shown; http(s) addresses are kept as URIs
        - [about_PerfectQueue](../about_PerfectQueue.md)

    ABOUT TOPICS: every docs/about_<Topic>.md becomes en-US/about_<Topic>.help.txt. Layout: '# about_<Topic>',
    '## SHORT DESCRIPTION' (one paragraph), '## LONG DESCRIPTION', further '## ' sections and '### ' subsections;
    paragraphs, lists, tables and fenced code blocks are indented and wrapped for the console.
.PARAMETER ModulePath
    The assembled module folder (out/PerfectQueue).
.PARAMETER DocsPath
    The folder with cmdlets/*.md and about_*.md. Default: docs/ beside this script's folder.
.PARAMETER OutputPath
    Where the help files go. Default: <ModulePath>/en-US.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string] $ModulePath,
    [string] $DocsPath = (Join-Path $PSScriptRoot '../docs'),
    [string] $OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$ModulePath = (Resolve-Path $ModulePath).ProviderPath
$DocsPath = (Resolve-Path $DocsPath).ProviderPath
if (-not $OutputPath) { $OutputPath = Join-Path $ModulePath 'en-US' }

$RequiredSections = 'SYNOPSIS', 'DESCRIPTION', 'PARAMETERS', 'EXAMPLES', 'OUTPUTS', 'NOTES', 'RELATED LINKS'
$KnownSections = $RequiredSections + 'INPUTS'
$CommonParameters = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
# ShouldProcess parameters: documented by the markdown if it wants to, else with this standard text.
$StandardParameterText = @{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}

# ---------------------------------------------------------------------------------------------------------------
# Markdown

# Splits markdown into headings and their lines; '#' lines inside fenced code blocks are not headings.
function Split-MarkdownSection([string[]] $Lines, [int] $Level) {
    $prefix = ('#' * $Level) + ' '
    $sections = [System.Collections.Generic.List[object]]::new()
    $current = [pscustomobject]@{ Name = $null; Lines = [System.Collections.Generic.List[string]]::new() }
    $sections.Add($current)
    $inFence = $false
    foreach ($line in $Lines) {
        if ($line -match '^\s*(```|~~~)') { $inFence = -not $inFence }
        if (-not $inFence -and $line.StartsWith($prefix)) {
            $current = [pscustomobject]@{ Name = $line.Substring($prefix.Length).Trim(); Lines = [System.Collections.Generic.List[string]]::new() }
            $sections.Add($current)
        }
        else { $current.Lines.Add($line) }
    }
    $sections
}

# Inline markdown to plain text: [text](link) -> text, **bold**/__bold__ -> bold. `code` spans stay as they are.
function ConvertFrom-InlineMarkdown([string] $Text) {
    $Text = $Text -replace '\[([^\]]+)\]\([^)]*\)', '$1'
    $Text -replace '(\*\*|__)(.+?)\1', '$2'
}

# Markdown lines to blocks: @{ Kind = 'Para'|'Item'|'Code'|'Table'; Text; Lines }.
function ConvertTo-MarkdownBlock([string[]] $Lines) {
    $blocks = [System.Collections.Generic.List[object]]::new()
    $current = $null
    $fence = $null
    foreach ($line in $Lines) {
        if ($null -ne $fence) {
            if ($line -match '^\s*(```|~~~)\s*$') { $fence = $null; $current = $null }
            else { $current.Lines.Add($line) }
            continue
        }
        if ($line -match '^\s*(```|~~~)(\S*)') {
            $fence = $Matches[2]
            $current = [pscustomobject]@{ Kind = 'Code'; Language = $Matches[2]; Lines = [System.Collections.Generic.List[string]]::new() }
            $blocks.Add($current)
            continue
        }
        if ($line -match '^\s*$') { $current = $null; continue }
        if ($line -match '^\s*\|') {
            if (-not $current -or $current.Kind -ne 'Table') {
                $current = [pscustomobject]@{ Kind = 'Table'; Lines = [System.Collections.Generic.List[string]]::new() }
                $blocks.Add($current)
            }
            $current.Lines.Add($line.Trim())
            continue
        }
        if ($line -match '^\s*([-*]|\d+\.)\s+(.*)$') {
            $marker = $Matches[1]; $first = $Matches[2].Trim()
            $current = [pscustomobject]@{ Kind = 'Item'; Marker = $(if ($marker -match '\d') { $marker } else { '-' }); Lines = [System.Collections.Generic.List[string]]::new() }
            $current.Lines.Add($first)
            $blocks.Add($current)
            continue
        }
        if (-not $current -or $current.Kind -notin 'Para', 'Item') {
            $current = [pscustomobject]@{ Kind = 'Para'; Lines = [System.Collections.Generic.List[string]]::new() }
            $blocks.Add($current)
        }
        $current.Lines.Add($line.Trim())
    }
    if ($null -ne $fence) { throw 'an unclosed fenced code block' }
    foreach ($b in $blocks) {
        $text = if ($b.Kind -in 'Code', 'Table') { $b.Lines -join "`n" } else { ConvertFrom-InlineMarkdown ($b.Lines -join ' ') }
        $b | Add-Member -NotePropertyName Text -NotePropertyValue $text
    }
    $blocks
}

# Blocks as MAML paragraphs: one per paragraph, list item, table or code block.
function ConvertTo-Para([string[]] $Lines) {
    foreach ($b in ConvertTo-MarkdownBlock $Lines) {
        switch ($b.Kind) {
            'Item' { "$($b.Marker) $($b.Text)" }
            default { $b.Text }
        }
    }
}

function Test-Blank([string[]] $Lines) { -not ($Lines | Where-Object { $_ -match '\S' }) }

# Reads docs/cmdlets/<Name>.md into a help model; adds every problem to $Problems, prefixed with the cmdlet.
function Read-CommandMarkdown([string] $Path, [string] $Name, [System.Collections.Generic.List[string]] $Problems) {
    $fail = { param($message) $Problems.Add("${Name}: $message ($Path)") }
    $lines = (Get-Content $Path -Raw) -split '\r?\n'
    $top = @(Split-MarkdownSection $lines 1)
    $titled = @($top | Where-Object Name)
    if ($titled.Count -ne 1 -or $titled[0].Name -ne $Name) { & $fail "the file must have exactly one title, '# $Name'"; return $null }

    $model = [ordered]@{ Name = $Name; Path = $Path; Synopsis = ''; Description = @(); Parameters = [ordered]@{}; ParameterDefaults = @{}
        Examples = @(); Inputs = @(); Outputs = @(); Notes = @(); Links = @() }
    $sections = @{}
    foreach ($s in Split-MarkdownSection $titled[0].Lines 2) {
        if (-not $s.Name) { if (-not (Test-Blank $s.Lines)) { & $fail 'text before the first ## section' }; continue }
        $key = $s.Name.ToUpperInvariant()
        if ($key -notin $KnownSections) { & $fail "unknown section '## $($s.Name)' (known: $($KnownSections -join ', '))"; continue }
        if ($sections.ContainsKey($key)) { & $fail "section '## $key' appears twice"; continue }
        $sections[$key] = $s.Lines
    }
    foreach ($required in $RequiredSections) {
        if (-not $sections.ContainsKey($required)) { & $fail "no '## $required' section" }
    }

    try {
        if ($sections['SYNOPSIS']) {
            $para = @(ConvertTo-Para $sections['SYNOPSIS'])
            if ($para.Count -ne 1 -or @($sections['SYNOPSIS'] | Where-Object { $_ -match '\S' }).Count -ne 1) { & $fail 'the SYNOPSIS must be one line' }
            elseif ($para[0] -notmatch '^[A-Z][a-z]+s\b') { & $fail "the SYNOPSIS must start with a verb ('Gets ...', 'Submits ...'): '$($para[0])'" }
            $model.Synopsis = $para -join ' '
        }
        if ($sections['DESCRIPTION']) {
            $model.Description = @(ConvertTo-Para $sections['DESCRIPTION'])
            if (-not $model.Description) { & $fail 'the DESCRIPTION is empty' }
        }
        if ($sections['NOTES']) { $model.Notes = @(ConvertTo-Para $sections['NOTES']) }

        if ($sections['PARAMETERS']) {
            foreach ($p in Split-MarkdownSection $sections['PARAMETERS'] 3) {
                if (-not $p.Name) { if (-not (Test-Blank $p.Lines)) { & $fail 'text in PARAMETERS outside a ### -Name section' }; continue }
                if ($p.Name -notmatch '^-([A-Za-z][A-Za-z0-9_]*)$') { & $fail "a parameter heading must be '### -Name': '### $($p.Name)'"; continue }
                $parameterName = $Matches[1]
                if ($model.Parameters.Contains($parameterName)) { & $fail "parameter -$parameterName is documented twice"; continue }
                $body = [System.Collections.Generic.List[string]]::new([string[]]@($p.Lines))
                $last = $body.Count - 1
                while ($last -ge 0 -and $body[$last] -notmatch '\S') { $last-- }
                if ($last -ge 0 -and $body[$last] -match '^\s*Default value:\s*(.+?)\s*$') {
                    $model.ParameterDefaults[$parameterName] = ConvertFrom-InlineMarkdown $Matches[1]
                    $body.RemoveAt($last)
                }
                $text = @(ConvertTo-Para $body)
                if (-not $text) { & $fail "parameter -$parameterName has no text" }
                $model.Parameters[$parameterName] = $text
            }
        }

        if ($sections['EXAMPLES']) {
            $number = 0
            foreach ($e in Split-MarkdownSection $sections['EXAMPLES'] 3) {
                if (-not $e.Name) { if (-not (Test-Blank $e.Lines)) { & $fail 'text in EXAMPLES outside a ### Example section' }; continue }
                $number++
                if ($e.Name -notmatch '^Example (\d+):\s*(\S.*)$' -or [int]$Matches[1] -ne $number) {
                    & $fail "example headings must be '### Example ${number}: Title': '### $($e.Name)'"; continue
                }
                $title = $Matches[2].Trim()
                $blocks = @(ConvertTo-MarkdownBlock $e.Lines)
                $code = @($blocks | Where-Object { $_.Kind -eq 'Code' })
                if ($code.Count -ne 1 -or $code[0].Language -ne 'powershell' -or $blocks[0] -ne $code[0] -or (Test-Blank $code[0].Lines)) {
                    & $fail "example $number ('$title') must start with one non-empty ``````powershell code block"; continue
                }
                $remarks = @(foreach ($b in $blocks | Select-Object -Skip 1) { if ($b.Kind -eq 'Item') { "$($b.Marker) $($b.Text)" } else { $b.Text } })
                if (-not $remarks) { & $fail "example $number ('$title') has no explanation after its code" }
                $model.Examples += [pscustomobject]@{ Number = $number; Title = $title; Code = $code[0].Text; Remarks = $remarks }
            }
            if ($model.Examples.Count -lt 2) { & $fail "has $($model.Examples.Count) example(s); every cmdlet needs at least two" }
        }

        foreach ($kind in 'INPUTS', 'OUTPUTS') {
            if (-not $sections[$kind]) { continue }
            $entries = foreach ($t in Split-MarkdownSection $sections[$kind] 3) {
                if (-not $t.Name) { if (-not (Test-Blank $t.Lines)) { & $fail "text in $kind outside a '### TypeName' section" }; continue }
                $text = @(ConvertTo-Para $t.Lines)
                if (-not $text) { & $fail "$kind type '$($t.Name)' has no text" }
                [pscustomobject]@{ Type = ConvertFrom-InlineMarkdown ($t.Name.Trim('`', ' ')); Text = $text }
            }
            if ($kind -eq 'INPUTS') { $model.Inputs = @($entries) } else { $model.Outputs = @($entries) }
        }

        if ($sections['RELATED LINKS']) {
            $model.Links = @(foreach ($b in ConvertTo-MarkdownBlock $sections['RELATED LINKS']) {
                    foreach ($line in $b.Lines) {
                        if ($line -match '\[([^\]]+)\]\(([^)]*)\)') {
                            [pscustomobject]@{ Text = $Matches[1]; Uri = $(if ($Matches[2] -match '^https?://') { $Matches[2] } else { '' }) }
                        }
                        elseif ($line -match '\S') { [pscustomobject]@{ Text = (ConvertFrom-InlineMarkdown $line).Trim(); Uri = '' } }
                    }
                })
            if (-not $model.Links) { & $fail 'RELATED LINKS is empty' }
        }
    }
    catch {
        & $fail "cannot be read: $($_.Exception.Message)"
        return $null
    }
    [pscustomobject]$model
}

# ---------------------------------------------------------------------------------------------------------------
# Live metadata

function Get-ElementType([type] $Type) {
    $inner = [Nullable]::GetUnderlyingType($Type)
    if ($inner) { $inner } else { $Type }
}

# Short names for syntax (String, PQAcquiredTask[], TimeSpan), full names for dev:type.
function Get-TypeName([type] $Type, [switch] $Full) {
    $Type = Get-ElementType $Type
    if ($Type.IsArray) { return (Get-TypeName $Type.GetElementType() -Full:$Full) + '[]' }
    if ($Full) { $Type.FullName } else { $Type.Name }
}

function Get-AcceptedValue($Parameter) {
    $set = $Parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | Select-Object -First 1
    if ($set) { return @($set.ValidValues) }
    $type = Get-ElementType $Parameter.ParameterType
    if ($type.IsArray) { $type = Get-ElementType $type.GetElementType() }
    if ($type.IsEnum) { return @([enum]::GetNames($type)) }
    @()
}

function Get-PipelineText($Parameter) {
    $kinds = @(if ($Parameter.ValueFromPipeline) { 'ByValue' }; if ($Parameter.ValueFromPipelineByPropertyName) { 'ByPropertyName' })
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

# $Parameter: a ParameterMetadata (Get-Command's .Parameters); true when any parameter set takes it from the pipeline so.
function Test-ByValue($Parameter) { [bool]($Parameter.ParameterSets.Values | Where-Object ValueFromPipeline) }
function Test-ByPropertyName($Parameter) { [bool]($Parameter.ParameterSets.Values | Where-Object ValueFromPipelineByPropertyName) }

function Get-PositionText($Parameter) { if ($Parameter.Position -ge 0) { [string]$Parameter.Position } else { 'named' } }

# A parameter set's parameters in the order Get-Command shows them: positional, then mandatory, then the rest.
function Get-SyntaxParameter($ParameterSet) {
    $i = 0
    $ParameterSet.Parameters | Where-Object { $_.Name -notin $CommonParameters -or $_.Name -in 'WhatIf', 'Confirm' } |
        ForEach-Object { [pscustomobject]@{ P = $_; I = $i++ } } |
        Sort-Object { if ($_.P.Position -ge 0) { 0 } elseif ($_.P.IsMandatory) { 1 } elseif ($_.P.Name -in 'WhatIf', 'Confirm') { 3 } else { 2 } },
            { if ($_.P.Position -ge 0) { $_.P.Position } else { 0 } }, I |
        ForEach-Object P
}

# The default value the code gives a parameter: read from a new instance of the cmdlet class.
function Get-CodeDefault($Instance, [string] $Name, [type] $Type) {
    if ($Type -eq [System.Management.Automation.SwitchParameter]) { return 'False' }
    if (-not $Instance -or -not $Instance.GetType().GetProperty($Name)) { return 'None' }
    $value = $Instance.GetType().GetProperty($Name).GetValue($Instance)
    if ($null -eq $value -or ($value -is [string] -and $value -eq '') -or ($value -is [array] -and $value.Count -eq 0)) { return 'None' }
    if ($value -is [timespan]) { return "$value ($($value.TotalSeconds) seconds)" }
    [string]$value
}

# ---------------------------------------------------------------------------------------------------------------
# MAML

$ns = @{
    msh     = 'http://msh'
    maml    = 'http://schemas.microsoft.com/maml/2004/10'
    command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
    dev     = 'http://schemas.microsoft.com/maml/dev/2004/10'
    MSHelp  = 'http://msdn.microsoft.com/mshelp'
}

function Write-Element($W, [string] $Prefix, [string] $Name, [string] $Text) {
    $W.WriteStartElement($Prefix, $Name, $ns[$Prefix])
    if ($Text) { $W.WriteString($Text) }
    $W.WriteEndElement()
}

function Write-Paras($W, [string] $Prefix, [string] $Name, [string[]] $Paras) {
    $W.WriteStartElement($Prefix, $Name, $ns[$Prefix])
    if (-not $Paras) { $Paras = @('') }
    foreach ($p in $Paras) { Write-Element $W 'maml' 'para' $p }
    $W.WriteEndElement()
}

function Write-TypeElement($W, [string] $TypeName) {
    $W.WriteStartElement('dev', 'type', $ns.dev)
    Write-Element $W 'maml' 'name' $TypeName
    Write-Element $W 'maml' 'uri' ''
    $W.WriteEndElement()
}

# One command:parameter. $Facts: Required, Position, Pipeline, Globbing, Aliases, Type, FullType, IsSwitch, IsArray, Values, Text, Default.
function Write-Parameter($W, $Facts, [switch] $InSyntax) {
    $W.WriteStartElement('command', 'parameter', $ns.command)
    $W.WriteAttributeString('required', $Facts.Required)
    $W.WriteAttributeString('variableLength', $(if ($Facts.IsArray) { 'true' } else { 'false' }))
    $W.WriteAttributeString('globbing', $Facts.Globbing)
    $W.WriteAttributeString('pipelineInput', $Facts.Pipeline)
    $W.WriteAttributeString('position', $Facts.Position)
    $W.WriteAttributeString('aliases', $Facts.Aliases)
    Write-Element $W 'maml' 'name' $Facts.Name
    Write-Paras $W 'maml' 'description' $Facts.Text
    if ($Facts.Values) {
        $W.WriteStartElement('command', 'parameterValueGroup', $ns.command)
        foreach ($v in $Facts.Values) {
            $W.WriteStartElement('command', 'parameterValue', $ns.command)
            $W.WriteAttributeString('required', 'false')
            $W.WriteAttributeString('command', 'variableLength', $ns.command, 'false')
            $W.WriteString($v)
            $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }
    if (-not ($InSyntax -and $Facts.IsSwitch)) {
        $W.WriteStartElement('command', 'parameterValue', $ns.command)
        $W.WriteAttributeString('required', $(if ($Facts.IsSwitch) { 'false' } else { 'true' }))
        $W.WriteAttributeString('variableLength', $(if ($Facts.IsArray) { 'true' } else { 'false' }))
        $W.WriteString($Facts.Type)
        $W.WriteEndElement()
    }
    Write-TypeElement $W $Facts.FullType
    Write-Element $W 'dev' 'defaultValue' $Facts.Default
    $W.WriteEndElement()
}

# ---------------------------------------------------------------------------------------------------------------
# about_ topics: markdown to console text (headings at column 0, text indented by 4 and wrapped at 80).

function Format-Wrapped([string] $Text, [int] $Indent, [int] $Hanging = $Indent, [int] $Width = 80) {
    $lines = [System.Collections.Generic.List[string]]::new()
    $line = ''
    $pad = ' ' * $Indent
    foreach ($word in ($Text -split '\s+' | Where-Object { $_ })) {
        if ($line -and ($pad.Length + $line.Length + 1 + $word.Length) -gt $Width) {
            $lines.Add($pad + $line); $line = $word; $pad = ' ' * $Hanging
        }
        else { $line = if ($line) { "$line $word" } else { $word } }
    }
    if ($line) { $lines.Add($pad + $line) }
    $lines
}

function ConvertTo-AboutText([string] $Path, [System.Collections.Generic.List[string]] $Problems) {
    $topic = [IO.Path]::GetFileNameWithoutExtension($Path)
    $lines = (Get-Content $Path -Raw) -split '\r?\n'
    $top = @(Split-MarkdownSection $lines 1 | Where-Object Name)
    if ($top.Count -ne 1 -or $top[0].Name -ne $topic) { $Problems.Add("${topic}: the file must have exactly one title, '# $topic' ($Path)"); return $null }
    $sections = @(Split-MarkdownSection $top[0].Lines 2)
    $names = @($sections | Where-Object Name | ForEach-Object { $_.Name.ToUpperInvariant() })
    foreach ($required in 'SHORT DESCRIPTION', 'LONG DESCRIPTION') {
        if ($required -notin $names) { $Problems.Add("${topic}: no '## $required' section ($Path)") }
    }
    $out = [System.Collections.Generic.List[string]]::new()
    $out.Add('TOPIC'); $out.Add("    $topic"); $out.Add('')
    foreach ($s in $sections) {
        if (-not $s.Name) { continue }
        $out.Add($s.Name.ToUpperInvariant())
        foreach ($sub in Split-MarkdownSection $s.Lines 3) {
            if ($sub.Name) {
                if ($out[$out.Count - 1] -ne '') { $out.Add('') }
                $out.Add("  $($sub.Name)")
            }
            $previous = $null
            foreach ($b in ConvertTo-MarkdownBlock $sub.Lines) {
                # A blank line between blocks, except between the items of one list.
                if ($previous -and -not ($previous.Kind -eq 'Item' -and $b.Kind -eq 'Item')) { $out.Add('') }
                $previous = $b
                switch ($b.Kind) {
                    'Para' { Format-Wrapped $b.Text 4 | ForEach-Object { $out.Add($_) } }
                    'Item' { Format-Wrapped "$($b.Marker) $($b.Text)" 4 (5 + $b.Marker.Length) | ForEach-Object { $out.Add($_) } }
                    'Code' { $b.Lines | ForEach-Object { $out.Add(("        $_").TrimEnd()) } }
                    'Table' {
                        # Markdown tables as aligned columns; the last column wraps to keep lines within 80.
                        $rows = @($b.Lines | Where-Object { $_ -notmatch '^\|?\s*:?-{3,}' } | ForEach-Object {
                                , @(($_.Trim().Trim('|') -split '(?<!\\)\|') | ForEach-Object { ConvertFrom-InlineMarkdown $_.Trim() }) })
                        $columns = ($rows | ForEach-Object { $_.Count } | Measure-Object -Maximum).Maximum
                        $widths = @(for ($c = 0; $c -lt $columns; $c++) { ($rows | ForEach-Object { if ($c -lt $_.Count) { $_[$c].Length } else { 0 } } | Measure-Object -Maximum).Maximum })
                        $lead = 0; for ($c = 0; $c -lt $columns - 1; $c++) { $lead += $widths[$c] + 2 }
                        $widths[$columns - 1] = [Math]::Min($widths[$columns - 1], [Math]::Max(24, 76 - $lead))
                        $first = $true
                        foreach ($r in $rows) {
                            $cells = @(for ($c = 0; $c -lt $columns - 1; $c++) { $(if ($c -lt $r.Count) { $r[$c] } else { '' }).PadRight($widths[$c]) })
                            $last = @(Format-Wrapped $(if ($columns - 1 -lt $r.Count) { $r[$columns - 1] } else { '' }) 0 0 $widths[$columns - 1])
                            if (-not $last) { $last = @('') }
                            $out.Add(('    ' + (@($cells + $last[0]) -join '  ')).TrimEnd())
                            foreach ($more in $last | Select-Object -Skip 1) { $out.Add('    ' + (' ' * $lead) + $more) }
                            if ($first) { $out.Add('    ' + (($widths | ForEach-Object { '-' * $_ }) -join '  ')); $first = $false }
                        }
                    }
                }
            }
            $out.Add('')
        }
        while ($out.Count -gt 0 -and $out[$out.Count - 1] -eq '') { $out.RemoveAt($out.Count - 1) }
        $out.Add('')
    }
    ($out -join [Environment]::NewLine) + [Environment]::NewLine
}

# ---------------------------------------------------------------------------------------------------------------
# Main

$problems = [System.Collections.Generic.List[string]]::new()
$manifest = @(Get-ChildItem $ModulePath -Filter '*.psd1')
if ($manifest.Count -ne 1) { throw "Expected one module manifest (*.psd1) in $ModulePath, found $($manifest.Count)." }
$module = Import-Module $manifest[0].FullName -PassThru -Force
$assemblyName = [IO.Path]::GetFileName($module.ImplementingAssembly.Location)
$commands = @($module.ExportedCmdlets.Values | Sort-Object Name)
if (-not $commands) { throw "The module at $ModulePath exports no cmdlets." }
$cmdletDocs = Join-Path $DocsPath 'cmdlets'

foreach ($file in Get-ChildItem $cmdletDocs -Filter '*.md' -ErrorAction SilentlyContinue) {
    if ($file.BaseName -notin $commands.Name) { $problems.Add("$($file.BaseName): $($file.FullName) documents a cmdlet the module does not export") }
}

$helps = [System.Collections.Generic.List[object]]::new()
foreach ($command in $commands) {
    $name = $command.Name
    $path = Join-Path $cmdletDocs "$name.md"
    if (-not (Test-Path $path)) { $problems.Add("${name}: no markdown help; write $path"); continue }
    $doc = Read-CommandMarkdown $path $name $problems
    if (-not $doc) { continue }

    # Parameters: the code's (common ones aside) against the markdown's.
    $codeParameters = @($command.Parameters.Values | Where-Object { $_.Name -notin $CommonParameters -or $_.Name -in 'WhatIf', 'Confirm' })
    foreach ($p in $codeParameters) {
        if (-not $doc.Parameters.Contains($p.Name)) {
            if ($StandardParameterText.ContainsKey($p.Name)) { $doc.Parameters[$p.Name] = @($StandardParameterText[$p.Name]) }
            else { $problems.Add("${name}: parameter -$($p.Name) has no '### -$($p.Name)' section ($path)") }
        }
    }
    foreach ($documented in @($doc.Parameters.Keys)) {
        if ($documented -notin $codeParameters.Name) { $problems.Add("${name}: the markdown documents parameter -$documented, which the cmdlet does not have ($path)") }
    }

    # OUTPUTS against [OutputType].
    $outputTypes = @($command.OutputType | ForEach-Object { if ($_.Type) { $_.Type.FullName } else { $_.Name } } | Where-Object { $_ -ne 'System.Void' } | Select-Object -Unique)
    foreach ($t in $outputTypes) {
        if ($t -notin @($doc.Outputs | ForEach-Object Type)) { $problems.Add("${name}: OUTPUTS has no '### $t' section, but the cmdlet declares [OutputType($t)] ($path)") }
    }
    foreach ($o in $doc.Outputs) {
        if ($o.Type -ne 'None' -and $o.Type -notin $outputTypes) {
            $problems.Add("${name}: OUTPUTS documents '$($o.Type)', which is not an [OutputType] of the cmdlet ($(if ($outputTypes) { $outputTypes -join ', ' } else { 'none' })) ($path)")
        }
    }
    if (-not $doc.Outputs) { $problems.Add("${name}: OUTPUTS has no '### TypeName' entry ($path)") }

    if ($doc.Inputs -and -not ($codeParameters | Where-Object { (Test-ByValue $_) -or (Test-ByPropertyName $_) })) {
        foreach ($i in $doc.Inputs) { if ($i.Type -ne 'None') { $problems.Add("${name}: INPUTS documents '$($i.Type)', but no parameter takes pipeline input ($path)") } }
    }
    $helps.Add([pscustomobject]@{ Command = $command; Doc = $doc; Parameters = $codeParameters })
}

# Every problem at once, one a line (the error view wraps a long message), then the error that fails the build.
function Stop-WithProblem([string] $What) {
    $message = "$What ($($problems.Count) problem$(if ($problems.Count -ne 1) { 's' })):`n  - " + ($problems -join "`n  - ")
    [Console]::Error.WriteLine("New-PQHelp: $message")
    throw $message
}
if ($problems.Count) { Stop-WithProblem 'Help is out of step with the cmdlets' }

$null = New-Item -ItemType Directory -Force $OutputPath
$settings = [System.Xml.XmlWriterSettings]@{ Indent = $true; IndentChars = '  '; Encoding = [System.Text.UTF8Encoding]::new($false) }
$mamlPath = Join-Path $OutputPath "$assemblyName-Help.xml"
$w = [System.Xml.XmlWriter]::Create($mamlPath, $settings)
try {
    $w.WriteStartDocument()
    $w.WriteStartElement('helpItems', $ns.msh)
    $w.WriteAttributeString('schema', 'maml')
    $w.WriteComment(' Generated by build/New-PQHelp.ps1 from docs/cmdlets/*.md and the cmdlets themselves. Do not edit. ')
    foreach ($h in $helps) {
        $command = $h.Command; $doc = $h.Doc
        $instance = try { [Activator]::CreateInstance($command.ImplementingType) } catch { $null }
        $sets = @($command.ParameterSets | Sort-Object { -not $_.IsDefault }, Name)
        $facts = @{}
        foreach ($p in $h.Parameters) {
            $inSets = @($sets | ForEach-Object { $s = $_; $s.Parameters | Where-Object Name -EQ $p.Name | ForEach-Object { [pscustomobject]@{ Set = $s.Name; P = $_ } } })
            # One value when every parameter set agrees, else 'value (Set), value (Set)'.
            $perSet = { param([scriptblock] $Of)
                $values = @($inSets | ForEach-Object { & $Of $_.P })
                if (@($values | Select-Object -Unique).Count -eq 1) { $values[0] }
                else { (0..($inSets.Count - 1) | ForEach-Object { "$($values[$_]) ($($inSets[$_].Set))" }) -join ', ' }
            }
            $required = & $perSet { param($x) ([string]$x.IsMandatory).ToLowerInvariant() }
            $position = & $perSet { param($x) Get-PositionText $x }
            $pipeline = & $perSet { param($x) Get-PipelineText $x }
            $type = Get-ElementType $p.ParameterType
            $facts[$p.Name] = [pscustomobject]@{
                Name     = $p.Name
                Required = $required
                Position = $position
                Pipeline = $pipeline
                Globbing = $(if ($p.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] }) { 'true' } else { 'false' })
                Aliases  = $(if ($p.Aliases.Count) { $p.Aliases -join ', ' } else { 'none' })
                Type     = Get-TypeName $p.ParameterType
                FullType = Get-TypeName $p.ParameterType -Full
                IsSwitch = $type -eq [System.Management.Automation.SwitchParameter]
                IsArray  = $type.IsArray
                Values   = @(Get-AcceptedValue $p)
                Text     = @($doc.Parameters[$p.Name])
                Default  = $(if ($doc.ParameterDefaults.ContainsKey($p.Name)) { $doc.ParameterDefaults[$p.Name] } else { Get-CodeDefault $instance $p.Name $p.ParameterType })
            }
        }
        if ($instance -is [IDisposable]) { $instance.Dispose() }

        $w.WriteStartElement('command', 'command', $ns.command)
        foreach ($prefix in 'maml', 'command', 'dev', 'MSHelp') { $w.WriteAttributeString('xmlns', $prefix, $null, $ns[$prefix]) }

        $w.WriteStartElement('command', 'details', $ns.command)
        Write-Element $w 'command' 'name' $command.Name
        Write-Element $w 'command' 'verb' $command.Verb
        Write-Element $w 'command' 'noun' $command.Noun
        Write-Paras $w 'maml' 'description' @($doc.Synopsis)
        $w.WriteEndElement()

        Write-Paras $w 'maml' 'description' $doc.Description

        $w.WriteStartElement('command', 'syntax', $ns.command)
        foreach ($set in $sets) {
            $w.WriteStartElement('command', 'syntaxItem', $ns.command)
            Write-Element $w 'maml' 'name' $command.Name
            foreach ($p in Get-SyntaxParameter $set) {
                $f = $facts[$p.Name].PSObject.Copy()
                $f.Required = ([string]$p.IsMandatory).ToLowerInvariant()
                $f.Position = Get-PositionText $p
                $f.Pipeline = Get-PipelineText $p
                Write-Parameter $w $f -InSyntax
            }
            $w.WriteEndElement()
        }
        $w.WriteEndElement()

        # Parameters in the markdown's order (-WhatIf and -Confirm last when the markdown leaves them out).
        $w.WriteStartElement('command', 'parameters', $ns.command)
        foreach ($parameterName in $doc.Parameters.Keys) { Write-Parameter $w $facts[$parameterName] }
        $w.WriteEndElement()

        # Inputs: the markdown's types, plus what binds by property name (from the code).
        $w.WriteStartElement('command', 'inputTypes', $ns.command)
        $inputs = [System.Collections.Generic.List[object]]::new()
        foreach ($i in $doc.Inputs) { $inputs.Add($i) }
        foreach ($p in $h.Parameters | Where-Object { Test-ByValue $_ }) {
            $t = Get-ElementType $p.ParameterType
            $typeName = if ($t.IsArray) { Get-TypeName $t.GetElementType() -Full } else { Get-TypeName $t -Full }
            if ($typeName -notin @($doc.Inputs | ForEach-Object Type)) { $inputs.Add([pscustomobject]@{ Type = $typeName; Text = @("You can pipe it to -$($p.Name).") }) }
        }
        $byName = @($h.Parameters | Where-Object { Test-ByPropertyName $_ } | ForEach-Object Name)
        if ($byName) {
            $inputs.Add([pscustomobject]@{ Type = 'System.Management.Automation.PSObject'
                    Text = @("Piped objects bind by property name: a property named $(($byName | ForEach-Object { "$_" }) -join ', ' -replace ', (?=[^,]+$)', ' or ') sets the parameter of that name.") })
        }
        if (-not $inputs.Count) { $inputs.Add([pscustomobject]@{ Type = 'None'; Text = @('This cmdlet takes no pipeline input.') }) }
        foreach ($i in $inputs) {
            $w.WriteStartElement('command', 'inputType', $ns.command)
            Write-TypeElement $w $i.Type
            Write-Paras $w 'maml' 'description' $i.Text
            $w.WriteEndElement()
        }
        $w.WriteEndElement()

        $w.WriteStartElement('command', 'returnValues', $ns.command)
        foreach ($o in $doc.Outputs) {
            $w.WriteStartElement('command', 'returnValue', $ns.command)
            Write-TypeElement $w $o.Type
            Write-Paras $w 'maml' 'description' $o.Text
            $w.WriteEndElement()
        }
        $w.WriteEndElement()

        if ($doc.Notes) {
            $w.WriteStartElement('maml', 'alertSet', $ns.maml)
            $w.WriteStartElement('maml', 'alert', $ns.maml)
            foreach ($p in $doc.Notes) { Write-Element $w 'maml' 'para' $p }
            $w.WriteEndElement()
            $w.WriteEndElement()
        }

        $w.WriteStartElement('command', 'examples', $ns.command)
        foreach ($e in $doc.Examples) {
            $w.WriteStartElement('command', 'example', $ns.command)
            Write-Element $w 'maml' 'title' "---------- Example $($e.Number): $($e.Title) ----------"
            Write-Element $w 'dev' 'code' $e.Code
            Write-Paras $w 'dev' 'remarks' (@($e.Remarks) + '')   # the empty para separates the examples in Get-Help
            $w.WriteEndElement()
        }
        $w.WriteEndElement()

        $w.WriteStartElement('command', 'relatedLinks', $ns.command)
        foreach ($l in $doc.Links) {
            $w.WriteStartElement('maml', 'navigationLink', $ns.maml)
            Write-Element $w 'maml' 'linkText' $l.Text
            Write-Element $w 'maml' 'uri' $l.Uri
            $w.WriteEndElement()
        }
        $w.WriteEndElement()

        $w.WriteEndElement() # command:command
    }
    $w.WriteEndElement()
    $w.WriteEndDocument()
}
finally { $w.Dispose() }

# about_ topics.
$abouts = @(Get-ChildItem $DocsPath -Filter 'about_*.md')
foreach ($about in $abouts) {
    $text = ConvertTo-AboutText $about.FullName $problems
    if ($text) { [IO.File]::WriteAllText((Join-Path $OutputPath "$($about.BaseName).help.txt"), $text, [System.Text.UTF8Encoding]::new($false)) }
}
if ($problems.Count) { Stop-WithProblem 'The about topics are not in the expected layout' }

$exampleCount = ($helps | ForEach-Object { $_.Doc.Examples.Count } | Measure-Object -Sum).Sum
Write-Host "Help for $($helps.Count) cmdlets ($exampleCount examples) and $($abouts.Count) about topic(s) written to $OutputPath"
