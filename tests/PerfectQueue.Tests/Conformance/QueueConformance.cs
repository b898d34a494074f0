using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// The backend conformance suite: the queue semantics of DESIGN §3, written once. Every backend runs it
/// unchanged through a subclass that supplies its <see cref="IBackendTarget"/>. Times are kept short
/// (leases and delays of a fraction of a second) and waited for by polling, never by fixed sleeps.
/// </summary>
public abstract class QueueConformance(IBackendTarget target) : BackendSuite(target)
{
    // Long enough not to run out between two steps of a test on a loaded 2-core machine, short enough to
    // wait out (always by polling, with Eventually).
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(1500);

    private static TaskState StatusOf(Queue q, string key) => q[key].GetInfo().Status;

    // ---- unique keys ----

    [BackendFact]
    public void Duplicate_key_is_refused_while_the_task_exists_and_for_retention_after_it_finished_then_accepted()
    {
        var q = Open(c => c.RetentionTime = Short);
        q.Submit("k1", "t", new { n = 1 });
        Assert.Throws<IdempotentAlreadyExistsException>(() => q.Submit("k1", "t", new { n = 2 }));   // waiting
        var task = q.Poll()!;
        Assert.Throws<IdempotentAlreadyExistsException>(() => q.Submit("k1", "t"));                  // running
        task.Finish();
        var e = Assert.Throws<IdempotentAlreadyExistsException>(() => q.Submit("k1", "t"));          // finished, within retention
        Assert.Equal("k1", e.Key);
        Assert.IsAssignableFrom<IIdempotentError>(e);

        Eventually.True(() => !q["k1"].Exists(), "the finished task's retention to end");
        q.Submit("k1", "t2", new { n = 3 });                                                          // accepted, before any cleanup ran
        var info = q["k1"].GetInfo();
        Assert.Equal(TaskState.Waiting, info.Status);
        Assert.Equal("t2", info.Type);
        Assert.Equal(3, (int)info.Data["n"]!);
        Assert.Equal(0, info.Attempts);
        Assert.Null(info.Outcome);
    }

    [BackendFact]
    public void A_batch_submit_stores_the_new_keys_and_reports_each_duplicate()
    {
        var q = Open();
        q.Submit("b2", "t");
        var stored = q.SubmitMany([new("b1", "t"), new("b2", "t"), new("b3", "t"), new("b1", "t")]);
        Assert.Equal([true, false, true, false], stored);
        Assert.Equal(["b1", "b2", "b3"], q.List().Select(t => t.Key).Order().ToArray());
    }

    [BackendFact]
    public void Invalid_input_is_refused_before_anything_is_stored()
    {
        var q = Open();
        Assert.Throws<ArgumentException>(() => q.SubmitMany([new("ok", "t"), new("", "t")]));
        Assert.Throws<ArgumentException>(() => q.SubmitMany([new("ok", "t"), new("k", " ")]));
        Assert.Throws<ArgumentException>(() => q.SubmitMany([new("ok", "t"), new("k", "t", "[1,2]")]));
        Assert.Throws<ArgumentException>(() => q.Submit("k", "t", options: new SubmitOptions { MaxRunning = 0 }));
        Assert.Throws<ArgumentException>(() => q.Submit("k", "t", options: new SubmitOptions { Delay = TimeSpan.FromSeconds(1), RunAt = DateTimeOffset.UtcNow }));
        Assert.Empty(q.List());
    }

    // ---- due order and run-at ----

    [BackendFact]
    public void A_future_run_at_is_not_acquired_early()
    {
        var q = Open();
        q.Submit("later", "t", options: new SubmitOptions { RunAt = q.Now().AddSeconds(30) });
        q.Submit("delayed", "t", options: new SubmitOptions { Delay = TimeSpan.FromSeconds(30) });
        Assert.Null(q.Poll());
        Assert.Empty(q.PollMulti(10));
        Assert.Equal(TaskState.Scheduled, StatusOf(q, "later"));
        Assert.Equal(TaskState.Scheduled, StatusOf(q, "delayed"));
    }

    [BackendFact]
    public void A_delayed_task_becomes_due_when_its_time_comes()
    {
        var q = Open();
        var submittedAt = q.Now();
        q.Submit("soon", "t", options: new SubmitOptions { Delay = Short });
        var task = Eventually.Get(() => q.Poll(), "the delayed task to become due");
        Assert.Equal("soon", task.Key);
        Assert.True(q.Now() - submittedAt >= Short - TimeSpan.FromMilliseconds(5), "acquired before its delay had passed");
    }

