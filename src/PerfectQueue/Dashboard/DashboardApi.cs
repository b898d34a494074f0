using System.Collections.Specialized;
using System.Data.Common;
using System.Text.Json.Nodes;


namespace PerfectQueue.Dashboard;

/// <summary>
/// What each dashboard endpoint reads or does, through the same engine calls as the cmdlets (Get-PQTask,
/// Request-PQCancel, Complete-PQTask, Restart-PQTask, Remove-PQTask, the schedule and pause cmdlets, Stop-PQWorker).
/// Requests arrive checked by <see cref="DashboardServer"/>; answers are <see cref="Reply"/> objects, errors a 4xx
/// with an id and a message that says what to do.
/// </summary>
internal sealed class DashboardApi(Queue queue, DashboardOptions options, string antiForgeryToken, Action<string> log)
{
    public const int DefaultPageSize = 50;
    public const int MaxPageSize = 500;

    public string AntiForgeryToken => antiForgeryToken;

    public async Task<Reply> HandleAsync(string method, string route, NameValueCollection query, JsonObject? body, CancellationToken ct)
    {
        if (method == "POST") _summary = null;
        try
        {
            return (method, route) switch
            {
                ("GET", "session") => Session(),
                ("GET", "summary") => await SummaryAsync(ct).ConfigureAwait(false),
                ("GET", "tasks") => await TasksAsync(query, ct).ConfigureAwait(false),
                ("GET", "task") => await TaskAsync(Required(query["key"], "key"), ct).ConfigureAwait(false),
                ("GET", "workers") => Reply.Ok(new { workers = (await queue.ListWorkersAsync(ct).ConfigureAwait(false)).Select(DashboardJson.Worker) }),
                ("GET", "schedules") => Reply.Ok(new { schedules = (await queue.ListSchedulesAsync(ct).ConfigureAwait(false)).Select(DashboardJson.Schedule) }),
                ("GET", "pauses") => Reply.Ok(new { pauses = (await queue.ListPausesAsync(true, ct).ConfigureAwait(false)).Select(DashboardJson.Pause) }),
                ("POST", "tasks/cancel") => await CancelAsync(Field(body, "key"), ct).ConfigureAwait(false),
                ("POST", "tasks/finish") => await ForceFinishAsync(Field(body, "key"), Optional(body, "message"), ct).ConfigureAwait(false),
                ("POST", "tasks/rerun") => await Done($"re-run task '{Field(body, "key")}'", () => queue.RestartAsync(Field(body, "key"), ct: ct), () => TaskAfterAsync(Field(body, "key"), ct)).ConfigureAwait(false),
                ("POST", "tasks/remove") => await Done($"remove task '{Field(body, "key")}'", () => queue.RemoveAsync(Field(body, "key"), ct), () => Task.FromResult<object>(new { removed = Field(body, "key") })).ConfigureAwait(false),
                ("POST", "schedules/suspend") => await ScheduleAsync(Field(body, "name"), true, ct).ConfigureAwait(false),
                ("POST", "schedules/resume") => await ScheduleAsync(Field(body, "name"), false, ct).ConfigureAwait(false),
                ("POST", "queue/suspend") => await SuspendAsync(body, ct).ConfigureAwait(false),
                ("POST", "queue/resume") => await ResumeAsync(body, ct).ConfigureAwait(false),
                ("POST", "workers/stop") => await StopWorkerAsync(Field(body, "id"), ct).ConfigureAwait(false),
                (_, "session" or "summary" or "tasks" or "task" or "workers" or "schedules" or "pauses") =>
                    Reply.Error(405, "method_not_allowed", $"/api/{route} takes GET only.") with { Allow = "GET" },
                (_, "tasks/cancel" or "tasks/finish" or "tasks/rerun" or "tasks/remove" or "schedules/suspend" or "schedules/resume"
                    or "queue/suspend" or "queue/resume" or "workers/stop") =>
                    Reply.Error(405, "method_not_allowed", $"/api/{route} takes POST only.") with { Allow = "POST" },
                _ => Reply.Error(404, "not_found", $"The dashboard's API has no '/api/{route}' (docs/dashboard.md lists the endpoints)."),
            };
        }
        catch (BadRequest e) { return Reply.Error(400, "bad_request", e.Message); }
        catch (NotFoundException e) { return Reply.Error(404, "not_found", e.Message); }
        catch (NotFinishedException e) { return Reply.Error(409, "not_finished", e.Message); }
        catch (AlreadyFinishedException e) { return Reply.Error(409, "already_finished", e.Message); }
        catch (QueueNotInitializedException e) { return Reply.Error(409, "queue_not_initialized", e.Message); }
        catch (OperationNotSupportedException e) { return Reply.Error(409, "not_supported", e.Message); }
        catch (ArgumentException e) { return Reply.Error(400, "bad_request", e.Message); }
        catch (Exception e) when (e is DbException or TimeoutException)
        {
            log($"dashboard: /api/{route}: the database failed: {e.GetType().Name}: {e.Message}");
            return Reply.Error(503, "database_unavailable", "The queue's database did not answer or refused the request; the dashboard's log has the error. Try again shortly.");
        }
    }

