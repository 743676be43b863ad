using System.CommandLine;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Tuners;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft inspect DIR</c>: what an adapter folder holds (config, tensors, shapes, counts), read without a model.</summary>
public sealed class InspectCommand : ICliCommand
{
    public Command Build()
    {
        var dir = new Argument<string>("dir") { Description = "An adapter folder (adapter_config.json + adapter_model.safetensors)." };
        var cmd = new Command("inspect", "Show what an adapter folder holds.");
        cmd.Arguments.Add(dir);
        cmd.SetAction(parse =>
        {
            var folder = Path.GetFullPath(parse.GetValue(dir)!);
            if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"adapter folder not found: '{folder}'.");
            var configPath = Path.Combine(folder, "adapter_config.json");
            var weightsPath = Path.Combine(folder, "adapter_model.safetensors");
            if (!File.Exists(configPath)) throw new FileNotFoundException($"'{folder}' has no adapter_config.json (expected an adapter folder in peft's layout).", configPath);
            var warnings = new List<string>();
            var config = PeftConfig.Load(configPath, warnings);
            foreach (var w in warnings) Console.Error.WriteLine($"warning: {w}");
            var header = SafetensorsFile.ReadHeader(weightsPath);

            Console.WriteLine($"adapter: {folder}");
            Console.WriteLine($"peft_type: {config.PeftType}");
            Console.WriteLine($"base_model_name_or_path: {config.BaseModelNameOrPath ?? "(none)"}");
            foreach (var (k, v) in header.Metadata.Where(kv => kv.Key == "format")) Console.WriteLine($"metadata {k}: {v}");
            Console.WriteLine();
            Console.WriteLine("| tensor | dtype | shape | numbers |");
            Console.WriteLine("|---|---|---|---:|");
            long total = 0;
            foreach (var e in header.Entries.OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                long n = e.Shape.Aggregate(1L, (a, b) => a * b);
                total += n;
                Console.WriteLine($"| {e.Name} | {e.DType} | [{string.Join(", ", e.Shape)}] | {n:N0} |");
            }
            Console.WriteLine();
            Console.WriteLine($"{header.Entries.Count} tensors, {total:N0} numbers, {new FileInfo(weightsPath).Length:N0} bytes");
            return 0;
        });
        return cmd;
    }
}
