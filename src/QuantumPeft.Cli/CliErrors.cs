using System.Text.RegularExpressions;

namespace QuantumPeft.Cli;

/// <summary>Parse errors in words a user reads: System.CommandLine names the expected type as .NET spells it.</summary>
public static partial class CliErrors
{
    /// <summary>"Cannot parse argument 'abc' for option '--rank' as expected type 'System.Nullable`1[System.Int32]'." -> "... expected an integer."</summary>
    public static string Readable(string message) => TypeName().Replace(message, m => m.Groups[1].Value switch
    {
        "System.Int32" or "System.Int64" => ": expected an integer.",
        "System.Double" or "System.Single" => ": expected a number.",
        "System.Boolean" => ": expected true or false.",
        var other => $": expected a value of type {other}.",
    });

    [GeneratedRegex(@" as expected type '(?:System\.Nullable`1\[)?([\w.]+)\]?'\.")]
    private static partial Regex TypeName();
}
