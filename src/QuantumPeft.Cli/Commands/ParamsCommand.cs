using System.CommandLine;
using QuantumPeft.Tuners;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft params --paper --out DIR</c>: trainable-parameter tables of the paper's models (params.csv, params.md).</summary>
public sealed class ParamsCommand : ICliCommand
{
    public Command Build()
    {
        var paper = new Option<bool>("--paper") { Description = "Tables for DeBERTaV3-base, GPT-2 Medium, ViT-B/16 and Mistral-7B (shapes only, no weights)." };
        var output = new Option<string>("--out") { Description = "Output folder for params.csv and params.md.", DefaultValueFactory = _ => "out/params" };
        var cmd = new Command("params", "Count trainable parameters of LoRA and Quantum-PEFT on the paper's models.");
        cmd.Options.Add(paper);
        cmd.Options.Add(output);
        cmd.SetAction(parse =>
        {
            if (!parse.GetValue(paper))
                throw new ArgumentException("Give --paper (the tables of the paper's four models); per-model counts of a loaded model come with the training command's report.");
            var dir = parse.GetValue(output)!;
            Directory.CreateDirectory(dir);
            var rows = ParameterTable.PaperRows();
            QuantumPeft.Formats.AtomicFile.WriteAllText(Path.Combine(dir, "params.csv"), ParameterTable.ToCsv(rows));
            QuantumPeft.Formats.AtomicFile.WriteAllText(Path.Combine(dir, "params.md"), ParameterTable.ToMarkdown(rows));
            foreach (var r in rows.Where(r => r.Rank == 4 && r.Layers is null or 1))
                Console.WriteLine($"{r.Model,-22} {r.Method,-15} K/r={r.Rank} {(r.Layers is { } l ? $"L={l}" : "   "),-4} {r.TrainableParams,12:N0}  ({r.RatioToLora:F1}x fewer than LoRA)");
            Console.WriteLine($"wrote {Path.Combine(dir, "params.csv")} and params.md ({rows.Count} rows)");
            return 0;
        });
        return cmd;
    }
}
