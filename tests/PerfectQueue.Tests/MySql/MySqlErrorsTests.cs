using PerfectQueue.Storage.MySql;
using PerfectQueue.Storage;
using Xunit;

namespace PerfectQueue.Tests.MySql;

/// <summary>MySQL/MariaDB errors are classified by number alone, without a server.</summary>
public sealed class MySqlErrorsTests
{
    [Theory]
    [InlineData(1213)] // deadlock victim: the server rolled the transaction back
    [InlineData(1205)] // lock wait timeout: the statement was rolled back
    [InlineData(1040)] // too many connections: nothing was done
    public void Errors_after_which_nothing_was_done_are_retried_even_for_writes_that_must_not_run_twice(int number)
    {
        Assert.True(MySqlErrors.ShouldRetry(number, connectionOpened: true, RetrySafety.BeforeSent));
        Assert.True(MySqlErrors.ShouldRetry(number, connectionOpened: true, RetrySafety.Always));
    }

    [Theory]
    [InlineData(2006)] // server has gone away
    [InlineData(2013)] // lost connection during query
    [InlineData(1927)] // connection killed (MariaDB)
    [InlineData(1053)] // server shutdown in progress
    [InlineData(1042)] // unable to connect to any of the hosts
    public void A_lost_connection_is_retried_before_anything_was_sent_or_when_running_again_is_safe(int number)
    {
        Assert.True(MySqlErrors.IsConnectionError(number));
        Assert.True(MySqlErrors.ShouldRetry(number, connectionOpened: false, RetrySafety.BeforeSent));
        Assert.True(MySqlErrors.ShouldRetry(number, connectionOpened: true, RetrySafety.Always));
        // The write may have committed: a second try could report the caller's own task as a duplicate.
        Assert.False(MySqlErrors.ShouldRetry(number, connectionOpened: true, RetrySafety.BeforeSent));
    }

    [Theory]
    [InlineData(1062)] // duplicate key
    [InlineData(1146)] // no such table
    [InlineData(1064)] // syntax error
    [InlineData(1366)] // incorrect string value
    [InlineData(1406)] // data too long
    [InlineData(1142)] // command denied
    public void Errors_that_the_same_statement_would_meet_again_are_never_retried(int number)
    {
        Assert.False(MySqlErrors.ShouldRetry(number, connectionOpened: true, RetrySafety.Always));
        Assert.False(MySqlErrors.ShouldRetry(number, connectionOpened: false, RetrySafety.Always));
    }

    [Theory]
    [InlineData(1366, true)]
    [InlineData(1406, true)]
    [InlineData(1300, true)]
    [InlineData(1264, true)]
    [InlineData(1062, false)]
    [InlineData(1213, false)]
    [InlineData(2013, false)]
    public void Value_errors_are_the_strict_mode_errors_of_a_value_that_does_not_fit(int number, bool isValue) =>
        Assert.Equal(isValue, MySqlErrors.IsValueError(number));

    [Fact]
    public void Duplicate_keys_and_missing_tables_are_told_by_their_numbers()
    {
        Assert.True(MySqlErrors.IsDuplicateKey(1062));
        Assert.False(MySqlErrors.IsDuplicateKey(1586)); // duplicate entry for a foreign key: not ours
        Assert.True(MySqlErrors.IsMissingTable(1146));
        Assert.False(MySqlErrors.IsMissingTable(1051)); // unknown table in DROP
    }

    [Fact]
    public void A_broken_transport_is_a_broken_connection_and_is_retried_only_when_safe()
    {
        var broken = new IOException("Connection reset by peer");
        Assert.True(MySqlErrors.IsBrokenConnection(broken));
        Assert.True(MySqlErrors.ShouldRetry(broken, connectionOpened: true, RetrySafety.Always));
        Assert.False(MySqlErrors.ShouldRetry(broken, connectionOpened: true, RetrySafety.BeforeSent));
        Assert.True(MySqlErrors.ShouldRetry(new TimeoutException(), connectionOpened: false, RetrySafety.BeforeSent));
        Assert.False(MySqlErrors.ShouldRetry(new TimeoutException(), connectionOpened: true, RetrySafety.Always));
        Assert.False(MySqlErrors.ShouldRetry(new InvalidOperationException(), connectionOpened: false, RetrySafety.Always));
    }
}
