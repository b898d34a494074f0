using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using PerfectQueue.Dashboard;
using PerfectQueue.Schedules;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// The dashboard's JSON API (docs/dashboard.md), endpoint by endpoint, over real HTTP on loopback against each
/// backend: what the views read, that each action changes the database as its cmdlet would, and that every bad
/// request is a 4xx JSON error that names the fix. The page itself is tested in Chromium (Dashboard.Browser.Tests.ps1).
/// </summary>
public abstract class DashboardConformance(IBackendTarget target) : BackendSuite(target)
{
    private static readonly TimeSpan Alive = TimeSpan.FromSeconds(30);

    /// <summary>A dashboard on a free loopback port, served until the test ends, and a client of it.</summary>
    private sealed class Served : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _run;
        public DashboardServer Server { get; }
        public HttpClient Http { get; }
        public CookieContainer Cookies { get; } = new();
        public List<string> Log { get; } = [];
        private string? _token;

        public Served(Queue queue, DashboardOptions options)
        {
            Server = DashboardServer.Start(queue, options);
            Server.Log += line => { lock (Log) Log.Add(line); };
            _run = Server.RunAsync(_stop.Token);
            Http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false }) { BaseAddress = Server.Url };
        }

        public async Task<(HttpStatusCode Status, JsonObject Body)> GetAsync(string path)
        {
            using var response = await Http.GetAsync(path);
            return (response.StatusCode, await Json(response));
        }

        public async Task<(HttpStatusCode Status, JsonObject Body)> PostAsync(string path, object body, bool withToken = true)
        {
            _token ??= withToken ? (await GetAsync("api/session")).Body["antiForgeryToken"]?.GetValue<string>() : null;
            using var request = new HttpRequestMessage(HttpMethod.Post, path)
            {
                Content = new StringContent(body as string ?? System.Text.Json.JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
            };
            if (withToken && _token is not null) request.Headers.Add(DashboardServer.AntiForgeryHeader, _token);
            using var response = await Http.SendAsync(request);
            return (response.StatusCode, await Json(response));
        }

        public static async Task<JsonObject> Json(HttpResponseMessage response)
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.StartsWith("application/json", response.Content.Headers.ContentType?.ToString());
            return JsonNode.Parse(text)!.AsObject();
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _run;
            Server.Dispose();
            Http.Dispose();
            _stop.Dispose();
        }
    }

    private Served Serve(Queue queue, bool readOnly = false, string? token = null, string address = "127.0.0.1") =>
        new(queue, new DashboardOptions { Port = 0, ReadOnly = readOnly, AccessToken = token, Address = address });

    private static string ErrorId(JsonObject body) => body["error"]!["id"]!.GetValue<string>();
    private static string ErrorMessage(JsonObject body) => body["error"]!["message"]!.GetValue<string>();
    private static List<string> Keys(JsonObject page) => page["tasks"]!.AsArray().Select(t => t!["key"]!.GetValue<string>()).ToList();

    [BackendFact]
    public async Task Summary_counts_each_status_by_type_and_user_with_the_oldest_waiting_age()
    {
        var q = Open();
        q.Submit("a", "backup", null, new SubmitOptions { User = "team-a" });
        q.Submit("b", "backup");
        q.Submit("c", "report", null, new SubmitOptions { Delay = TimeSpan.FromHours(1) });
        q.Submit("d", "report", null, new SubmitOptions { User = "team-a" });
        q.PollMulti(1, Alive).Single().Finish();   // a: the oldest, finished
        await using var d = Serve(q);

        var (status, summary) = await d.GetAsync("api/summary");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(4, summary["total"]!.GetValue<long>());
        var statuses = summary["statuses"]!.AsObject();
        Assert.Equal(1, statuses["Finished"]!.GetValue<long>());
        Assert.Equal(2, statuses["Waiting"]!.GetValue<long>());
        Assert.Equal(1, statuses["Scheduled"]!.GetValue<long>());
        Assert.Equal(0, statuses["Running"]!.GetValue<long>());
        Assert.True(summary["oldestWaitingAgeSeconds"]!.GetValue<double>() >= 0);
        var types = summary["types"]!.AsArray().ToDictionary(t => t!["type"]!.GetValue<string>(), t => t!["statuses"]!.AsObject());
        Assert.Equal(1, types["backup"]["Waiting"]!.GetValue<long>());
        Assert.Equal(1, types["backup"]["Finished"]!.GetValue<long>());
        Assert.Equal(1, types["report"]["Scheduled"]!.GetValue<long>());
        var users = summary["users"]!.AsArray().ToDictionary(u => u!["user"]?.GetValue<string>() ?? "(none)", u => u!["total"]!.GetValue<long>());
        Assert.Equal(2, users["team-a"]);
        Assert.Equal(2, users["(none)"]);
    }

    [BackendFact]
    public async Task The_summary_is_counted_once_per_refresh_interval_and_an_action_recounts_it()
    {
        var q = Open();
        q.Submit("a", "t");
        await using var d = new Served(q, new DashboardOptions { Port = 0, Refresh = TimeSpan.FromHours(1) });
        long Waiting(JsonObject summary) => summary["statuses"]!["Waiting"]!.GetValue<long>();

        Assert.Equal(1, Waiting((await d.GetAsync("api/summary")).Body));
        q.Submit("b", "t");                                                  // not through the dashboard
        Assert.Equal(1, Waiting((await d.GetAsync("api/summary")).Body));   // the counted answer, within the interval
        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/tasks/cancel", new { key = "a" })).Status);
        var after = (await d.GetAsync("api/summary")).Body;
        Assert.Equal(1, Waiting(after));                                     // b waits, a is cancelled: counted again
        Assert.Equal(1, after["statuses"]!["Finished"]!.GetValue<long>());
    }

    [BackendFact]
    public async Task Tasks_filter_by_status_outcome_type_user_and_literal_key_prefix()
    {
        var q = Open();
        q.Submit("backup-[1]", "backup", null, new SubmitOptions { User = "team-a" });
        q.Submit("backup-12", "backup");
        q.Submit("backup-x", "report", null, new SubmitOptions { User = "team-a" });
        q.Submit("other", "report");
        q["other"].CancelRequest();                           // Finished / Cancelled
        await using var d = Serve(q);

        Assert.Equal(["other", "backup-x", "backup-12", "backup-[1]"], Keys((await d.GetAsync("api/tasks")).Body));   // newest first
        Assert.Equal(["other"], Keys((await d.GetAsync("api/tasks?status=Finished")).Body));
        Assert.Equal(["other"], Keys((await d.GetAsync("api/tasks?status=finished&outcome=Cancelled")).Body));
        Assert.Empty(Keys((await d.GetAsync("api/tasks?outcome=Failed")).Body));
        Assert.Equal(["backup-x", "backup-12", "backup-[1]"], Keys((await d.GetAsync("api/tasks?status=Waiting")).Body));
        Assert.Equal(["backup-12", "backup-[1]"], Keys((await d.GetAsync("api/tasks?type=backup")).Body));
        Assert.Equal(["backup-x", "backup-[1]"], Keys((await d.GetAsync("api/tasks?user=team-a")).Body));
        Assert.Equal(["backup-x"], Keys((await d.GetAsync("api/tasks?user=team-a&type=report")).Body));
        // A prefix is literal: its [ ] and * are characters of the key, not wildcards.
        Assert.Equal(["backup-[1]"], Keys((await d.GetAsync("api/tasks?prefix=" + Uri.EscapeDataString("backup-[1"))).Body));
        Assert.Empty(Keys((await d.GetAsync("api/tasks?prefix=" + Uri.EscapeDataString("backup-*"))).Body));
        Assert.Equal(["backup-x", "backup-12", "backup-[1]"], Keys((await d.GetAsync("api/tasks?prefix=backup-")).Body));
    }

    [BackendFact]
    public async Task Tasks_page_newest_first_by_a_cursor_with_no_row_twice_and_no_row_left_out()
    {
        var q = Open();
        var all = Enumerable.Range(1, 7).Select(i => $"t{i}").ToList();
        q.SubmitMany(all.Select(k => new TaskSubmission(k, "t")));
        await using var d = Serve(q);

        var seen = new List<string>();
        string? next = null;
        var pages = 0;
        do
        {
            var (status, page) = await d.GetAsync("api/tasks?limit=3" + (next is null ? "" : "&before=" + next));
            Assert.Equal(HttpStatusCode.OK, status);
            seen.AddRange(Keys(page));
            next = page["next"]?.GetValue<string>();
            pages++;
            if (pages == 1) q.Submit("t8", "t");              // a submit while paging shows on the first page, not in the middle
        } while (next is not null);
        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(1, 7).Reverse().Select(i => $"t{i}"), seen);
        var whole = (await d.GetAsync("api/tasks?limit=8")).Body;
        Assert.Equal(8, Keys(whole).Count);
        Assert.Null(whole["next"]?.GetValue<string>());             // exactly a page full: no empty page after it
    }

    [BackendFact]
    public async Task A_task_shows_its_fields_data_and_every_attempt_with_its_output()
    {
        var q = Open();
        q.Submit("flaky-1", "flaky", new { path = "/srv/a" });
        var first = q.PollMulti(1, Alive).Single();
        first.Output.Append("output", "step one");
        first.Output.Append("error", "disk full");
        first.Retry("disk full", TimeSpan.Zero);
        var second = q.PollMulti(1, Alive).Single();
        second.Output.Append("output", "step one again");
        second.Finish(TaskOutcome.Failed, "gave up: disk full");
        await using var d = Serve(q);

        var (status, detail) = await d.GetAsync("api/task?key=flaky-1");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Finished", detail["task"]!["status"]!.GetValue<string>());
        Assert.Equal("Failed", detail["task"]!["outcome"]!.GetValue<string>());
        Assert.Equal(2, detail["task"]!["attempts"]!.GetValue<int>());
        Assert.Equal("/srv/a", detail["data"]!["path"]!.GetValue<string>());
        var history = detail["history"]!.AsArray();
        Assert.Equal(["Retried", "Failed"], history.Select(a => a!["outcome"]!.GetValue<string>()));
        Assert.Equal("disk full", history[0]!["message"]!.GetValue<string>());
        Assert.Contains("step one", history[0]!["output"]!.GetValue<string>());
        Assert.Contains("disk full", history[0]!["output"]!.GetValue<string>());
        Assert.Contains("step one again", history[1]!["output"]!.GetValue<string>());

        var (missing, body) = await d.GetAsync("api/task?key=nope");
        Assert.Equal(HttpStatusCode.NotFound, missing);
        Assert.Equal("not_found", ErrorId(body));
        Assert.Contains("'nope'", ErrorMessage(body));
    }

    [BackendFact]
    public async Task Cancel_force_finish_rerun_and_remove_change_the_database_as_the_cmdlets_do()
    {
        var q = Open();
        q.Submit("waiting", "t");
        q.Submit("running", "t");
        q.Submit("done", "t");
        var running = q.PollMulti(1, Alive).Single();        // "waiting" is the oldest: lease it, then hand out the next
        running.Release();
        var held = q.PollMulti(2, Alive);
        held.Single(t => t.Key == "done").Finish();
        await using var d = Serve(q);

        var (s1, cancelled) = await d.PostAsync("api/tasks/cancel", new { key = "waiting" });
        Assert.Equal(HttpStatusCode.OK, s1);
        Assert.Equal("Cancelled", cancelled["result"]!["outcome"]!.GetValue<string>());
        Assert.Equal(TaskOutcome.Cancelled, q["waiting"].GetInfo().Outcome);

        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/tasks/finish", new { key = "running", message = "operator: host rebuilt" })).Status);
        var forced = q["running"].GetInfo();
        Assert.Equal(TaskOutcome.ForceFinished, forced.Outcome);
        Assert.Equal("operator: host rebuilt", forced.Message);

        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/tasks/rerun", new { key = "done" })).Status);
        Assert.Equal(TaskState.Waiting, q["done"].GetInfo().Status);
        var (live, liveBody) = await d.PostAsync("api/tasks/rerun", new { key = "done" });
        Assert.Equal(HttpStatusCode.Conflict, live);
        Assert.Equal("not_finished", ErrorId(liveBody));
        var (again, againBody) = await d.PostAsync("api/tasks/cancel", new { key = "waiting" });
        Assert.Equal(HttpStatusCode.Conflict, again);
        Assert.Equal("already_finished", ErrorId(againBody));

        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/tasks/remove", new { key = "waiting" })).Status);
        Assert.Null(q["waiting"].TryGetInfo());
        Assert.Equal(HttpStatusCode.NotFound, (await d.PostAsync("api/tasks/remove", new { key = "waiting" })).Status);
        lock (d.Log) Assert.Contains(d.Log, l => l.Contains("cancel task 'waiting'"));
    }

    [BackendFact]
    public async Task Queue_and_schedule_suspend_and_resume_and_the_views_show_them()
    {
        var q = Open();
        q.Submit("a", "backup");
        q.RegisterSchedule(new ScheduleDefinition { Name = "nightly", Cron = "0 3 * * *", Type = "backup" });
        await using var d = Serve(q);

        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/queue/suspend", new { type = "backup", reason = "maintenance" })).Status);
        var pauses = (await d.GetAsync("api/pauses")).Body["pauses"]!.AsArray();
        Assert.Equal("backup", Assert.Single(pauses)!["type"]!.GetValue<string>());
        Assert.Equal("maintenance", pauses[0]!["reason"]!.GetValue<string>());
        Assert.Equal(1, pauses[0]!["waiting"]!.GetValue<long>());
        Assert.Empty(q.PollMulti(1, Alive));
        Assert.Equal(1, (await d.GetAsync("api/summary")).Body["pauses"]!.GetValue<long>());
        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/queue/resume", new { type = "backup" })).Status);
        Assert.Empty(q.ListPauses());
        var (none, noneBody) = await d.PostAsync("api/queue/resume", new { type = "backup" });
        Assert.Equal(HttpStatusCode.NotFound, none);
        Assert.Contains("Nothing is paused", ErrorMessage(noneBody));

        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/schedules/suspend", new { name = "nightly" })).Status);
        Assert.True(q.GetSchedule("nightly")!.Paused);
        var schedules = (await d.GetAsync("api/schedules")).Body["schedules"]!.AsArray();
        Assert.True(Assert.Single(schedules)!["paused"]!.GetValue<bool>());
        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/schedules/resume", new { name = "nightly" })).Status);
        Assert.False(q.GetSchedule("nightly")!.Paused);
        Assert.Equal(HttpStatusCode.NotFound, (await d.PostAsync("api/schedules/suspend", new { name = "nope" })).Status);
    }

    [BackendFact]
    public async Task Bad_requests_are_4xx_json_errors_that_name_the_fix_and_change_nothing()
    {
        var q = Open();
        q.Submit("a", "t");
        await using var d = Serve(q);

        async Task Expect(HttpStatusCode status, string id, Task<(HttpStatusCode, JsonObject)> call, string? says = null)
        {
            var (got, body) = await call;
            Assert.Equal(status, got);
            Assert.Equal(id, ErrorId(body));
            if (says is not null) Assert.Contains(says, ErrorMessage(body));
            Assert.DoesNotContain("   at ", body.ToJsonString());   // never a stack trace
        }

        await Expect(HttpStatusCode.BadRequest, "bad_request", d.GetAsync("api/tasks?status=Nope"), "Scheduled, Waiting");
        await Expect(HttpStatusCode.BadRequest, "bad_request", d.GetAsync("api/tasks?limit=0"), "1 to 500");
        await Expect(HttpStatusCode.BadRequest, "bad_request", d.GetAsync("api/tasks?before=x"), "'next'");
        await Expect(HttpStatusCode.BadRequest, "bad_request", d.GetAsync("api/task"), "key");
        await Expect(HttpStatusCode.NotFound, "not_found", d.GetAsync("api/nothing"), "/api/nothing");
        await Expect(HttpStatusCode.NotFound, "not_found", d.GetAsync("elsewhere"));
        await Expect(HttpStatusCode.MethodNotAllowed, "method_not_allowed", d.GetAsync("api/tasks/cancel"), "POST");
        await Expect(HttpStatusCode.MethodNotAllowed, "method_not_allowed", d.PostAsync("api/summary", new { }), "GET");
        await Expect(HttpStatusCode.BadRequest, "bad_request", d.PostAsync("api/tasks/cancel", new { }), "\"key\"");
        await Expect(HttpStatusCode.BadRequest, "bad_request", d.PostAsync("api/tasks/cancel", new { key = 5 }), "string");
        await Expect(HttpStatusCode.BadRequest, "bad_json", d.PostAsync("api/tasks/cancel", "{not json"));
        await Expect(HttpStatusCode.BadRequest, "bad_json", d.PostAsync("api/tasks/cancel", "[1]"));
        await Expect(HttpStatusCode.Forbidden, "forgery_check_failed", d.PostAsync("api/tasks/cancel", new { key = "a" }, withToken: false), "X-PQ-AntiForgery");
        await Expect(HttpStatusCode.BadRequest, "bad_request", d.PostAsync("api/tasks/cancel", new { key = "a\0b" }));

        using (var form = new HttpRequestMessage(HttpMethod.Post, "api/tasks/cancel") { Content = new StringContent("key=a", Encoding.UTF8, "application/x-www-form-urlencoded") })
        {
            form.Headers.Add(DashboardServer.AntiForgeryHeader, (await d.GetAsync("api/session")).Body["antiForgeryToken"]!.GetValue<string>());
            using var response = await d.Http.SendAsync(form);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        }
        using (var crossSite = new HttpRequestMessage(HttpMethod.Post, "api/tasks/cancel") { Content = new StringContent("{\"key\":\"a\"}", Encoding.UTF8, "application/json") })
        {
            crossSite.Headers.Add(DashboardServer.AntiForgeryHeader, (await d.GetAsync("api/session")).Body["antiForgeryToken"]!.GetValue<string>());
            crossSite.Headers.Add("Origin", "http://evil.example");
            using var response = await d.Http.SendAsync(crossSite);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains("evil.example", ErrorMessage(await Served.Json(response)));
        }
        foreach (var name in new[] { "attacker.example", "127.0.0.1.attacker.example", "localhost.attacker.example" })
        {
            using var rebound = new HttpRequestMessage(HttpMethod.Get, "api/summary");
            rebound.Headers.Host = $"{name}:{d.Server.Url.Port}";   // DNS rebinding: another name for 127.0.0.1
            using var response = await d.Http.SendAsync(rebound);
            // Refused by the listener's own host match (404) or, should that ever let it through, by the dashboard (421).
            Assert.True(response.StatusCode is HttpStatusCode.MisdirectedRequest or HttpStatusCode.NotFound, $"{name}: got {response.StatusCode}");
            Assert.DoesNotContain("\"total\"", await response.Content.ReadAsStringAsync());
        }
        foreach (var name in new[] { "localhost", "127.0.0.1" })
        {
            using var own = new HttpRequestMessage(HttpMethod.Get, "api/summary");
            own.Headers.Host = $"{name}:{d.Server.Url.Port}";       // both names a user types for this machine
            using var response = await d.Http.SendAsync(own);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        Assert.Equal(TaskState.Waiting, q["a"].GetInfo().Status);   // nothing above changed the task
    }

    [BackendFact]
    public async Task Behind_a_proxy_changes_from_the_public_origin_are_taken_and_other_origins_are_not()
    {
        var q = Open();
        q.Submit("a", "t");
        q.Submit("b", "t");
        await using var plain = Serve(q);
        await using var proxied = new Served(q, new DashboardOptions { Port = 0, PublicUrl = new Uri("https://queue.example.com/") });

        async Task<HttpStatusCode> Cancel(Served d, string key, string origin)
        {
            var token = (await d.GetAsync("api/session")).Body["antiForgeryToken"]!.GetValue<string>();
            using var request = new HttpRequestMessage(HttpMethod.Post, "api/tasks/cancel") { Content = new StringContent($"{{\"key\":\"{key}\"}}", Encoding.UTF8, "application/json") };
            request.Headers.Add(DashboardServer.AntiForgeryHeader, token);
            request.Headers.Add("Origin", origin);
            using var response = await d.Http.SendAsync(request);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.Forbidden, await Cancel(plain, "a", "https://queue.example.com"));
        Assert.Equal(HttpStatusCode.Forbidden, await Cancel(proxied, "a", "https://evil.example"));
        Assert.Equal(HttpStatusCode.Forbidden, await Cancel(proxied, "a", "http://queue.example.com"));   // the scheme counts too
        Assert.Equal(TaskState.Waiting, q["a"].GetInfo().Status);
        Assert.Equal(HttpStatusCode.OK, await Cancel(proxied, "b", "https://queue.example.com"));
        Assert.Equal(TaskOutcome.Cancelled, q["b"].GetInfo().Outcome);
        Assert.Throws<ArgumentException>(() => DashboardServer.Start(q, new DashboardOptions { Port = 0, PublicUrl = new Uri("ftp://x/") }));
    }

    [BackendFact]
    public async Task Read_only_serves_views_refuses_every_change_and_hands_out_no_token()
    {
        var q = Open();
        q.Submit("a", "t");
        await using var d = Serve(q, readOnly: true);
        var session = (await d.GetAsync("api/session")).Body;
        Assert.True(session["readOnly"]!.GetValue<bool>());
        Assert.Null(session["antiForgeryToken"]);
        Assert.Equal(HttpStatusCode.OK, (await d.GetAsync("api/tasks")).Status);
        foreach (var action in new[] { "tasks/cancel", "tasks/finish", "tasks/remove", "tasks/rerun", "queue/suspend", "workers/stop", "schedules/suspend" })
        {
            var (status, body) = await d.PostAsync("api/" + action, new { key = "a", id = "x", name = "x" }, withToken: false);
            Assert.Equal(HttpStatusCode.Forbidden, status);
            Assert.Equal("read_only", ErrorId(body));
        }
        Assert.Equal(TaskState.Waiting, q["a"].GetInfo().Status);
        Assert.Empty(q.ListPauses());
    }

    [BackendFact]
    public async Task An_access_token_is_needed_for_the_api_and_a_sign_in_sets_a_session_cookie_not_the_token()
    {
        const string token = "a-long-enough-access-token-1234";
        var q = Open();
        q.Submit("a", "t");
        await using var d = Serve(q, token: token);

        Assert.Equal(HttpStatusCode.Unauthorized, (await d.GetAsync("api/summary")).Status);
        var page = await d.Http.GetStringAsync("/");
        Assert.Contains("action=\"/signin\"", page);                  // the sign-in page, not the dashboard
        using (var bearer = new HttpRequestMessage(HttpMethod.Get, "api/summary"))
        {
            bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await d.Http.SendAsync(bearer);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        using (var wrong = await d.Http.PostAsync("signin", new FormUrlEncodedContent([new("token", "not-the-token-at-all-xx")])))
        {
            Assert.Equal(HttpStatusCode.SeeOther, wrong.StatusCode);
            Assert.Equal("/?denied=1", wrong.Headers.Location?.ToString());
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await d.GetAsync("api/summary")).Status);
        using (var right = await d.Http.PostAsync("signin", new FormUrlEncodedContent([new("token", token)])))
        {
            Assert.Equal(HttpStatusCode.SeeOther, right.StatusCode);
            var cookie = Assert.Single(right.Headers.GetValues("Set-Cookie"));
            Assert.StartsWith($"pq_session_{d.Server.Url.Port}=", cookie);   // per port: browsers send a host's cookies to all its ports
            Assert.Contains("HttpOnly", cookie);
            Assert.Contains("SameSite=Strict", cookie);
            Assert.DoesNotContain(token, cookie);
        }
        Assert.Equal(HttpStatusCode.OK, (await d.GetAsync("api/summary")).Status);
        Assert.Contains("app.js", await d.Http.GetStringAsync("/"));
        Assert.Equal(HttpStatusCode.OK, (await d.PostAsync("api/tasks/cancel", new { key = "a" })).Status);
    }

    [BackendFact]
    public void A_network_address_without_a_token_a_short_token_a_bad_address_and_a_taken_port_are_refused()
    {
        var q = Open();
        var open = Assert.Throws<ArgumentException>(() => DashboardServer.Start(q, new DashboardOptions { Address = "*", Port = 0 }));
        Assert.Contains("-AccessToken", open.Message);
        var shortToken = Assert.Throws<ArgumentException>(() => DashboardServer.Start(q, new DashboardOptions { Port = 0, AccessToken = "short" }));
        Assert.Contains("16 characters", shortToken.Message);
        Assert.Throws<ArgumentException>(() => DashboardServer.Start(q, new DashboardOptions { Address = "not an address", Port = 0 }));
        using var first = DashboardServer.Start(q, new DashboardOptions { Port = 0 });
        var taken = Assert.Throws<InvalidOperationException>(() => DashboardServer.Start(q, new DashboardOptions { Port = first.Url.Port }));
        Assert.Contains("-Port", taken.Message);
    }

    [BackendFact]
    public async Task Every_response_carries_the_safety_headers_and_no_secret_of_the_connection()
    {
        var q = Open();
        await using var d = Serve(q);
        foreach (var path in new[] { "/", "/assets/app.js", "api/session", "api/nothing" })
        {
            using var response = await d.Http.GetAsync(path);
            Assert.Contains("script-src 'self'", string.Join(";", response.Headers.GetValues("Content-Security-Policy")));
            Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
            Assert.Equal("DENY", Assert.Single(response.Headers.GetValues("X-Frame-Options")));
        }
        var session = await d.Http.GetStringAsync("api/session");
        Assert.Contains(q.Description.Split(' ')[0], session);
        if (q.Settings.EffectiveUrl is var url && Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Split(':') is [_, { Length: > 0 } password])
            Assert.DoesNotContain(Uri.UnescapeDataString(password), session);
    }
}
