# What each help example and README runnable block is supposed to leave, checked by Help.Tests.ps1 after it
# ran cleanly (no exception, no error record). Keyed '<Cmdlet>: <example title>' or 'README: <first code line>'.
# Every example needs an entry: an example that runs but does nothing it claims must fail.
#
#   Output    regexes the example's output (Out-String -Width 160) must each match ('' alone: no output at all)
#   NoOutput  regexes the output must not match
#   Warnings  regexes that some warning record must match
#   State     the tasks left in the example's default queue ($env:PERFECTQUEUE_URL), one line per task as
#             'key|status|outcome|message', matched as a set: each regex (anchored) matches one line, and no
#             line is left over. @() means the default queue must stay empty.
#   Files     files the example must leave in its temporary working folder

$waiting = '\|Waiting\|\|'
@{
    # ---- Complete-PQTask ----
    'Complete-PQTask: Example 1: Finish a task after doing its work' = @{
        Output = 'resize-img-0042\s+resize\s+Finished/Succeeded'
        State  = 'resize-img-0042\|Finished\|Succeeded\|resized to 800 px'
    }
    'Complete-PQTask: Example 2: Give up on a task that cannot succeed' = @{
        Output = 'import-orders-17\s+Finished\s+Failed\s+orders-17\.csv is missing on the share'
        State  = 'import-orders-17\|Finished\|Failed\|orders-17\.csv is missing on the share'
    }
    'Complete-PQTask: Example 3: Force-finish a stuck task' = @{
        Output = 'sync-ldap-2026-11-26\s+sync-ldap\s+Finished/ForceFinished'
        State  = 'sync-ldap-2026-11-26\|Finished\|ForceFinished\|operator: the worker host was rebuilt'
    }
    'Complete-PQTask: Example 4: Retire every waiting task of a type' = @{
        Output = '(?s)legacy-sync-1 .*Finished/ForceFinished.*legacy-sync-2 .*Finished/ForceFinished.*legacy-sync-3 .*Finished/ForceFinished'
        State  = @(1..3 | ForEach-Object { "legacy-sync-$_\|Finished\|ForceFinished\|legacy-sync was retired" })
    }

    # ---- Connect-PQQueue ----
    'Connect-PQQueue: Example 1: Use a queue file for this session' = @{
        Output = 'purge-tmp-web01\s+purge-tmp\s+Waiting\s.*\{"host":"web01"\}'
        State  = @()   # the task went to ops-queue.db, not to the default queue
        Files  = 'ops-queue.db'
    }
    'Connect-PQQueue: Example 2: Connect with the worker''s config file' = @{
        Output = '^sqlite:///\S*/prod-queue\.db \(table nightly\)$'
    }
    'Connect-PQQueue: Example 3: Connect with a connection string and a table of its own' = @{
        Output = 'reports\.db \(table report_tasks\)\s+1\s+1'
        State  = @()
        Files  = 'reports.db'
    }
    'Connect-PQQueue: Example 4: Keep two queues at hand' = @{
        Output = 'smoke-test-2026-11-26\s+smoke-test\s+Waiting', 'Queue : \S*/production\.db \(table perfectqueue\)', 'Total : 1'
        Files  = 'staging.db', 'production.db'
    }

    # ---- Open-PQQueue ----
    'Open-PQQueue: Example 1: Look at another queue without switching' = @{
        Output   = 'report-2026-11\s+report\s+Waiting', 'ops\.db \(table perfectqueue\)'
        NoOutput = 'purge-tmp-web01', 'archive\.db'
        State    = @()   # both tasks went to files of the example's folder, not to the default queue
        Files    = 'ops.db', 'archive.db'
    }
    'Open-PQQueue: Example 2: Check the production environment of a config file before initializing it' = @{
        Output = 'prod-queue\.db \(table nightly\)', 'nightly-2026-12-01\s+backup\s+Waiting'
        State  = @()
        Files  = 'perfectqueue.yml', 'prod-queue.db'
    }

    # ---- Disconnect-PQQueue ----
    'Disconnect-PQQueue: Example 1: Work on another queue for a while' = @{
        Output = ''    # after the disconnect, Get-PQTask lists the (empty) default queue, not maintenance.db
        State  = @()
        Files  = 'maintenance.db'
    }
    'Disconnect-PQQueue: Example 2: Always disconnect at the end of a script' = @{
        Output = 'import-2026-11-26\.db \(table perfectqueue\)\s+3\s+3'
        State  = @()
    }

    # ---- Get-PQTask ----
    'Get-PQTask: Example 1: See what is waiting and what is running' = @{
        Output = 'backup-sales-2026-11-26\s+backup\s+team-a\s+Running', 'report-daily-2026-11-26\s+report\s+team-b\s+Waiting'
        State  = 'backup-sales-2026-11-26\|Running\|\|', "report-daily-2026-11-26$waiting"
    }
    'Get-PQTask: Example 2: Who runs a task, and how long it took' = @{
        Output = 'vacuum-sales-2026-11-26\s+Finished\s+\d\d:\d\d:\d\d\.\d+\s+ran on \S+ under worker [0-9a-f]{12}, started \d\d:\d\d:\d\d'
        State  = 'vacuum-sales-2026-11-26\|Finished\|Succeeded\|ran on \S+ under worker [0-9a-f]{12}, started \d\d:\d\d:\d\d'
    }
    'Get-PQTask: Example 3: Look at one task in detail' = @{
        Output = 'Key\s+: nightly-2026-11-26', 'Status\s+: Waiting', '"db": "sales"', '"full": true'
    }
    'Get-PQTask: Example 4: Find failed tasks and their last error' = @{
        Output = 'import-orders-17\s+1\s+\S+ \S+\s+orders-17\.csv is missing on the share'
        State  = 'import-orders-17\|Finished\|Failed\|orders-17\.csv is missing on the share'
    }
    'Get-PQTask: Example 5: The oldest tasks of one team' = @{
        Output   = '(?s)reindex-1\s.*reindex-2\s.*reindex-3\s.*reindex-4\s.*reindex-5\s'
        NoOutput = 'reindex-6', 'reindex-\d\d'
    }
    'Get-PQTask: Example 6: The latest tasks whose keys match a pattern' = @{
        Output   = '(?s)backup-crm-2026-12-01\s+Waiting.*backup-hr-2026-12-01\s+Waiting'
        NoOutput = 'backup-sales', 'report-'
        State    = @(@('sales', 'hr', 'crm' | ForEach-Object { "backup-$_-2026-12-01$waiting" }) + "report-2026-12-01$waiting")
    }
    'Get-PQTask: Example 7: Export tasks to CSV and JSON' = @{
        Output = '^\{"db":"sales","full":true\}$', '"Status":"Waiting"', '"Queue":\{"Description":"sqlite:'
        State  = "nightly-2026-12-01$waiting"
        Files  = 'tasks.csv'
    }

    # ---- Get-PQQueuePause ----
    'Get-PQQueuePause: Example 1: See what is paused and how much waits' = @{
        Output = 'Scope\s+Since\s+PausedBy\s+Waiting\s+Reason', "type 'backup'\s.*\s2\s+backup share offline"
        State  = "backup-sales$waiting", "backup-hr$waiting"
    }
    'Get-PQQueuePause: Example 2: Warn when a pause was forgotten' = @{
        Output = '^no pause older than 4 hours$'
    }

    # ---- Get-PQWorker ----
    'Get-PQWorker: Example 1: See which workers run, and which died' = @{
        Output = ''    # a fresh queue has no workers, and that is no error
    }
    # ---- Get-PQTaskHistory ----
    'Get-PQTaskHistory: Example 1: See why a task needed three attempts' = @{
        Output = '^\s*1 Retried\s+CRM busy \(attempt 1\)$', '^\s*2 Retried\s+CRM busy \(attempt 2\)$', '^\s*3 Succeeded\s+synced 42 contacts$'
        State  = 'sync-crm-2026-11-26\|Finished\|Succeeded\|synced 42 contacts'
    }
    'Get-PQTaskHistory: Example 2: Read what the handler of a failed task wrote' = @{
        Output = '^Attempt\s*:\s*2$', '^Outcome\s*:\s*Failed$', '\[warning\] the template is missing; using the default', '\[error\] the data source refused the login'
        State  = 'report-q4\|Finished\|Failed\|gave up after 2 attempts: .*the data source refused the login.*', 'pq\.notice:failed:\d+:report-q4\|Finished\|Succeeded\|noticed: report-q4 TaskFailed'
    }

    'Get-PQWorker: Example 2: A handler that looks at its own worker' = @{
        Output = '^worker [0-9a-f]{12} on \S+: 2 thread processors, state Alive$'
        State  = 'census-2026-11-26\|Finished\|Succeeded\|worker [0-9a-f]{12} on \S+: 2 thread processors, state Alive'
    }

    # ---- Initialize-PQQueue ----
    'Initialize-PQQueue: Example 1: Create a new queue before the workers start' = @{
        Output = ''
        State  = @()
        Files  = 'deploy.db'
    }
    'Initialize-PQQueue: Example 2: Preview what -Force would do' = @{
        Output = ''
        State  = @()
    }
    'Initialize-PQQueue: Example 3: Empty a test queue' = @{
        Output = 'queue\.db \(table perfectqueue\)\s+0$'
        State  = @()
    }

    # ---- Measure-PQQueue ----
    'Measure-PQQueue: Example 1: Show the state of the queue' = @{
        Output = 'Total\s+: 3', 'Scheduled\s+: 1', 'Waiting\s+: 2', 'Running\s+: 0', 'ByType\s+: backup=2, report=1', 'ByUser\s+: team-a=2, team-b=1'
    }
    'Measure-PQQueue: Example 2: Warn when the workers fall behind' = @{
        Output = '^OK: 1 waiting, 0 running$'
    }
    'Measure-PQQueue: Example 3: Which types are backed up' = @{
        Output = '(?s)thumbnail\s+3\s+report\s+1'
    }

    # ---- Resume-PQQueue ----
    'Resume-PQQueue: Example 1: End the maintenance: resume everything' = @{
        Output = "(?s)Scope\s+Since.*type 'backup'.*user 'team-a'"
    }
    'Resume-PQQueue: Example 2: Resume the pauses a filter found' = @{
        Output = "^still paused: type 'report'$"
    }
    'Resume-PQQueue: Example 3: Resuming what is not paused' = @{
        Output   = ''
        Warnings = "^Type 'backup' is not paused"
    }

    # ---- Receive-PQTask ----
    'Receive-PQTask: Example 1: Process one task, retrying it when the work fails' = @{
        Output = ''    # Write-Host goes to the host
        State  = 'resize-img-0001\|Finished\|Succeeded\|'
    }
    'Receive-PQTask: Example 2: Drain the queue in batches from a scheduled job' = @{
        Output = '^25 tasks processed$'
        State  = @(1..25 | ForEach-Object { "thumbnail-$_\|Finished\|Succeeded\|" })
    }
    'Receive-PQTask: Example 3: Keep the lease of a long task, and stop when cancel is asked' = @{
        Output = ''
        State  = 'migrate-mailbox-jdoe\|Finished\|Succeeded\|migrated'
    }

    # ---- Remove-PQTask ----
    'Remove-PQTask: Example 1: Free a key to submit corrected work now' = @{
        Output = ''
        State  = "import-2026-12-01$waiting"
    }
    'Remove-PQTask: Example 2: Clear out the finished tasks of a type, and keep the live ones' = @{
        Output   = 'probe-b\s+Waiting'
        NoOutput = 'probe-a'
        State    = "probe-b$waiting"
    }
    'Remove-PQTask: Example 3: Delete the cancelled tasks that ended a week ago or more' = @{
        Output = ''
        State  = @()
    }

    # ---- Request-PQCancel ----
    'Request-PQCancel: Example 1: Cancel a task by its key' = @{
        Output = 'reindex-crm-2026-11\s+reindex\s+Finished/Cancelled'
        State  = 'reindex-crm-2026-11\|Finished\|Cancelled\|.*'
    }
    'Request-PQCancel: Example 2: Cancel every backup that has not started, after a preview' = @{
        Output = ''
        State  = @('sales', 'hr', 'crm' | ForEach-Object { "backup-$_-2026-11-26\|Finished\|Cancelled\|.*" })
    }
    'Request-PQCancel: Example 3: Cancel a running task and see its worker stop' = @{
        Output = 'export-ledger-2026\s+CancelRequested'
        State  = 'export-ledger-2026\|Finished\|Cancelled\|cancelled by the operator'
    }

    # ---- Restart-PQTask ----
    'Restart-PQTask: Example 1: Re-run the failed tasks, after a preview' = @{
        Output = 'report-2026-12-01\s+report\s+Waiting\s+due .*\{"day":"2026-12-01"\}'
        State  = "report-2026-12-01$waiting"
    }
    'Restart-PQTask: Example 2: Run a finished task again tonight' = @{
        Output = 'Key\s+: sync-crm', 'Status\s+: Scheduled', 'DueAt\s+: \S+ 0?2:00:00', 'Attempts : 0'
        State  = 'sync-crm\|Scheduled\|\|'
    }
    'Restart-PQTask: Example 3: A running task is refused' = @{
        Output = '^TaskNotFinished,PerfectQueue\.PowerShell\.Commands\.RestartPQTaskCommand$'
        State  = 'export-ledger\|Finished\|Succeeded\|'
    }

    # ---- Start-PQWorker ----
    'Start-PQWorker: Example 1: Drain the queue with two handlers and see the summary' = @{
        Output = 'Processed\s+: 2', 'Succeeded\s+: 2', 'Retried\s+: 0', 'Failed\s+: 0', 'StoppedBecause : empty'
        State  = 'backup-sales\|Finished\|Succeeded\|backed up sales', 'report-48\|Finished\|Succeeded\|rendered week 48'
    }
    'Start-PQWorker: Example 2: Route by regular expression, share code, and let failures retry' = @{
        Output = '(?m)^\s+3\s+2\s+1\s*$', 'Status\s+: Scheduled', 'Attempts : 1', 'Message\s+: too many rows: 300'
        State  = 'export-1\|Finished\|Succeeded\|exported 100 rows', 'export-2\|Finished\|Succeeded\|exported 200 rows', 'export-3\|Scheduled\|\|too many rows: 300'
    }
    'Start-PQWorker: Example 3: Run compiled handlers routed by a Dispatch class' = @{
        Output = '(?m)^\s+1\s+1\s*$', '(?m)^resized cat\.png$'
        State  = 'resize-cat\|Finished\|Succeeded\|resized cat\.png'
    }
    'Start-PQWorker: Example 4: Run as a job, with a config file and a log file' = @{
        Output = '(?m)^\s+1\s+1 graceful stop\s*$', 'end mail-1 \(mail\) after [0-9.]+s: succeeded', 'Stop-Job: graceful stop', 'worker stopped \(graceful stop\): 1 processed, 1 succeeded'
        State  = @()   # its queue is the config file's, in a folder of its own
    }
    'Start-PQWorker: Example 5: Process at most ten tasks, for a scheduled job' = @{
        Output = '^processed 10; left: 2$'
        State  = @(@(1..10 | ForEach-Object { 'ping-\d+\|Finished\|Succeeded\|pong' }) + @(1..2 | ForEach-Object { "ping-\d+$waiting" }))
    }
    'Start-PQWorker: Example 6: Drain many short tasks with prefetch' = @{
        Output = 'Processed\s+: 40', 'Succeeded\s+: 40', 'Released\s+: 0', 'StoppedBecause : empty'
        State  = @(1..40 | ForEach-Object { "thumb-$_\|Finished\|Succeeded\|thumbnail $_ done" })
    }

    # ---- Start-PQDashboard ----
    'Start-PQDashboard: Example 1: Serve the dashboard as a job and read its counts' = @{
        Output = '^1 waiting, shown at http://127\.0\.0\.1:\d+/$'
        State  = 'report-2026-12\|Waiting\|\|'
    }
    'Start-PQDashboard: Example 2: A read-only dashboard for the team, behind a token' = @{
        Output   = '^read-only: True$'
        Warnings = 'listens on \*'
        State    = @()
    }
    'Start-PQDashboard: Example 3: Cancel a task through the dashboard''s API' = @{
        Output = 'resize-7\s+resize\s+Finished/Cancelled'
        State  = 'resize-7\|Finished\|Cancelled\|cancel requested'
    }

    # ---- Stop-PQWorker ----
    'Stop-PQWorker: Example 1: Stop every worker on one host before its maintenance' = @{
        Output = ''    # no worker runs on batch-07: nothing to stop, and no error
    }
    'Stop-PQWorker: Example 2: A handler that drains its own worker' = @{
        Output = '^stop requested$'
        State  = 'deploy-2026-11-26\|Finished\|Succeeded\|deployed'
    }
    'Stop-PQWorker: Example 3: Preview, then stop one worker by its id' = @{
        Output = '^no session has that id: WorkerNotFound,PerfectQueue\.PowerShell\.Commands\.StopPQWorkerCommand$'
    }

    # ---- Suspend-PQQueue ----
    'Suspend-PQQueue: Example 1: Pause the whole queue for database maintenance' = @{
        Output = "the whole queue\s.*database upgrade, ticket OPS-1234", 'acquired while paused: 0'
        State  = "nightly-report$waiting"
    }
    'Suspend-PQQueue: Example 2: Pause two task types of one team' = @{
        Output = "(?s)type 'backup' of user 'team-a'\s+storage migration.*type 'restore' of user 'team-a'\s+storage migration"
    }
    'Suspend-PQQueue: Example 3: Pausing again is harmless' = @{
        Output = '^new: False, reason: first$'
    }

    # ---- Submit-PQTask ----
    'Submit-PQTask: Example 1: Submit a backup task for a team' = @{
        Output = 'backup-sales-2026-11-26\s+backup\s+team-a\s+Waiting\s.*"db":"sales"'
        State  = "backup-sales-2026-11-26$waiting"
    }
    'Submit-PQTask: Example 2: Schedule tasks for later' = @{
        Output = 'rotate-certs-\d{4}-\d\d-\d\d\s+rotate-certs\s+Scheduled\s+due \d\d-\d\d 02:00', 'recheck-cluster-db1\s+health-check\s+Scheduled'
        State  = 'rotate-certs-\d{4}-\d\d-\d\d\|Scheduled\|\|', 'recheck-cluster-db1\|Scheduled\|\|'
    }
    'Submit-PQTask: Example 3: Submit many tasks from a CSV file' = @{
        Output = 'reindex-sales-2026-11\s+reindex\s+team-a\s+Waiting', 'reindex-hr-2026-11\s+reindex\s+team-a\s+Waiting', 'reindex-crm-2026-11\s+reindex\s+team-b\s+Waiting'
        State  = "reindex-sales-2026-11$waiting", "reindex-hr-2026-11$waiting", "reindex-crm-2026-11$waiting"
    }
    'Submit-PQTask: Example 4: Submit from a job that may run twice' = @{
        Output = 'invoice-run-\d{4}-\d\d\s+invoice-run\s+Waiting'
        State  = "invoice-run-\d{4}-\d\d$waiting"    # one task, though submitted twice
    }
    'Submit-PQTask: Example 5: Limit how long a task may run' = @{
        Output = 'Key\s+:\s+vacuum-sales-2026-11-26', 'Status\s+:\s+Waiting', 'ExecutionTimeout\s+:\s+00:10:00'
        State  = "vacuum-sales-2026-11-26$waiting"
    }

    # ---- Test-PQTask ----
    'Test-PQTask: Example 1: Check that a task was queued' = @{
        Output = '^The reindex is queued, running, or finished recently\.$'
    }
    'Test-PQTask: Example 2: Report which of several tasks exist' = @{
        Output = 'export-eu-2026-11-26\s+True', 'export-us-2026-11-26\s+False', 'export-apac-2026-11-26\s+False'
    }

    # ---- Wait-PQTask ----
    'Wait-PQTask: Example 1: Submit a task, wait for it, and check how it ended' = @{
        Output = '^Export done: exported 1200 rows$'
        State  = 'export-orders-2026-11-26\|Finished\|Succeeded\|exported 1200 rows'
    }
    'Wait-PQTask: Example 2: Wait for a batch, and report the tasks that did not finish in time' = @{
        Output   = 'backup-\w+-2026-11-26\s+Finished\s+Succeeded'
        NoOutput = 'Waiting'
        Warnings = '^Not finished in time: backup-\w+-2026-11-26$'
        State    = 'backup-\w+-2026-11-26\|Finished\|Succeeded\|', 'backup-\w+-2026-11-26\|Finished\|Succeeded\|', "backup-\w+-2026-11-26$waiting"
    }

    # ---- README.md ----
    'README: # submit: one at a time, or piped (one round trip per batch of 500)' = @{
        Output = 'nightly-2026-11-26\s+backup\s+team-a\s+Waiting', 'purge-tmp\s+cleanup\s+Scheduled', 'Key\s+: nightly-2026-11-26', 'Total\s+: 3',
                 'processing nightly-2026-11-26 with \{"db":"sales"\}', 'processing report-2026-48 with \{\}',
                 'nightly-2026-11-26\s+Finished\s+Succeeded', 'report-2026-48\s+Finished\s+Succeeded'
        State  = 'nightly-2026-11-26\|Finished\|Succeeded\|', 'report-2026-48\|Finished\|Succeeded\|', 'purge-tmp\|Finished\|Cancelled\|.*'
    }

    # ---- schedules (Register/Get/Set/Unregister/Suspend/Resume-PQSchedule) ----
    'Register-PQSchedule: Example 1: Replace a nightly cron entry' = @{
        Output = 'nightly-backup\s+0 3 \* \* \*\s+Europe/Berlin\s+backup\s+False'
        State  = @()
    }
    'Register-PQSchedule: Example 2: Preview, then register a frequent schedule that never overlaps' = @{
        Output = 'poll-inbox\s+\*/10 \* \* \* \* \*\s+UTC\s+poll-inbox\s+False'
        State  = @()
    }
    'Register-PQSchedule: Example 3: A taken name, then a replacement' = @{
        Output = 'taken: ScheduleAlreadyExists,PerfectQueue\.PowerShell\.Commands\.RegisterPQScheduleCommand', 'weekly-report\s+0 7 \* \* 1'
        State  = @()
    }
    'Get-PQSchedule: Example 1: See when every schedule fires next' = @{
        Output = '(?s)hourly-sync\s+0 \* \* \* \*\s+UTC\s+sync.*nightly-backup\s+0 3 \* \* \*\s+UTC\s+backup'
        State  = @()
    }
    'Get-PQSchedule: Example 2: Find schedules whose fires were skipped' = @{
        Output = '^missing: ScheduleNotFound,PerfectQueue\.PowerShell\.Commands\.GetPQScheduleCommand$'
        State  = @()
    }
    'Set-PQSchedule: Example 1: Move a nightly backup to 02:30' = @{
        Output = 'nightly-backup\s+30 2 \* \* \*'
        State  = @()
    }
    'Set-PQSchedule: Example 2: Point every sync schedule at a new database' = @{
        Output = '(?m)^sync-crm: new$', '(?m)^sync-erp: new$'
        State  = @()
    }
    'Unregister-PQSchedule: Example 1: Retire a schedule' = @{
        Output = '^left: 0$'
        State  = @()
    }
    'Unregister-PQSchedule: Example 2: Preview, then remove every test schedule' = @{
        Output = '^left: 0$'
        State  = @()
    }
    'Suspend-PQSchedule: Example 1: Suspend every schedule for a maintenance window' = @{
        Output = 'hourly-sync\s+True', 'nightly-backup\s+True'
        State  = @()
    }
    'Suspend-PQSchedule: Example 2: Preview a suspension' = @{
        Output = '^paused: False$'
        State  = @()
    }
    'Resume-PQSchedule: Example 1: Resume every suspended schedule after maintenance' = @{
        Output = 'nightly-backup\s+False'
        State  = @()
    }
    'Resume-PQSchedule: Example 2: A name that is not there' = @{
        Output = '^missing: ScheduleNotFound,PerfectQueue\.PowerShell\.Commands\.ResumePQScheduleCommand$'
        State  = @()
    }
}
