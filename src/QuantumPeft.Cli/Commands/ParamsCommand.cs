using System.CommandLine;
using QuantumPeft.Tuners;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft params --paper</c> or <c>qpeft params --model DIR</c>: trainable-parameter tables (params.csv, params.md) from layer shapes alone.</summary>
public sealed class ParamsCommand : ICliCommand
{
    public Command Build()
    {
        var paper = new Option<bool>("--paper") { Description = "Tables for DeBERTaV3-base, GPT-2 Medium, ViT-B/16 and Mistral-7B (shapes only, no weights)." };
        var model = new Option<string?>("--model") { Description = "A model folder (minilm, or BERT, RoBERTa, GPT-2, LLaMA, Mistral, Qwen2): the same table from its config.json (no weights read)." };
        var targets = new Option<string>("--targets") { Description = "With --model: paper (encoders: the six matrices of the paper's DeBERTaV3 runs, as train --targets paper; decoders: query and value) or all-linear.", DefaultValueFactory = _ => "paper" };
        var output = new Option<string>("--out") { Description = "Output folder for params.csv and params.md.", DefaultValueFactory = _ => "out/params" };
        var cmd = new Command("params", "Count trainable parameters of LoRA and Quantum-PEFT on the paper's models, or on one model folder.");
        cmd.Options.Add(paper);
        cmd.Options.Add(model);
        cmd.Options.Add(targets);
        cmd.Options.Add(output);
        cmd.SetAction(parse =>
        {
            var folder = parse.GetValue(model);
            if (parse.GetValue(paper) == (folder is not null))
                throw new ArgumentException("Give either --paper (the tables of the paper's four models) or --model DIR (the table of one model folder).");
            var dir = parse.GetValue(output)!;
            Directory.CreateDirectory(dir);
            var shape = folder is null ? null : Models.Shapes.FolderShapes.FromFolder(Models.ModelResolver.Resolve(folder), parse.GetValue(targets)!);
            var rows = shape is null ? ParameterTable.PaperRows() : ParameterTable.Rows(shape);
            QuantumPeft.Formats.AtomicFile.WriteAllText(Path.Combine(dir, "params.csv"), ParameterTable.ToCsv(rows));
            QuantumPeft.Formats.AtomicFile.WriteAllText(Path.Combine(dir, "params.md"), shape is null ? ParameterTable.ToMarkdown(rows) : ParameterTable.ToMarkdown(rows, [shape]));
            foreach (var r in rows.Where(r => r.Rank == 4 && r.Layers is null or 1))
                Console.WriteLine($"{r.Model,-22} {r.Method,-15} K/r={r.Rank} {(r.Layers is { } l ? $"L={l}" : "   "),-4} {r.TrainableParams,12:N0}  ({r.RatioToLora:F1}x fewer than LoRA)");
            Console.WriteLine($"wrote {Path.Combine(dir, "params.csv")} and params.md ({rows.Count} rows)");
            return 0;
        });
        return cmd;
    }
}
