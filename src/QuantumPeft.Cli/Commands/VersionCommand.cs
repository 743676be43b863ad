using System.CommandLine;
using TorchSharp;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft version</c>: library, TorchSharp and device information.</summary>
public sealed class VersionCommand : ICliCommand
{
    public Command Build()
    {
        var cmd = new Command("version", "Print versions and the devices TorchSharp can use.");
        cmd.SetAction(_ =>
        {
            Console.WriteLine($"qpeft {typeof(VersionCommand).Assembly.GetName().Version}");
            Console.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version}");
            Console.WriteLine($"cuda available: {torch.cuda.is_available()}");
            return 0;
        });
        return cmd;
    }
}
