namespace PerfectQueue.Schedules;

/// <summary>Schedule names and the task keys of their fires: &lt;name&gt;@&lt;UTC fire time&gt;, such as nightly@2026-12-02T03:00:00Z.</summary>
public static class ScheduleNames
{
    /// <summary>
    /// The longest schedule name: a fire's key (name, '@', 20 characters of time) and its notice's key
    /// ("pq.notice:skipped:" before it) stay within the task key limit.
    /// </summary>
    public const int MaxLength = 200; // 18 + 200 + 21 = 239, within TaskText.MaxNameLength (256)

    /// <summary>The task key of the fire of <paramref name="name"/> at <paramref name="fireAtMs"/> (Unix ms, whole seconds).</summary>
    public static string FireKey(string name, long fireAtMs) => $"{name}@{ScheduleCron.FormatFireTime(fireAtMs)}";

    /// <summary>The task key of a fire at <paramref name="fireTime"/>.</summary>
    public static string FireKey(string name, DateTimeOffset fireTime) => FireKey(name, fireTime.ToUnixTimeMilliseconds());

    /// <summary>What is wrong with a schedule name, or null.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "A schedule needs a name, such as 'nightly-backup'.";
        if (name.Length > MaxLength) return $"The schedule name is {name.Length} characters long; the limit is {MaxLength} (its fires' task keys add the fire time). Use a shorter name.";
        foreach (var c in name)
        {
            if (c == '@') return $"The schedule name '{name}' contains '@', which separates the name from the fire time in its fires' task keys. Use another character, such as '-'.";
            if (char.IsWhiteSpace(c) || char.IsControl(c) || char.IsSurrogate(c) && !IsPairedSurrogate(name, c))
                return $"The schedule name '{Printable(name)}' contains white space or a control character. Use letters, digits and punctuation such as '-', '_' or '.'.";
        }
        return null;
    }

    private static bool IsPairedSurrogate(string name, char c) => TaskText.IsSendable(name);

    private static string Printable(string text) => new(text.Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