    [BackendFact]
    public void Acquire_follows_due_order()
    {
        var q = Open();
        var now = q.Now();
        q.Submit("c", "t", options: new SubmitOptions { RunAt = now.AddSeconds(-10) });
        q.Submit("a", "t", options: new SubmitOptions { RunAt = now.AddSeconds(-30) });
        q.Submit("d", "t", options: new SubmitOptions { RunAt = now.AddSeconds(-5) });
        q.Submit("b", "t", options: new SubmitOptions { RunAt = now.AddSeconds(-20) });
        q.Submit("e", "t");
        q.Submit("future", "t", options: new SubmitOptions { RunAt = now.AddMinutes(5) });
        Assert.Equal(["a", "b"], q.PollMulti(2).Select(t => t.Key).ToArray());
        Assert.Equal("c", q.Poll()!.Key);
        Assert.Equal(["d", "e"], q.PollMulti(10).Select(t => t.Key).ToArray());
        Assert.Null(q.Poll());
    }

    // ---- leases ----

    [BackendFact]
    public void An_expired_lease_lets_another_worker_acquire_and_the_first_holder_is_preempted_everywhere()
    {
        var q = Open();
        var other = OpenAnother(q);
        q.Submit("k", "t", new { v = 1 });
        var first = q.Poll(Short)!;
        Assert.Null(other.Poll());                                        // held
        Assert.Equal(TaskState.Running, StatusOf(q, "k"));
        var second = Eventually.Get(() => other.Poll(TimeSpan.FromMinutes(1)), "the lease to expire");
        Assert.Equal(2, second.Attempt);

        Assert.Equal(PreemptionReason.Reacquired, Assert.Throws<PreemptedException>(() => first.Heartbeat()).Reason);
        Assert.Throws<PreemptedException>(() => first.Finish());
        Assert.Throws<PreemptedException>(() => first.Retry("x"));
        Assert.Throws<PreemptedException>(() => first.Release());
        Assert.Throws<PreemptedException>(() => first.UpdateData(new { v = 2 }));
        Assert.True(first.CancellationToken.IsCancellationRequested);
        Assert.Throws<PreemptedException>(() => first.ThrowIfCancellationRequested());

        second.Finish("done by the second");
        var info = q["k"].GetInfo();
        Assert.Equal(TaskOutcome.Succeeded, info.Outcome);
        Assert.Equal("done by the second", info.Message);
        Assert.Equal(1, (int)info.Data["v"]!);
    }

    [BackendFact]
    public void A_stale_holder_cannot_finish_after_the_new_holder_finished()
    {
        var q = Open();
        q.Submit("k", "t");
        var first = q.Poll(Short)!;
        var second = Eventually.Get(() => q.Poll(TimeSpan.FromMinutes(1)), "the lease to expire");
        second.Finish();
        var e = Assert.Throws<PreemptedException>(() => first.Finish());
        Assert.Equal(PreemptionReason.Finished, e.Reason);
        Assert.Equal(TaskOutcome.Succeeded, q["k"].GetInfo().Outcome);
    }

    [BackendFact]
    public void A_late_holder_whose_lease_expired_unclaimed_may_still_finish()
    {
        var q = Open();
        q.Submit("k", "t");
        var task = q.Poll(TimeSpan.FromMilliseconds(100))!;
        Eventually.True(() => StatusOf(q, "k") == TaskState.Waiting, "the lease to expire");
        task.Finish();
        Assert.Equal(TaskOutcome.Succeeded, q["k"].GetInfo().Outcome);
    }

