using System.CommandLine;
using System.Globalization;
using System.Text;
using QuantumPeft.Data;
using QuantumPeft.Models;
using QuantumPeft.Training;
using TorchSharp;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft bench methods</c>: every adapter method on the same model, task, seed and step budget: parameters, step time and test metric (methods.csv, methods.md).</summary>
public sealed class BenchMethodsCommand : ICliCommand
{
    public string? Parent => "bench";

    public Command Build()
    {
        var model = new Option<string>("--model") { DefaultValueFactory = _ => "minilm" };
        var task = new Option<string>("--task") { Description = $"A classification task: {string.Join(", ", TextTasks.Names)}.", DefaultValueFactory = _ => "sentiment" };
        var dataDir = new Option<string?>("--data-dir");
        var methods = new Option<string>("--methods") { Description = "Comma-separated methods.", DefaultValueFactory = _ => string.Join(",", FineTuneSpec.Methods.Where(m => m is not ("head" or "full"))) };
        var rank = new Option<int>("--rank") { Description = "Rank of the methods that have one (Quantum-PEFT K, LoRA r, AdaLoRA target_r, VeRA r, LoKr r).", DefaultValueFactory = _ => 8 };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps per method (one schedule over them).", DefaultValueFactory = _ => 100 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 16 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 64 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 42 };
        var threads = new Option<int?>("--threads");
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var outDir = new Option<string>("--out") { DefaultValueFactory = _ => "out/bench-methods" };
        var cmd = new Command("methods", "Train every adapter method for the same steps on one task; writes methods.csv and methods.md (parameters, step time, test metric).");
        foreach (var o in new Option[] { model, task, dataDir, methods, rank, steps, batch, maxLength, seed, threads, device, outDir }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            if (parse.GetValue(threads) is int t) torch.set_num_threads(t);
            var names = parse.GetValue(methods)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
            var unknown = names.FirstOrDefault(n => !FineTuneSpec.Methods.Contains(n));
            if (unknown is not null) throw new ArgumentException($"--methods: unknown method '{unknown}' (valid: {string.Join(", ", FineTuneSpec.Methods)}).");
            int nSteps = parse.GetValue(steps);
            if (nSteps < 1) throw new ArgumentException("--steps must be at least 1.");
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            var folder = ModelResolver.Resolve(parse.GetValue(model)!);
            var data = TextTasks.Load(parse.GetValue(task)!, parse.GetValue(dataDir));
            var rows = new List<(string Method, long Params, double StepMs, double Validation, double Test, double Lr)>();
            foreach (var m in names)
            {
                torch.manual_seed(parse.GetValue(seed));
                var spec = new FineTuneSpec { Method = m, Rank = parse.GetValue(rank), Seed = parse.GetValue(seed), TotalSteps = nSteps };
                using var classifier = new BertTextClassifier(folder, data.NumLabels, spec, parse.GetValue(maxLength), dev);
                var lr = FineTuneSpec.DefaultLearningRate(m);
                var options = new TrainerOptions { Epochs = 1000, MaxSteps = nSteps, BatchSize = parse.GetValue(batch), AdapterLearningRate = lr, HeadLearningRate = 2e-3,
                    Seed = parse.GetValue(seed), EvaluateEachEpoch = false };
                var result = new Trainer(classifier, data, options).Run();
                rows.Add((m, classifier.Counts().Adapter, 1000 * result.TrainSeconds / result.Steps, result.BestValidationMetric, result.TestMetric, lr));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{m,-10} adapter params {rows[^1].Params,10:N0}  {rows[^1].StepMs,7:F1} ms/step  validation {result.MainMetric} {result.BestValidationMetric:F4}  test {result.TestMetric:F4}"));
            }
            var inv = CultureInfo.InvariantCulture;
            var dir = Path.GetFullPath(parse.GetValue(outDir)!);
            Directory.CreateDirectory(dir);
            var csv = new StringBuilder("method,rank,adapter_params,steps,ms_per_step,validation_metric,test_metric,lr\n");
            foreach (var r in rows) csv.Append(inv, $"{r.Method},{parse.GetValue(rank)},{r.Params},{nSteps},{r.StepMs:F1},{r.Validation:F4},{r.Test:F4},{r.Lr}\n");
            var md = new StringBuilder(string.Create(inv, $"# Adapter methods on {data.Name}\n\nModel {folder}; {nSteps} steps of batch {parse.GetValue(batch)} per method (one linear schedule), seed {parse.GetValue(seed)}, " +
                $"rank {parse.GetValue(rank)} where a method has one, each method's default learning rate; the classifier head trains too (lr 2e-3). One run, one seed.\n\n"));
            md.AppendLine($"| method | adapter params | ms / step | validation {data.MainMetric} | test {data.MainMetric} | lr |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var r in rows) md.AppendLine(string.Create(inv, $"| {r.Method} | {r.Params:N0} | {r.StepMs:F1} | {r.Validation:F4} | {r.Test:F4} | {r.Lr} |"));
            Formats.AtomicFile.WriteAllText(Path.Combine(dir, "methods.csv"), csv.ToString());
            Formats.AtomicFile.WriteAllText(Path.Combine(dir, "methods.md"), md.ToString());
            Console.WriteLine($"wrote {Path.Combine(dir, "methods.csv")} and methods.md");
            return 0;
        });
        return cmd;
    }
}
