using System.CommandLine;
using System.Reflection;
using QuantumPeft.Cli;

QuantumPeft.Native.TorchNative.EnsureLoadable();

var groups = new Dictionary<string, string>
{
    ["bench"] = "Benchmarks that write CSV and Markdown tables (not tests).",
};

var root = new RootCommand("qpeft: ultra parameter-efficient fine-tuning (Quantum-PEFT, LoRA) on TorchSharp.");
var commands = typeof(ICliCommand).Assembly.GetTypes()
    .Where(t => typeof(ICliCommand).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
    .Select(t => (ICliCommand)Activator.CreateInstance(t)!)
    .OrderBy(c => c.Parent ?? "").ToList();
foreach (var c in commands)
{
    var cmd = c.Build();
    if (c.Parent is null) { root.Subcommands.Add(cmd); continue; }
    var group = root.Subcommands.FirstOrDefault(s => s.Name == c.Parent);
    if (group is null)
    {
        group = new Command(c.Parent, groups.GetValueOrDefault(c.Parent, c.Parent));
        root.Subcommands.Add(group);
    }
    group.Subcommands.Add(cmd);
}
// Recursive: `qpeft eval|merge|logits|generate|train --strict` all read it; loaders then refuse NaN or infinite weights instead of warning.
var strict = new Option<bool>("--strict") { Description = "Refuse model or adapter files holding NaN or infinite values (default: a warning naming the tensor).", Recursive = true };
root.Options.Add(strict);

// Errors become one clear line and a non-zero exit code; QPEFT_DEBUG=1 shows the stack trace.
try
{
    var parsed = root.Parse(args);
    // A value that does not parse ("--rank abc"), an unknown option or word, a missing required option: one error line
    // naming it and where the options are listed, not the usage page. A bare `qpeft` or `qpeft bench` still gets the help.
    if (parsed.Errors.Count > 0 && !(parsed.CommandResult.Command.Subcommands.Count > 0 && parsed.UnmatchedTokens.Count == 0))
    {
        var command = parsed.CommandResult.Command;
        var path = CliErrors.PathOf(parsed.CommandResult);
        // An unknown word where a command was expected: name it and the commands there are (not "Required command was not provided").
        var messages = command.Subcommands.Count > 0
            ? [$"'{parsed.UnmatchedTokens[0]}' is not a command of {path} (commands: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))})."]
            : parsed.Errors.Select(e => e.Message);
        Console.Error.WriteLine(CliErrors.OneLine(messages, path));
        return 1;
    }
    QuantumPeft.Formats.TensorChecks.Strict = parsed.GetValue(strict);
    return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    var inner = e is TargetInvocationException { InnerException: { } ie } ? ie : e;
    var message = inner is ArgumentException { ParamName: { } name } ae
        ? ae.Message.Replace($" (Parameter '{name}')", "")   // the message already names the argument
        : inner.Message;
    Console.Error.WriteLine($"error: {message}");
    if (Environment.GetEnvironmentVariable("QPEFT_DEBUG") == "1") Console.Error.WriteLine(inner);
    return 1;
}
