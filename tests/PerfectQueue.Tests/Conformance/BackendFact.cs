using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace PerfectQueue.Tests.Conformance;

/// <summary>
/// A [Fact] of the conformance suite. It runs on every backend subclass, except that a backend whose server
/// is not available here (SQL Server on these machines) reports each test as skipped, with the reason and
/// the environment variable that would run it. See <see cref="Backends.SkipReason"/>.
/// </summary>
[XunitTestCaseDiscoverer("PerfectQueue.Tests.Conformance.BackendFactDiscoverer", "PerfectQueue.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class BackendFactAttribute : FactAttribute { }

public sealed class BackendFactDiscoverer(IMessageSink diagnostics) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions options, ITestMethod method, IAttributeInfo attribute)
    {
        var backend = method.TestClass.Class.GetCustomAttributes(typeof(BackendAttribute)).FirstOrDefault()?.GetConstructorArguments().FirstOrDefault() as string;
        var skip = backend is null ? null : Backends.SkipReason(backend);
        yield return new BackendTestCase(diagnostics, options.MethodDisplayOrDefault(), options.MethodDisplayOptionsOrDefault(), method, skip);
    }
}

public sealed class BackendTestCase : XunitTestCase
{
    private string? _skip;

    [Obsolete("For deserialization only.")]
    public BackendTestCase() { }

    public BackendTestCase(IMessageSink sink, TestMethodDisplay display, TestMethodDisplayOptions displayOptions, ITestMethod method, string? skip)
        : base(sink, display, displayOptions, method) => _skip = skip;

    protected override string? GetSkipReason(IAttributeInfo factAttribute) => _skip ?? base.GetSkipReason(factAttribute);

    public override void Serialize(IXunitSerializationInfo data)
    {
        base.Serialize(data);
        data.AddValue("BackendSkip", _skip);
    }

    public override void Deserialize(IXunitSerializationInfo data)
    {
        // Before the base: it works out the skip reason (through GetSkipReason) while deserializing.
        _skip = data.GetValue<string?>("BackendSkip");
        base.Deserialize(data);
    }
}

/// <summary>Names the backend a conformance subclass runs on.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class BackendAttribute(string name) : Attribute
{
    public string Name { get; } = name;
}

/// <summary>Where each server backend's test database comes from.</summary>
public static class Backends
{
    public const string PostgresVariable = "PQ_TEST_POSTGRES";
    public const string SqlServerVariable = "PQ_TEST_SQLSERVER";
    public const string MySqlVariable = "PQ_TEST_MYSQL";

    public static string? Postgres => Environment.GetEnvironmentVariable(PostgresVariable) is { Length: > 0 } v ? v : null;
    public static string? SqlServer => Environment.GetEnvironmentVariable(SqlServerVariable) is { Length: > 0 } v ? v : null;
    public static string? MySql => Environment.GetEnvironmentVariable(MySqlVariable) is { Length: > 0 } v ? v : null;

    /// <summary>
    /// Null when the backend's tests must run. PostgreSQL and MySQL/MariaDB are never skipped in CI: without a
    /// server the tests fail there, so a broken install step cannot hide behind skips.
    /// </summary>
    public static string? SkipReason(string backend) => backend switch
    {
        "postgresql" when Postgres is null && Environment.GetEnvironmentVariable("CI") is null =>
            $"SKIPPED: no PostgreSQL here. build.ps1 test starts a throwaway cluster when PostgreSQL is installed (apt-get install postgresql); or set {PostgresVariable}=postgresql://user:password@host:5432/database.",
        "mysql" when MySql is null && Environment.GetEnvironmentVariable("CI") is null =>
            $"SKIPPED: no MySQL/MariaDB here. build.ps1 test starts a throwaway MariaDB when it is installed (apt-get install mariadb-server); or set {MySqlVariable}=mysql://user:password@host:3306/database.",
        "sqlserver" when SqlServer is null =>
            $"SKIPPED: no SQL Server on this machine. Set {SqlServerVariable} to a connection string or sqlserver:// URL of a database you may create tables in to run the suite against SQL Server.",
        _ => null,
    };
}