    // The summary counts the whole table (about 0.45 s at a million rows on PostgreSQL): every open overview asks
    // for it each refresh, so one answer serves them all for a refresh interval; an action made here drops it.
    private readonly SemaphoreSlim _summaryGate = new(1, 1);
    private (Reply Reply, long At)? _summary;

    private async Task<Reply> SummaryAsync(CancellationToken ct)
    {
        var maxAge = (long)(options.Refresh.TotalMilliseconds * 0.9);
        if (_summary is { } cached && Environment.TickCount64 - cached.At < maxAge) return cached.Reply;
        await _summaryGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_summary is { } fresh && Environment.TickCount64 - fresh.At < maxAge) return fresh.Reply;
            var reply = Reply.Ok(DashboardJson.Summary(await queue.SummarizeAsync(ct).ConfigureAwait(false), await queue.CountPausedAsync(ct).ConfigureAwait(false)));
            _summary = (reply, Environment.TickCount64);
            return reply;
        }
        finally { _summaryGate.Release(); }
    }

    private Reply Session() => Reply.Ok(new
    {
        queue = queue.Description,
        readOnly = options.ReadOnly,
        antiForgeryHeader = DashboardServer.AntiForgeryHeader,
        antiForgeryToken = options.ReadOnly ? null : antiForgeryToken,
        refreshMs = (int)options.Refresh.TotalMilliseconds,
        statuses = Enum.GetNames<TaskState>(),
        outcomes = Enum.GetNames<TaskOutcome>(),
        version = typeof(Queue).Assembly.GetName().Version?.ToString(3),
    });

    // ---- views ----

    private async Task<Reply> TasksAsync(NameValueCollection query, CancellationToken ct)
    {
        var size = DefaultPageSize;
        if (query["limit"] is { Length: > 0 } limitText && (!int.TryParse(limitText, out size) || size is < 1 or > MaxPageSize))
            throw new BadRequest($"limit must be a whole number from 1 to {MaxPageSize} (got '{limitText}').");
        long? before = null;
        if (query["before"] is { Length: > 0 } cursor)
            before = long.TryParse(cursor, out var id) && id > 0 ? id : throw new BadRequest($"before must be the 'next' value of a previous page (got '{cursor}').");
        var prefix = query["prefix"];
        var filter = new TaskFilter
        {
            Statuses = Values<TaskState>(query, "status"),
            Outcomes = Values<TaskOutcome>(query, "outcome"),
            Types = Strings(query, "type"),
            Users = Strings(query, "user"),
            KeyPatterns = string.IsNullOrEmpty(prefix) ? null : [KeyPattern.EscapeLiteral(prefix) + "*"],
        };
        var (tasks, next) = await queue.ListPageAsync(filter, before, size, ct).ConfigureAwait(false);
        return Reply.Ok(new { tasks = tasks.Select(DashboardJson.Task), next = next?.ToString(System.Globalization.CultureInfo.InvariantCulture) });
    }

    private async Task<Reply> TaskAsync(string key, CancellationToken ct)
    {
        var info = await queue[key].TryGetInfoAsync(ct).ConfigureAwait(false)
            ?? throw new NotFoundException($"No task has the key '{key}' in {queue.Description}.", key);
        var attempts = await queue.GetHistoryAsync(key, ct).ConfigureAwait(false) ?? [];
        return Reply.Ok(DashboardJson.TaskDetail(info, attempts));
    }

    private async Task<object> TaskAfterAsync(string key, CancellationToken ct) =>
        await queue[key].TryGetInfoAsync(ct).ConfigureAwait(false) is { } info ? DashboardJson.Task(info) : new { key };

    // ---- actions: each one line in the log, as an audit trail ----

    private async Task<Reply> Done(string what, Func<Task> act, Func<Task<object>> after)
    {
        await act().ConfigureAwait(false);
        log($"dashboard: {what}");
        return Reply.Ok(new { ok = true, result = await after().ConfigureAwait(false) });
    }

    private async Task<Reply> CancelAsync(string key, CancellationToken ct)
    {
        var state = await queue[key].CancelRequestAsync(ct).ConfigureAwait(false);
        log($"dashboard: cancel task '{key}' ({(state == TaskState.Finished ? "cancelled before it started" : "its worker is told at its next heartbeat")})");
        return Reply.Ok(new { ok = true, result = await TaskAfterAsync(key, ct).ConfigureAwait(false) });
    }

    private async Task<Reply> ForceFinishAsync(string key, string? message, CancellationToken ct)
    {
        await queue[key].ForceFinishAsync(message ?? "force finished from the dashboard", ct).ConfigureAwait(false);
        log($"dashboard: force finish task '{key}'");
        return Reply.Ok(new { ok = true, result = await TaskAfterAsync(key, ct).ConfigureAwait(false) });
    }

    private async Task<Reply> ScheduleAsync(string name, bool suspend, CancellationToken ct)
    {
        var schedule = suspend ? await queue.SuspendScheduleAsync(name, ct).ConfigureAwait(false) : await queue.ResumeScheduleAsync(name, ct).ConfigureAwait(false);
        log($"dashboard: {(suspend ? "suspend" : "resume")} schedule '{name}'");
        return Reply.Ok(new { ok = true, result = DashboardJson.Schedule(schedule) });
    }

    private async Task<Reply> SuspendAsync(JsonObject? body, CancellationToken ct)
    {
        var (type, user) = (Optional(body, "type"), Optional(body, "user"));
        var pause = await queue.PauseAsync(type, user, Optional(body, "reason") ?? "paused from the dashboard", ct).ConfigureAwait(false);
        log($"dashboard: suspend {pause.Scope}");
        return Reply.Ok(new { ok = true, result = DashboardJson.Pause(pause) });
    }

    private async Task<Reply> ResumeAsync(JsonObject? body, CancellationToken ct)
    {
        var (type, user) = (Optional(body, "type"), Optional(body, "user"));
        var pause = await queue.ResumeAsync(type, user, ct).ConfigureAwait(false)
            ?? throw new NotFoundException($"Nothing is paused as {QueuePause.Describe(type, user)}: Get-PQQueuePause (or the dashboard's Paused list) shows what is.", QueuePause.Describe(type, user));
        log($"dashboard: resume {pause.Scope}");
        return Reply.Ok(new { ok = true, result = DashboardJson.Pause(pause) });
    }

    private async Task<Reply> StopWorkerAsync(string id, CancellationToken ct)
    {
        var session = await queue.RequestWorkerStopAsync(id, ct).ConfigureAwait(false)
            ?? throw new NotFoundException($"No worker session has the id '{id}' (Get-PQWorker lists them).", id);
        log($"dashboard: stop worker '{id}' ({session.Host}, pid {session.Pid})");
        return Reply.Ok(new { ok = true, result = DashboardJson.Worker(session) });
    }

    // ---- arguments ----

    /// <summary>A request the caller must correct: a 400 with this message.</summary>
    private sealed class BadRequest(string message) : Exception(message);

    private static string Required(string? value, string name) =>
        string.IsNullOrEmpty(value) ? throw new BadRequest($"Give '{name}' (for example /api/task?{name}=nightly-1).") : value;

    private static string Field(JsonObject? body, string name) =>
        Optional(body, name) ?? throw new BadRequest($"The request's body needs \"{name}\": a non-empty string, such as {{\"{name}\": \"nightly-1\"}}.");

    private static string? Optional(JsonObject? body, string name)
    {
        if (body?[name] is not { } node) return null;
        if (node is not JsonValue value || !value.TryGetValue(out string? text))
            throw new BadRequest($"\"{name}\" must be a string (got {node.ToJsonString()}).");
        return string.IsNullOrEmpty(text) ? null : text;
    }

    private static List<string>? Strings(NameValueCollection query, string name) =>
        query.GetValues(name) is { Length: > 0 } values ? values.SelectMany(v => v.Split(',')).Where(v => v.Length > 0).Distinct().ToList() is { Count: > 0 } list ? list : null : null;

    private static List<T>? Values<T>(NameValueCollection query, string name) where T : struct, Enum =>
        Strings(query, name)?.Select(v => Enum.TryParse<T>(v, true, out var parsed) && Enum.IsDefined(parsed) ? parsed
            : throw new BadRequest($"'{v}' is no {name}: use one of {string.Join(", ", Enum.GetNames<T>())}.")).ToList();
}
