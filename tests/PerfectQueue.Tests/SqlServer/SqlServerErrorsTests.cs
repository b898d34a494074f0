using PerfectQueue.Storage;
using PerfectQueue.Storage.SqlServer;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

public sealed class SqlServerErrorsTests
{
    [Theory]
    [InlineData(2627)]
    [InlineData(2601)]
    public void Duplicate_keys_are_told_by_number(int number)
    {
        Assert.True(SqlServerErrors.IsDuplicateKey([number]));
        Assert.True(SqlServerErrors.IsDuplicateKey([number, 3621])); // with "The statement has been terminated."
        Assert.False(SqlServerErrors.ShouldRetry([number], connectionOpened: true, connectionBroken: false, RetrySafety.Always));
    }

    [Theory]
    [InlineData(547)]   // foreign key / check constraint
    [InlineData(8152)]  // string or binary data would be truncated
    [InlineData(2628)]
    [InlineData(18456)] // login failed
    [InlineData(50000)]
    public void Other_errors_are_neither_duplicates_nor_retried(int number)
    {
        Assert.False(SqlServerErrors.IsDuplicateKey([number]));
        Assert.False(SqlServerErrors.IsMissingTable([number]));
        foreach (var safety in Enum.GetValues<RetrySafety>())
        {
            Assert.False(SqlServerErrors.ShouldRetry([number], connectionOpened: true, connectionBroken: false, safety));
            Assert.False(SqlServerErrors.ShouldRetry([number], connectionOpened: false, connectionBroken: false, safety));
        }
    }

    [Fact]
    public void A_deadlock_victim_is_retried_whatever_the_operation_because_the_server_rolled_it_back()
    {
        foreach (var safety in Enum.GetValues<RetrySafety>())
        {
            Assert.True(SqlServerErrors.ShouldRetry([1205], connectionOpened: true, connectionBroken: false, safety));
            Assert.True(SqlServerErrors.ShouldRetry([1205], connectionOpened: false, connectionBroken: false, safety));
        }
        Assert.True(SqlServerErrors.IsRolledBackByServer([1205]));
    }

    [Theory]
    [InlineData(-2)]    // command timeout
    [InlineData(20)]
    [InlineData(64)]
    [InlineData(233)]
    [InlineData(4060)]
    [InlineData(4221)]
    [InlineData(10053)]
    [InlineData(10054)]
    [InlineData(10060)]
    [InlineData(10928)]
    [InlineData(10929)]
    [InlineData(40197)]
    [InlineData(40501)]
    [InlineData(40613)]
    [InlineData(49918)]
    [InlineData(49919)]
    [InlineData(49920)]
    public void Transient_errors_are_retried_only_where_a_second_run_is_safe(int number)
    {
        Assert.True(SqlServerErrors.IsTransient(number, connectionBroken: false));
        // Before the connection opened nothing was sent: any operation may run again.
        Assert.True(SqlServerErrors.ShouldRetry([number], connectionOpened: false, connectionBroken: false, RetrySafety.BeforeSent));
        Assert.True(SqlServerErrors.ShouldRetry([number], connectionOpened: false, connectionBroken: false, RetrySafety.Always));
        // After it, the work may have committed: only operations that are safe to repeat run again.
        Assert.True(SqlServerErrors.ShouldRetry([number], connectionOpened: true, connectionBroken: false, RetrySafety.Always));
        Assert.False(SqlServerErrors.ShouldRetry([number], connectionOpened: true, connectionBroken: false, RetrySafety.BeforeSent));
    }

    [Fact]
    public void Number_zero_is_transient_only_when_the_connection_broke()
    {
        Assert.False(SqlServerErrors.IsTransient(0, connectionBroken: false));
        Assert.True(SqlServerErrors.IsTransient(0, connectionBroken: true));
        Assert.False(SqlServerErrors.ShouldRetry([0], connectionOpened: true, connectionBroken: false, RetrySafety.Always));
        Assert.True(SqlServerErrors.ShouldRetry([0], connectionOpened: true, connectionBroken: true, RetrySafety.Always));
        Assert.False(SqlServerErrors.ShouldRetry([0], connectionOpened: true, connectionBroken: true, RetrySafety.BeforeSent));
    }

    [Fact]
    public void A_missing_table_is_error_208_and_is_not_retried()
    {
        Assert.True(SqlServerErrors.IsMissingTable([208]));
        Assert.False(SqlServerErrors.IsMissingTable([207])); // invalid column name
        Assert.False(SqlServerErrors.ShouldRetry([208], connectionOpened: true, connectionBroken: false, RetrySafety.Always));
    }

    [Fact]
    public void The_adapter_retries_only_timeouts_before_the_connection_opened_for_non_sql_errors()
    {
        Assert.True(SqlServerErrors.ShouldRetry(new TimeoutException(), connectionOpened: false, RetrySafety.BeforeSent));
        Assert.False(SqlServerErrors.ShouldRetry(new TimeoutException(), connectionOpened: true, RetrySafety.Always));
        Assert.False(SqlServerErrors.ShouldRetry(new InvalidOperationException(), connectionOpened: false, RetrySafety.Always));
    }
}