    [BackendFact]
    public void Heartbeat_keeps_the_lease_and_one_call_beats_many_tasks()
    {
        var q = Open();
        var other = OpenAnother(q);
        for (var i = 0; i < 5; i++) q.Submit($"k{i}", "t");
        // Beats come every ~0.1 s, but a loaded CI machine (the multi-process drains run beside this test) has
        // stalled this loop past a 1.5 s lease and, once, past a 3 s one on MariaDB; the lease then rightly
        // expired. So the lease is long (6 s) and the loop outlives it by a second, not by a second lease.
        var lease = TimeSpan.FromSeconds(6);
        var held = q.PollMulti(5, lease);
        Assert.Equal(5, held.Count);
        var deadline = q.Now() + lease + TimeSpan.FromSeconds(1); // outlive the first lease
        var lastBeat = q.Now();
        while (true)
        {
            var before = q.Now();
            if (before >= deadline) break;
            var reports = q.Heartbeat(held, lease);
            var gap = before - lastBeat; // database clock, so a stalled client shows here
            Assert.All(reports, r => Assert.True(r.Result == HeartbeatResult.Alive,
                $"{r.Task.Key}: {r.Result} ({r.Error?.Message}); {gap.TotalMilliseconds:F0} ms since the previous beat, lease {lease.TotalMilliseconds:F0} ms"));
            lastBeat = before;
            Assert.Empty(other.PollMulti(5));
            Thread.Sleep(100);
        }
        foreach (var t in held) t.Finish();
        Assert.All(q.List(), t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
    }

    [BackendFact]
    public void A_task_keeps_the_trace_context_it_was_submitted_in_and_a_resubmitted_key_takes_the_new_one()
    {
        using var source = new System.Diagnostics.ActivitySource("PerfectQueue.Tests.Conformance." + Guid.NewGuid().ToString("N"));
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = s => s == source,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        var q = Open(c => c.RetentionTime = TimeSpan.FromMilliseconds(200));
        string first;
        using (var a = source.StartActivity("submit one")) { first = a!.Id!; q.SubmitMany([new("t1", "t"), new("t2", "t")]); }
        q.Submit("plain", "t"); // outside any activity of the caller
        var held = q.PollMulti(3).ToDictionary(t => t.Key);
        // The caller's trace (its span, or the engine's submit span within it when a test beside this one listens to
        // the engine's source: listeners are process-wide).
        static string TraceOf(string? traceParent) => Assert.IsType<string>(traceParent).Split('-')[1];
        Assert.Equal(TraceOf(first), TraceOf(held["t1"].TraceParent));
        Assert.Equal(TraceOf(first), TraceOf(held["t2"].TraceParent));
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$", held["t1"].TraceParent);

        held["t1"].Finish();
        Eventually.True(() => !q["t1"].Exists(), "the finished task's retention to end");
        string second;
        using (var a = source.StartActivity("submit again")) { second = a!.Id!; q.Submit("t1", "t"); }
        Assert.NotEqual(TraceOf(first), TraceOf(second));
        Assert.Equal(TraceOf(second), TraceOf(q.Poll()!.TraceParent));
    }

    [BackendFact]
    public void A_finished_task_is_never_acquired_again()
    {
        var q = Open(c => c.RetentionTime = TimeSpan.FromMinutes(5));
        q.Submit("k", "t");
        var task = q.Poll(TimeSpan.FromMilliseconds(50))!;
        task.Finish();
        Eventually.True(() => q.Now() > task.LeaseExpiresAt, "the lease it had to run out"); // database clock
        Assert.Null(q.Poll());
        Assert.Throws<AlreadyFinishedException>(() => q["k"].CancelRequest());
        var info = q["k"].GetInfo();
        Assert.Equal(TaskState.Finished, info.Status);
        Assert.Equal(1, info.Attempts);
    }

    [BackendFact]
    public void Finishing_twice_is_an_already_finished_error()
    {
        var q = Open();
        q.Submit("k", "t");
        var task = q.Poll()!;
        task.Finish();
        Assert.True(task.IsCompleted);
        Assert.Throws<AlreadyFinishedException>(() => task.Finish());
        Assert.Throws<AlreadyFinishedException>(() => task.Retry());
    }

    // ---- retry, attempts, release ----

    [BackendFact]
    public void Retry_waits_retry_wait_and_keeps_the_error_as_message()
    {
        var q = Open(c => c.RetryWait = Short);
        q.Submit("k", "t");
        var task = q.Poll()!;
        Assert.Equal(1, task.Attempt);
        var retriedAt = q.Now();
        Assert.True(task.Retry("boom"));
        Assert.Null(q.Poll());
        var info = q["k"].GetInfo();
        Assert.Equal(TaskState.Scheduled, info.Status);
        Assert.Equal("boom", info.Message);
        var again = Eventually.Get(() => q.Poll(), "the retry wait to pass");
        Assert.True(q.Now() - retriedAt >= Short - TimeSpan.FromMilliseconds(5));
        Assert.Equal(2, again.Attempt);
        Assert.Equal("boom", again.LastMessage);
    }

    [BackendFact]
    public void Retry_with_an_explicit_delay_overrides_retry_wait()
    {
        var q = Open(c => c.RetryWait = TimeSpan.FromHours(1));
        q.Submit("k", "t");
        q.Poll()!.Retry("soon", TimeSpan.Zero);
        Assert.Equal("k", q.Poll()!.Key);
    }

    [BackendFact]
    public void Exponential_backoff_doubles_the_wait_per_attempt_within_its_jitter()
    {
        var q = Open(c => { c.RetryBackoff = RetryBackoff.Exponential; c.RetryWait = TimeSpan.FromSeconds(10); c.RetryJitter = 0.1; c.RetryMaxWait = TimeSpan.FromSeconds(35); });
        q.Submit("k", "t");
        double[] expected = [10, 20, 35]; // the third is capped by retry_max_wait
        foreach (var seconds in expected)
        {
            var task = q.Poll()!;
            var before = q.Now();
            Assert.True(task.Retry("fail"));
            var wait = (q["k"].GetInfo().Timeout!.Value - before).TotalSeconds;
            Assert.InRange(wait, seconds * 0.9 - 0.5, seconds * 1.1 + 0.5);
            Assert.Null(q.Poll());
            new StoreHook(q).MakeDue("k"); // skip the wait itself: only its length is under test
        }
    }

    [BackendFact]
    public void Max_attempts_ends_as_failed_with_the_last_message()
    {
        var q = Open(c => { c.MaxAttempts = 3; c.RetryWait = TimeSpan.Zero; });
        q.Submit("k", "t");
        Assert.True(q.Poll()!.Retry("error 1"));
        Assert.True(q.Poll()!.Retry("error 2"));
        var last = q.Poll()!;
        Assert.Equal(3, last.Attempt);
        Assert.False(last.Retry("error 3"));
        Assert.Equal(Notices.DefaultType, q.Poll()?.Type);            // not the task again: its TaskFailed notice (docs/notices.md)
        Assert.Null(q.Poll());
        var info = q["k"].GetInfo();
        Assert.Equal(TaskState.Finished, info.Status);
        Assert.Equal(TaskOutcome.Failed, info.Outcome);
        Assert.Contains("error 3", info.Message);
        Assert.Equal(3, info.Attempts);
    }

    [BackendFact]
    public void Max_attempts_also_counts_attempts_whose_worker_died()
    {
        var q = Open(c => c.MaxAttempts = 2);
        q.Submit("k", "t");
        q.Poll(TimeSpan.FromMilliseconds(100))!.Retry("first error", TimeSpan.Zero);
        Assert.NotNull(q.Poll(TimeSpan.FromMilliseconds(100)));    // attempt 2: its worker "dies" (never finishes)
        Eventually.True(() => StatusOf(q, "k") == TaskState.Waiting, "the second lease to expire");
        Assert.Null(q.Poll());                                       // attempt 3 is not handed out
        var info = q["k"].GetInfo();
        Assert.Equal(TaskOutcome.Failed, info.Outcome);
        Assert.Contains("first error", info.Message);
    }

    [BackendFact]
    public void Release_makes_the_task_due_at_once_without_counting_the_attempt()
    {
        var q = Open(c => c.RetryWait = TimeSpan.FromHours(1));
        q.Submit("k", "t");
        q.Poll(TimeSpan.FromHours(1))!.Release();
        Assert.Equal(TaskState.Waiting, StatusOf(q, "k"));
        var again = q.Poll()!;
        Assert.Equal("k", again.Key);
        Assert.Equal(1, again.Attempt);
    }

    [BackendFact]
    public void Update_data_is_kept_for_the_next_attempt()
    {
        var q = Open(c => c.RetryWait = TimeSpan.Zero);
        q.Submit("k", "t", new Dictionary<string, object> { ["step"] = 1 });
        var task = q.Poll()!;
        task.UpdateData(new Dictionary<string, object> { ["step"] = 2, ["note"] = "checkpoint" });
        Assert.Equal(2, (int)task.Data["step"]!);
        task.Retry();
        var again = q.Poll()!;
        Assert.Equal(2, (int)again.Data["step"]!);
        Assert.Equal("checkpoint", (string)again.Data["note"]!);
    }

    // ---- cancel and force finish ----

    [BackendFact]
    public void A_cancel_request_on_a_waiting_task_means_it_is_never_handed_out_and_ends_cancelled()
    {
        var q = Open();
        q.Submit("k", "t");
        q.Submit("other", "t");
        Assert.Equal(TaskState.Finished, q["k"].CancelRequest());
        Assert.Equal(["other"], q.PollMulti(10).Select(t => t.Key).ToArray());
        var info = q["k"].GetInfo();
        Assert.Equal(TaskOutcome.Cancelled, info.Outcome);
        Assert.Equal(0, info.Attempts);
    }

    [BackendFact]
    public void A_cancel_request_on_a_running_task_is_reported_by_the_holders_heartbeat()
    {
        var q = Open();
        var client = OpenAnother(q);
        q.Submit("k", "t");
        var task = q.Poll()!;
        Assert.Equal(HeartbeatResult.Alive, task.Heartbeat());
        Assert.False(task.IsCancellationRequested);
        task.ThrowIfCancellationRequested();

        Assert.Equal(TaskState.CancelRequested, client["k"].CancelRequest());
        Assert.Equal(TaskState.CancelRequested, StatusOf(client, "k"));
        Assert.Equal(HeartbeatResult.CancelRequested, task.Heartbeat());
        Assert.True(task.IsCancellationRequested);
        Assert.True(task.CancellationToken.IsCancellationRequested);
        Assert.Equal("k", Assert.Throws<CancelRequestedException>(() => task.ThrowIfCancellationRequested()).Key);

        task.Finish(TaskOutcome.Cancelled, "stopped on request");
        var info = client["k"].GetInfo();
        Assert.Equal(TaskOutcome.Cancelled, info.Outcome);
        Assert.Equal("stopped on request", info.Message);
    }

    [BackendFact]
    public void A_cancelled_running_task_that_is_given_back_is_never_started_again()
    {
        var q = Open(c => c.RetryWait = TimeSpan.Zero);
        q.Submit("k", "t");
        var task = q.Poll()!;
        q["k"].CancelRequest();
        task.Retry("handler ignored the cancel");
        Assert.Null(q.Poll());
        Assert.Equal(TaskOutcome.Cancelled, q["k"].GetInfo().Outcome);
    }

    [BackendFact]
    public void Force_finish_is_reported_by_the_holders_heartbeat_and_fences_its_writes()
    {
        var q = Open();
        var client = OpenAnother(q);
        q.Submit("k", "t");
        var task = q.Poll()!;
        client["k"].ForceFinish("operator gave up");
        var report = q.Heartbeat([task]).Single();
        Assert.Equal(HeartbeatResult.ForceFinished, report.Result);
        Assert.True(task.CancellationToken.IsCancellationRequested);
        Assert.Equal(PreemptionReason.ForceFinished, Assert.Throws<PreemptedException>(() => task.Finish()).Reason);
        var info = client["k"].GetInfo();
        Assert.Equal(TaskOutcome.ForceFinished, info.Outcome);
        Assert.Equal("operator gave up", info.Message);
        Assert.Throws<IdempotentAlreadyFinishedException>(() => client["k"].ForceFinish());
    }

    [BackendFact]
    public void Cancel_and_force_finish_of_an_unknown_key_are_not_found()
    {
        var q = Open();
        Assert.Equal("nope", Assert.Throws<NotFoundException>(() => q["nope"].CancelRequest()).Key);
        Assert.Throws<NotFoundException>(() => q["nope"].ForceFinish());
        Assert.Throws<NotFoundException>(() => q["nope"].GetInfo());
        Assert.False(q["nope"].Exists());
        Assert.Null(q["nope"].TryGetInfo());
    }

    // ---- data ----

    [BackendFact]
    public void Gzip_data_round_trips_and_is_detected_on_read_by_any_client()
    {
        var q = Open(c => c.Compression = DataCompression.Gzip);
        var plainClient = OpenAnother(q, c => c.Compression = DataCompression.None);
        var data = new Dictionary<string, object?>
        {
            ["db"] = "sales", ["n"] = 42, ["ratio"] = 0.5, ["ok"] = true, ["none"] = null,
            ["list"] = new object[] { 1, "two", new Dictionary<string, object> { ["three"] = 3 } },
            ["text"] = new string('x', 2000) + " ünïcødé ✓",
        };
        q.Submit("zipped", "t", data);
        plainClient.Submit("plain", "t", data);
        var zipped = plainClient["zipped"].GetInfo();
        var plain = q["plain"].GetInfo();
        Assert.True(zipped.Compressed);
        Assert.False(plain.Compressed);
        Assert.True(JsonNode.DeepEquals(zipped.Data, plain.Data));
        Assert.Equal("sales", (string)zipped.Data["db"]!);
        Assert.Equal(3, (int)zipped.Data["list"]![2]!["three"]!);
        Assert.EndsWith("ünïcødé ✓", (string)zipped.Data["text"]!);
        var task = plainClient.PollMulti(2).Single(t => t.Key == "zipped");
        Assert.True(JsonNode.DeepEquals(task.Data, plain.Data));
        q.Submit("per-task", "t", data, new SubmitOptions { Compression = DataCompression.None });
        Assert.False(q["per-task"].GetInfo().Compressed);
    }

    // ---- max_running and fairness ----

    [BackendFact]
    public void One_batch_never_takes_more_than_a_users_free_slots()
    {
        var q = Open();
        for (var i = 0; i < 6; i++) q.Submit($"a{i}", "t", options: new SubmitOptions { User = "a", MaxRunning = 2 });
        for (var i = 0; i < 3; i++) q.Submit($"n{i}", "t");
        var batch = q.PollMulti(20);
        Assert.Equal(2, batch.Count(t => t.User == "a"));
        Assert.Equal(3, batch.Count(t => t.User is null));
        Assert.Empty(q.PollMulti(20));
        batch.First(t => t.User == "a").Finish();
        Assert.Equal("a", q.Poll()!.User);
    }

    [BackendFact]
    public void A_user_with_spare_capacity_is_preferred()
    {
        var q = Open();
        var now = q.Now();
        // a's tasks are older, but a already runs one of its two; b runs none of its two.
        for (var i = 0; i < 3; i++) q.Submit($"a{i}", "t", options: new SubmitOptions { User = "a", MaxRunning = 2, RunAt = now.AddSeconds(-60 + i) });
        for (var i = 0; i < 2; i++) q.Submit($"b{i}", "t", options: new SubmitOptions { User = "b", MaxRunning = 2, RunAt = now.AddSeconds(-30 + i) });
        Assert.Equal("a0", q.Poll()!.Key);
        Assert.Equal("b0", q.Poll()!.Key);   // weight b 2/1 beats a 2/2
        Assert.Equal("a1", q.Poll()!.Key);   // now equal weight: due order
        Assert.Equal("b1", q.Poll()!.Key);
        Assert.Null(q.Poll());               // both at their limit
    }

    [BackendFact]
    public void Concurrent_acquirers_on_separate_connections_never_exceed_max_running()
    {
        var limits = new Dictionary<string, int> { ["u1"] = 1, ["u2"] = 2, ["u3"] = 3, ["u4"] = 2 };
        var q = Open();
        var submissions = new List<TaskSubmission>();
        for (var i = 0; i < 240; i++)
        {
            var user = $"u{(i % 5) + 1}"; // u5 has no limit
            var options = limits.TryGetValue(user, out var max) ? new SubmitOptions { User = user, MaxRunning = max } : new SubmitOptions { User = user };
            submissions.Add(new TaskSubmission($"k{i:D4}", "t", new { i }, options));
        }
        Assert.All(q.SubmitMany(submissions), Assert.True);

        var holding = new ConcurrentDictionary<string, int>();
        var finishes = new ConcurrentDictionary<string, int>();
        var violations = new ConcurrentQueue<string>();
        var done = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        // An exception escaping a raw thread would kill the test host (and every later test): each thread keeps
        // its own here, stops the others, and the test thread asserts on them after the join.
        var crashes = new ConcurrentQueue<Exception>();
        ThreadStart Guarded(Action body) => () =>
        {
            try { body(); }
            catch (Exception e) { crashes.Enqueue(e); stop.Cancel(); }
        };

        // A sampler reads the database's own view of running tasks throughout the run.
        var sampler = new Thread(Guarded(() =>
        {
            using var reader = OpenAnother(q);
            while (Volatile.Read(ref done) < submissions.Count && !stop.IsCancellationRequested)
            {
                foreach (var g in reader.List(new TaskFilter { Statuses = [TaskState.Running] }).GroupBy(t => t.User!))
                    if (limits.TryGetValue(g.Key, out var max) && g.Count() > max) violations.Enqueue($"database shows {g.Count()} running for {g.Key} (max {max})");
                Thread.Sleep(5);
            }
        }));
        sampler.Start();

        var workers = Enumerable.Range(0, 8).Select(_ => new Thread(Guarded(() =>
        {
            using var mine = OpenAnother(q);
            while (Volatile.Read(ref done) < submissions.Count && !stop.IsCancellationRequested)
            {
                var batch = mine.PollMulti(3, TimeSpan.FromMinutes(5));
                if (batch.Count == 0) { Thread.Sleep(2); continue; }
                foreach (var t in batch)
                {
                    var now = holding.AddOrUpdate(t.User!, 1, (_, n) => n + 1);
                    if (limits.TryGetValue(t.User!, out var max) && now > max) violations.Enqueue($"{now} held for {t.User} (max {max})");
                }
                Thread.Sleep(1);
                foreach (var t in batch)
                {
                    holding.AddOrUpdate(t.User!, 0, (_, n) => n - 1);
                    t.Finish();
                    finishes.AddOrUpdate(t.Key, 1, (_, n) => n + 1);
                    Interlocked.Increment(ref done);
                }
            }
        }))).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        sampler.Join();

        Assert.True(crashes.IsEmpty, "a test thread failed: " + string.Join("\n", crashes));
        Assert.False(stop.IsCancellationRequested, "the workers did not drain the queue in time");
        Assert.Empty(violations);
        Assert.Equal(submissions.Count, finishes.Count);
        Assert.All(finishes.Values, n => Assert.Equal(1, n));
        Assert.All(q.List(), t => Assert.Equal(TaskOutcome.Succeeded, t.Outcome));
    }

    // ---- listing and status ----

    [BackendFact]
    public void Every_status_is_listed_by_its_filter_exactly_as_the_task_reads()
    {
        var q = Open(c => c.RetryWait = TimeSpan.FromHours(1));
        q.Submit("scheduled", "t1", options: new SubmitOptions { Delay = TimeSpan.FromHours(1) });
        q.Submit("waiting", "t1", options: new SubmitOptions { User = "alice" });
        q.Submit("running", "t2");
        q.Submit("cancel-requested", "t2");
        q.Submit("finished", "t2");
        q.Submit("retried", "t1");
        var held = q.PollMulti(10).ToDictionary(t => t.Key);
        held["waiting"].Release();
        held["finished"].Finish();
        held["retried"].Retry("later");
        q["cancel-requested"].CancelRequest();

        var expected = new Dictionary<string, TaskState>
        {
            ["scheduled"] = TaskState.Scheduled, ["waiting"] = TaskState.Waiting, ["running"] = TaskState.Running,
            ["cancel-requested"] = TaskState.CancelRequested, ["finished"] = TaskState.Finished, ["retried"] = TaskState.Scheduled,
        };
        foreach (var (key, status) in expected) Assert.Equal(status, StatusOf(q, key));
        foreach (var status in Enum.GetValues<TaskState>())
        {
            var listed = q.List(new TaskFilter { Statuses = [status] }).Select(t => t.Key).Order().ToArray();
            Assert.Equal(expected.Where(e => e.Value == status).Select(e => e.Key).Order().ToArray(), listed);
        }
        Assert.Equal(["waiting"], q.List(new TaskFilter { Users = ["alice"] }).Select(t => t.Key).ToArray());
        Assert.Equal(3, q.List(new TaskFilter { Types = ["t1"] }).Count);
        Assert.Equal(["scheduled", "waiting"], q.List(new TaskFilter { First = 2 }).Select(t => t.Key).ToArray());
        Assert.Equal(["running"], q.List(new TaskFilter { Keys = ["running", "missing"] }).Select(t => t.Key).ToArray());
    }

    [BackendFact]
    public void The_summary_counts_tasks_per_status_type_and_user_and_ages_the_oldest_waiting()
    {
        var q = Open(c => c.RetryWait = TimeSpan.FromHours(1));
        Assert.Equal(0, q.Summarize().Total);
        Assert.Null(q.Summarize().OldestWaitingAge);
        var now = q.Now();
        q.Submit("old", "backup", options: new SubmitOptions { User = "a", RunAt = now.AddMinutes(-10) });
        q.Submit("w2", "backup", options: new SubmitOptions { User = "a" });
        q.Submit("w3", "report");
        q.Submit("later", "report", options: new SubmitOptions { Delay = TimeSpan.FromHours(1) });
        q.Submit("run", "report", options: new SubmitOptions { RunAt = now.AddMinutes(-20) });
        q.Submit("done", "backup", options: new SubmitOptions { RunAt = now.AddMinutes(-30) });
        var held = q.PollMulti(2).ToDictionary(t => t.Key);   // "done" and "run": the two oldest
        held["done"].Finish();

        var summary = q.Summarize();
        Assert.Equal(6, summary.Total);
        Assert.Equal(3, summary.CountOf(TaskState.Waiting));
        Assert.Equal(1, summary.CountOf(TaskState.Scheduled));
        Assert.Equal(1, summary.CountOf(TaskState.Running));
        Assert.Equal(1, summary.CountOf(TaskState.Finished));
        Assert.Equal(2, summary.Counts.Single(c => c.State == TaskState.Waiting && c.Type == "backup" && c.User == "a").Count);
        Assert.InRange(summary.OldestWaitingAge!.Value.TotalMinutes, 9.9, 11);
        Assert.Contains(q.Config.Table, summary.Queue);
    }

    [BackendFact]
    public void Task_info_shows_what_was_submitted()
    {
        var q = Open();
        var before = q.Now();
        q.Submit("k", "report", new { db = "sales" }, new SubmitOptions { User = "team-a", MaxRunning = 4, Delay = TimeSpan.FromMinutes(10) });
        var info = q["k"].GetInfo();
        Assert.Equal("report", info.Type);
        Assert.Equal("team-a", info.User);
        Assert.Equal(4, info.MaxRunning);
        Assert.Equal("sales", (string)info.Data["db"]!);
        Assert.InRange(info.CreatedAt, before.AddSeconds(-1), before.AddSeconds(5));
        Assert.InRange(info.Timeout!.Value, before.AddMinutes(10).AddSeconds(-1), before.AddMinutes(10).AddSeconds(5));
        Assert.True(q["k"].Exists());
    }

    // ---- cleanup ----

    [BackendFact]
    public void Cleanup_deletes_only_finished_rows_past_their_retention()
    {
        var q = Open(c => { c.RetentionTime = TimeSpan.FromMilliseconds(300); c.CleanupInterval = TimeSpan.Zero; });
        var keep = OpenAnother(q, c => c.RetentionTime = TimeSpan.FromHours(1));
        q.Submit("expired", "t");
        keep.Submit("retained", "t");
        q.Submit("waiting", "t");
        q.Submit("scheduled", "t", options: new SubmitOptions { Delay = TimeSpan.FromHours(1) });
        q.Submit("running", "t");
        var held = q.PollMulti(3, TimeSpan.FromHours(1)).ToDictionary(t => t.Key);
        held["expired"].Finish();
        keep.Poll()!.Finish(); // "waiting" stays: release it below
        held["waiting"].Release();
        Eventually.True(() => !q["expired"].Exists(), "the short retention to end");

        Assert.Equal(1, q.Cleanup());
        Assert.Equal(0, q.Cleanup());
        var left = q.List().Select(t => t.Key).Order().ToArray();
        Assert.Equal(["retained", "running", "scheduled", "waiting"], left);
    }

    [BackendFact]
    public void Polling_cleans_up_by_itself_every_cleanup_interval()
    {
        var q = Open(c => { c.RetentionTime = TimeSpan.Zero; c.CleanupInterval = TimeSpan.FromMilliseconds(50); });
        for (var i = 0; i < 5; i++) q.Submit($"k{i}", "t");
        foreach (var t in q.PollMulti(5)) t.Finish();
        var hook = new StoreHook(q);
        Assert.Equal(5, hook.RowCount());
        Eventually.True(() => { q.Poll(); return hook.RowCount() == 0; }, "a poll to run cleanup");
    }

    // ---- schema and configuration ----

    [BackendFact]
    public void Invalid_table_names_are_refused()
    {
        foreach (var table in new[] { "bad name", "tasks; DROP TABLE x", "1tasks", "t\"x", "", "a-b", new string('t', 51) })
        {
            var config = Target.NewConfig();
            config.Table = table;
            var e = Assert.Throws<ConfigException>(() => Queue.Open(config));
            Assert.Equal("table", e.ConfigKey);
            Assert.Contains("letters, digits or underscores", e.Message);
        }
    }

    [BackendFact]
    public void A_missing_table_gives_an_error_that_says_how_to_create_it()
    {
        var config = Target.NewConfig();
        config.AutoInitialize = false;
        using var q = Queue.Open(config);
        Assert.False(q.IsInitialized());
        var e = Assert.Throws<QueueNotInitializedException>(() => q.Submit("k", "t"));
        Assert.Contains("Initialize-PQQueue", e.Message);
        Assert.Contains(config.Table, e.Message);
        Assert.Throws<QueueNotInitializedException>(() => q.Poll());
        Assert.Throws<QueueNotInitializedException>(() => q.List());
        q.Initialize();
        Assert.True(q.IsInitialized());
        q.Submit("k", "t");
        Assert.True(q["k"].Exists());
    }

    [BackendFact]
    public void Initialize_is_idempotent_and_force_drops_every_task()
    {
        var q = Open();
        q.Submit("k", "t");
        q.Initialize();
        Assert.True(q["k"].Exists());
        q.Initialize(force: true);
        Assert.False(q["k"].Exists());
        Assert.Empty(q.List());
        q.Submit("k", "t");
    }

    [BackendFact]
    public void The_database_clock_is_used_and_readable()
    {
        var q = Open();
        var now = q.Now();
        Assert.InRange(now, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5));
        Assert.True(q.Now() >= now);
    }
}

/// <summary>Test-only access to the raw store (row counts, moving a due time) for checks the public API cannot make.</summary>
internal sealed class StoreHook(Queue queue)
{
    public int RowCount() => Scalar($"SELECT COUNT(*) FROM \"{queue.Config.Table}\"");

    public void MakeDue(string key) => Scalar($"UPDATE \"{queue.Config.Table}\" SET due_at = 0 WHERE task_key = '{key.Replace("'", "''")}'");

    /// <summary>Runs raw SQL (names quoted with double quotes, which every backend accepts); returns the first value as a number, 0 if none.</summary>
    public int Sql(string sql) => Scalar(sql);

    private int Scalar(string sql)
    {
        using var c = TestTargets.Connect(queue);
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt32(cmd.ExecuteScalar() ?? 0);
    }
}
