using System.Management.Automation;
using System.Net;
using System.Security;

namespace PerfectQueue.PowerShell;

/// <summary>
/// A secret parameter is a SecureString, as PowerShell's own are; plain text is taken too (read from a vault or an
/// environment variable in a script) and turned into one at once, so the cmdlet never keeps it as a string.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class SecretTransformationAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject p ? p.BaseObject : inputData;
        return value switch
        {
            null => null,
            SecureString s => s,
            string text => new NetworkCredential("", text).SecurePassword,
            PSCredential credential => credential.Password,
            _ => throw new ArgumentTransformationMetadataException("Give the secret as a SecureString (Read-Host -AsSecureString), a string, or a PSCredential."),
        };
    }

    /// <summary>The secret's text, for the one call that needs it.</summary>
    internal static string? Reveal(SecureString? secret) => secret is null ? null : new NetworkCredential("", secret).Password;
}
