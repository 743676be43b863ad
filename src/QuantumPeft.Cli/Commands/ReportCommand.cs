using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft report DIR...</c>: one comparison table (Markdown and CSV) from the results.json of several train runs.</summary>
public sealed class ReportCommand : ICliCommand
{
    public Command Build()
    {
        var dirs = new Argument<string[]>("dirs") { Description = "Output folders of qpeft train runs (each holds results.json).", Arity = ArgumentArity.OneOrMore };
        var outFile = new Option<string?>("--out") { Description = "Write the table to FILE.md and FILE.csv (FILE without extension)." };
        var cmd = new Command("report", "Tabulate results.json files of several train runs (method, parameters, test metric, time).");
        cmd.Arguments.Add(dirs);
        cmd.Options.Add(outFile);
        cmd.SetAction(parse =>
        {
            var rows = parse.GetValue(dirs)!.Select(Load).ToList();
            var inv = CultureInfo.InvariantCulture;
            var md = "| method | seed | adapter params | trainable params | test metric | train time | examples/s | adapter lr |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
                + string.Concat(rows.Select(r => string.Create(inv,
                    $"| {r.Label} | {r.Seed} | {r.AdapterParams:N0} | {r.TrainableParams:N0} | {r.MetricName} {100 * r.TestMetric:F2}% | {r.TrainSeconds:F0} s | {r.ExamplesPerSecond:F1} | {(r.Lr > 0 ? r.Lr.ToString("G3", inv) : "-")} |\n")));
            var csv = "run,task,method,rank,layers,map,adapter_params,trainable_params,test_metric_name,test_metric,train_seconds,examples_per_second,lr,epochs,seed\n"
                + string.Concat(rows.Select(r => string.Create(inv,
                    $"{r.Dir},{r.Task},{r.Method},{r.Rank},{r.Layers},{r.Map},{r.AdapterParams},{r.TrainableParams},{r.MetricName},{r.TestMetric:F6},{r.TrainSeconds:F1},{r.ExamplesPerSecond:F2},{r.Lr:G6},{r.Epochs},{r.Seed}\n")));
            Console.Write(md);
            if (parse.GetValue(outFile) is { } file)
            {
                var full = Path.GetFullPath(file);
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                Formats.AtomicFile.WriteAllText(full + ".md", md);
                Formats.AtomicFile.WriteAllText(full + ".csv", csv);
                Console.WriteLine($"wrote {full}.md and {full}.csv");
            }
            return 0;
        });
        return cmd;
    }

    sealed record Row(string Dir, string Task, string Method, int Rank, int Layers, string Map, long AdapterParams, long TrainableParams,
        string MetricName, double TestMetric, double TrainSeconds, double ExamplesPerSecond, double Lr, int Epochs, long Seed)
    {
        public string Label => Method switch
        {
            "quantum" => $"Quantum-PEFT, {Map} K = {Rank}, L = {Layers}",
            "lora" => $"LoRA r = {Rank}",
            "head" => "head only",
            "full" => "full fine-tuning",
            _ => Method,
        };
    }

    static Row Load(string dir)
    {
        var path = Path.Combine(Path.GetFullPath(dir), "results.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"'{dir}' has no results.json (expected the --out folder of a finished qpeft train run).", path);
        JsonElement root;
        try { root = JsonDocument.Parse(File.ReadAllText(path)).RootElement; }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}"); }
        JsonElement Get(string key) => root.TryGetProperty(key, out var v) ? v : throw new InvalidDataException($"'{path}' has no \"{key}\" (expected a results.json written by qpeft train).");
        double Number(string key, double fallback) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
        return new Row(dir, Get("task").GetString()!, Get("method").GetString()!, (int)Number("rank", 0), (int)Number("layers", 0),
            root.TryGetProperty("map", out var m) ? m.GetString() ?? "" : "", Get("adapter_params").GetInt64(), Get("trainable_params").GetInt64(),
            Get("test_metric_name").GetString()!, Get("test_metric").GetDouble(), Get("train_seconds").GetDouble(), Number("examples_per_second", double.NaN),
            Number("lr", double.NaN), (int)Number("epochs", 0), (long)Number("seed", 0));
    }
}
