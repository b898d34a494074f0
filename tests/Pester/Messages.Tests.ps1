# Error messages a user reads: they name what is wrong in the user's terms and what to do.

BeforeAll {
    Import-Module $env:PQ_MODULE_PATH -Force
    function script:New-TestUrl { 'sqlite:///' + (Join-Path $TestDrive "m-$([guid]::NewGuid().ToString('N')).db") }
}

AfterAll { Disconnect-PQQueue }

Describe 'Argument errors' {
    BeforeEach { Connect-PQQueue (New-TestUrl) }

    It "do not end in .NET's (Parameter 'options')" {
        Submit-PQTask -Key neg -Type t -Delay -5 -ErrorVariable err -ErrorAction SilentlyContinue
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidArgument,*'
        "$($err[0])" | Should -Match 'must not be negative'
        "$($err[0])" | Should -Not -Match '\(Parameter '
        $err[0].Exception.Message | Should -Not -Match '\(Parameter '
    }
}

Describe 'An unreachable database server' {
    It 'is named with the queue and what to check' {
        $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $l.Start(); $port = $l.LocalEndpoint.Port; $l.Stop()   # a loopback port nothing listens on
        $url = "postgresql://pq:pw@127.0.0.1:$port/jobs"
        Connect-PQQueue $url -Table nightly
        $caught = $null
        try { Get-PQTask } catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -BeLike 'DatabaseError,*'
        "$($caught.CategoryInfo.Category)" | Should -Be 'ConnectionError'
        $text = "$caught"
        $text | Should -Match ([regex]::Escape("postgresql://pq@127.0.0.1:$port/jobs (table nightly)"))
        $text | Should -Match "127\.0\.0\.1:$port"
        $text | Should -Match 'server is running'
        $text | Should -Match 'host and port'
        $text | Should -Match 'firewall'
        $text | Should -Match 'password'
        $caught.Exception -is [System.Data.Common.DbException] | Should -BeTrue   # catch [DbException] still works
    }
}

Describe 'retention_time' {
    It 'defaults to one day: a finished key stays taken for a day' {
        $q = Connect-PQQueue (New-TestUrl) -PassThru
        $q.Config.RetentionTime | Should -Be ([timespan]::FromDays(1))
        Submit-PQTask -Key daily -Type t
        Complete-PQTask -Key daily
        $t = Get-PQTask daily
        ($t.Timeout - $t.FinishedAt).TotalHours | Should -BeGreaterThan 23.9   # kept (and the key refused) until then
        ($t.Timeout - $t.FinishedAt).TotalHours | Should -BeLessThan 24.1
        Submit-PQTask -Key daily -Type t -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'TaskAlreadyExists,*'
    }

    It 'keeps the original 300 seconds when a config file says retention_time: 300' {
        $file = Join-Path $TestDrive 'perfectqueue.yml'
        Set-Content $file @"
development:
  url: $(New-TestUrl)
  retention_time: 300
"@
        $q = Connect-PQQueue -ConfigPath $file -PassThru
        $q.Config.RetentionTime | Should -Be ([timespan]::FromSeconds(300))
        Submit-PQTask -Key short -Type t
        Complete-PQTask -Key short
        $t = Get-PQTask short
        ($t.Timeout - $t.FinishedAt).TotalSeconds | Should -BeGreaterThan 299
        ($t.Timeout - $t.FinishedAt).TotalSeconds | Should -BeLessThan 301
    }
}
