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

    /// <summary>Every parse error of one command line as one <c>error:</c> line that says where the options are listed.</summary>
    public static string OneLine(IEnumerable<string> messages, string commandPath)
    {
        var text = string.Join(" ", messages.Select(m => Readable(m.Trim())).Select(m => m.EndsWith('.') ? m : m + ".").Distinct());
        return $"error: {text} ('{commandPath} --help' lists the options.)";
    }

    /// <summary>The command's words from the root, e.g. "qpeft data show".</summary>
    public static string PathOf(System.CommandLine.Parsing.CommandResult result)
    {
        var names = new List<string>();
        for (System.CommandLine.Parsing.SymbolResult? s = result; s is System.CommandLine.Parsing.CommandResult c; s = c.Parent)
            names.Insert(0, c.Parent is null ? "qpeft" : c.Command.Name);
        return string.Join(' ', names);
    }

    [GeneratedRegex(@" as expected type '(?:System\.Nullable`1\[)?([\w.]+)\]?'\.")]
    private static partial Regex TypeName();
}
