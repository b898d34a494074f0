using System.Text.RegularExpressions;

namespace PerfectQueue.Storage;

/// <summary>
/// Table names are checked against a strict pattern and then quoted; they are never taken raw. At most 50
/// characters, so that the names built from them stay within PostgreSQL's 63-byte identifier limit: index
/// names (<c>&lt;table&gt;_leased</c>), the sessions table <c>&lt;table&gt;_workers</c> (58) and its key
/// constraint (<c>&lt;table&gt;_workers_pkey</c>, 63).
/// </summary>
internal static class SqlIdentifiers
{
    private static readonly Regex Plain = new("^[A-Za-z_][A-Za-z0-9_]{0,49}$", RegexOptions.CultureInvariant);

    public static bool IsValid(string? name) => name is not null && Plain.IsMatch(name);

    /// <summary>Returns the name, or throws a <see cref="ConfigException"/> that says what a valid name is.</summary>
    public static string Require(string? name)
    {
        if (!IsValid(name))
            throw new ConfigException($"table: '{name}' is not a valid table name. Use 1-50 letters, digits or underscores, starting with a letter or underscore.", "table");
        return name!;
    }
}
