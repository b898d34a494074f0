using System.Collections;
using PerfectQueue.Workers;
using Xunit;

namespace PerfectQueue.Tests.Schedules;

/// <summary>The config keys of schedules: fire_schedules reaches the worker's options, notice_type is checked.</summary>
public sealed class ScheduleConfigTests
{
    [Fact]
    public void Fire_schedules_false_reaches_the_worker_options_and_is_on_by_default()
    {
        Assert.True(WorkerOptions.From(new QueueConfig()).FireSchedules);
        var off = QueueConfig.FromDictionary(new Hashtable { ["fire_schedules"] = false });
        Assert.False(WorkerOptions.From(off).FireSchedules);
        Assert.False(WorkerOptions.From(off).Clone().FireSchedules);
    }

    [Fact]
    public void Notice_type_defaults_to_pq_notice_an_empty_value_turns_notices_off_and_a_bad_one_names_the_key()
    {
        Assert.Equal("pq.notice", new QueueConfig().NoticeType);
        var off = QueueConfig.FromDictionary(new Hashtable { ["notice_type"] = "" });
        Assert.Equal("", off.NoticeType);
        off.Validate();
        var e = Assert.Throws<ConfigException>(() => QueueConfig.FromDictionary(new Hashtable { ["notice_type"] = "bad\ttype" }));
        Assert.Equal("notice_type", e.ConfigKey);
    }
}
