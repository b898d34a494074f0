using System.Text.RegularExpressions;
using PerfectQueue.Application;
using PerfectQueue.Tests.Conformance;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Workers;

public sealed class Greet : Base
{
    public override void Run() => Result = $"hello {(string?)Data["name"]} ({CurrentTask.Type})";
}

public sealed class Fail : Base
{
    public override Task RunAsync(CancellationToken cancellationToken) => throw new InvalidOperationException("no space left");
}

public sealed class FinishesItself : Base
{
    public override Task RunAsync(CancellationToken cancellationToken) => CurrentTask.FinishAsync(TaskOutcome.Failed, "gave up", cancellationToken);
}

public sealed class IgnoresStop : Base
{
    // Long enough to outlast the test, short enough to give its pool thread back afterwards.
    public override void Run() => Thread.Sleep(TimeSpan.FromSeconds(20));
}

public sealed class TestDispatch : Dispatch
{
    public TestDispatch()
    {
        Route<Greet>("greet");
        Route<Greet>(new Regex("^greet-"));
        Route<Fail>("fail");
        Route<FinishesItself>("self");
        Route<IgnoresStop>("stuck");
    }
}

public sealed class RouteTableTests
{
    [Fact]
    public void Exact_routes_win_then_patterns_in_the_order_added()
    {
        var routes = new RouteTable<string>();
        routes.Add(new Regex("^re"), "first pattern");
        routes.Add("report", "exact");
        routes.Add(new Regex("port$"), "second pattern");
        Assert.True(routes.TryFind("report", out var h) && h == "exact");
        Assert.True(routes.TryFind("reimport", out h) && h == "first pattern");
        Assert.True(routes.TryFind("export", out h) && h == "second pattern");
        Assert.False(routes.TryFind("REPORT", out _)); // case-sensitive, like the original
        Assert.Equal(["/^re/", "report", "/port$/"], routes.Names);
    }

    [Fact]
    public void An_exact_type_routed_twice_or_an_empty_type_is_refused()
    {
        var routes = new RouteTable<int>();
        routes.Add("a", 1);
        Assert.Contains("routed twice", Assert.Throws<ArgumentException>(() => routes.Add("a", 2)).Message);
        Assert.Throws<ArgumentException>(() => routes.Add(" ", 3));
    }

    private sealed class BadDispatch : Dispatch
    {
        public BadDispatch() => Route("x", typeof(string));
    }

    [Fact]
    public void A_dispatch_refuses_a_handler_type_that_is_not_a_Base()
    {
        var e = Assert.Throws<ArgumentException>(() => new BadDispatch());
        Assert.Contains("PerfectQueue.Application.Base", e.Message);
    }
}

public sealed class CompiledHandlerTests(SqliteTarget sqlite) : IClassFixture<SqliteTarget>
{
    private Queue Open()
    {
        var q = Queue.Open(sqlite.NewConfig());
        q.Initialize();
        return q;
    }

    private static WorkerOptions Fast(int processors) => new()
    {
        Processors = processors, PollInterval = TimeSpan.FromMilliseconds(50), AliveTime = TimeSpan.FromSeconds(30),
        HeartbeatInterval = TimeSpan.FromMilliseconds(100), UntilEmpty = true,
    };

    [Fact]
    public async Task A_dispatch_routes_each_task_to_a_new_handler_and_the_worker_concludes_as_for_any_processor()
    {
        using var q = Open();
        var dispatch = new TestDispatch();
        q.SubmitMany(Enumerable.Range(0, 20).Select(i => new TaskSubmission($"g{i}", i % 2 == 0 ? "greet" : "greet-loud", new { name = $"n{i}" })));
        q.Submit("f", "fail");
        q.Submit("s", "self");
        q.Submit("u", "unrouted");

        var summary = await new Worker(q, Fast(4), _ => new CompiledProcessor(dispatch)).RunAsync(default, default);

        Assert.Equal(20, summary.Succeeded);
        Assert.Equal(2, summary.Retried);  // the throw, and the type with no route
        Assert.Equal(1, summary.Failed);   // the handler finished it itself
        Assert.Equal("hello n3 (greet-loud)", q["g3"].GetInfo().Message);
        Assert.Contains("no space left", q["f"].GetInfo().Message);
        Assert.Equal("gave up", q["s"].GetInfo().Message);
        Assert.Contains("No handler is routed for task type 'unrouted'", q["u"].GetInfo().Message);
    }

    [Fact]
    public async Task An_immediate_stop_abandons_a_handler_that_ignores_its_token_and_releases_the_task()
    {
        using var q = Open();
        q.Submit("stuck", "stuck");
        using var immediate = new CancellationTokenSource();
        var worker = new Worker(q, Fast(1), _ => new CompiledProcessor(new TestDispatch()));
        var run = worker.RunAsync(default, immediate.Token);
        while (q["stuck"].GetInfo().Status != TaskState.Running) await Task.Delay(20);
        immediate.Cancel();
        var summary = await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, summary.Released);
        var info = q["stuck"].GetInfo();
        Assert.Equal(TaskState.Waiting, info.Status);
        Assert.Equal(0, info.Attempts);
    }
}
