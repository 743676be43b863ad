using System.CommandLine;
using QuantumPeft.Tuners.Quantum;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft export-lora --adapter DIR --out DIR2</c>: a Quantum-PEFT adapter as the exactly equivalent LoRA adapter.</summary>
public sealed class ExportLoraCommand : ICliCommand
{
    public Command Build()
    {
        var adapter = new Option<string>("--adapter") { Description = "Quantum-PEFT adapter folder (adapter_config.json + adapter_model.safetensors).", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the LoRA adapter.", Required = true };
        var cmd = new Command("export-lora", "Export a Quantum-PEFT adapter as a LoRA adapter (B = s U diag(lambda), A = V^T, scaling 1) that peft can load.");
        cmd.Options.Add(adapter);
        cmd.Options.Add(output);
        cmd.SetAction(parse =>
        {
            var r = LoraExport.Export(parse.GetValue(adapter)!, parse.GetValue(output)!);
            Console.WriteLine($"wrote LoRA adapter to {r.Directory}: {r.Modules} modules, r = {r.Rank}, {r.LoraParams:N0} LoRA numbers (from {r.QuantumParams:N0} Quantum-PEFT numbers)");
            return 0;
        });
        return cmd;
    }
}
