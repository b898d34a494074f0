using System.Management.Automation;

namespace PerfectQueue.PowerShell.Commands;

/// <summary>The scopes named by -Type and -User of Suspend-PQQueue and Resume-PQQueue: every combination, checked before anything changes.</summary>
internal static class PauseScopes
{
    /// <summary>Each type with each user; none of either stands for any. Throws ArgumentException for a name no task could have.</summary>
    public static List<(string? Type, string? User)> Combine(string[]? types, string[]? users)
    {
        var ts = types is { Length: > 0 } ? types.Select(t => string.IsNullOrEmpty(t) ? null : t).Distinct().ToArray() : [null];
        var us = users is { Length: > 0 } ? users.Select(u => string.IsNullOrEmpty(u) ? null : u).Distinct().ToArray() : [null];
        var scopes = ts.SelectMany(t => us.Select(u => (t, u))).ToList();
        foreach (var (t, u) in scopes) Queue.CheckPauseScope(t, u);
        return scopes;
    }

    /// <summary><see cref="Combine"/>, with a bad scope as <paramref name="cmdlet"/>'s terminating InvalidArgument error, before anything was changed.</summary>
    public static List<(string? Type, string? User)> CombineOrStop(PSCmdlet cmdlet, string[]? types, string[]? users)
    {
        try { return Combine(types, users); }
        catch (ArgumentException e)
        {
            cmdlet.ThrowTerminatingError(PQErrors.InvalidArgumentError(e, types ?? users));
            throw; // not reached: ThrowTerminatingError throws
        }
    }
}
