using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using QuantumPeft.Data;
using QuantumPeft.Models;
using QuantumPeft.Training;
using Spectre.Console;
using TorchSharp;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft train</c>: fine-tune a BERT folder (default: the bundled MiniLM) on a text task. With no arguments, the main job.</summary>
public sealed class TrainCommand : ICliCommand
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "minilm or a Hugging Face BERT folder.", DefaultValueFactory = _ => "minilm" };
        var task = new Option<string>("--task") { Description = $"Task: {string.Join(", ", TextTasks.Names)}.", DefaultValueFactory = _ => "sentiment" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding the GLUE task folders (GLUE tasks only)." };
        var method = new Option<string>("--method") { Description = "quantum | lora | head | full.", DefaultValueFactory = _ => "quantum" };
        var rank = new Option<int>("--rank") { Description = "Rank K (quantum) or r (lora).", DefaultValueFactory = _ => 8 };
        var layers = new Option<int>("--layers") { Description = "Pauli entanglement layers L.", DefaultValueFactory = _ => 1 };
        var map = new Option<string>("--map") { Description = "Stiefel map for U and V: pauli, taylor, matrix_exp, cayley, householder, givens.", DefaultValueFactory = _ => "pauli" };
        var initScale = new Option<double>("--init-scale") { Description = "Quantum: initial angles uniform in +-this.", DefaultValueFactory = _ => 0.02 };
        var alpha = new Option<double?>("--alpha") { Description = "Scaling numerator, s = alpha / rank. Default: 2 x rank." };
        var targets = new Option<string>("--targets") { Description = "all-linear, re:PATTERN, or names a,b,c.", DefaultValueFactory = _ => "all-linear" };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 3 };
        var lr = new Option<double?>("--lr") { Description = "Adapter (or backbone) learning rate. Default: quantum 2e-2, lora 1e-3, full 5e-5." };
        var headLr = new Option<double>("--head-lr") { Description = "Classifier head learning rate.", DefaultValueFactory = _ => 2e-3 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 16 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 64 };
        var maxSteps = new Option<int?>("--max-steps") { Description = "Stop after this many steps (smoke runs)." };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 42 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for TorchSharp (default: all cores)." };
        var outDir = new Option<string>("--out") { Description = "Output folder (checkpoints, adapter, results.json, plot).", DefaultValueFactory = _ => "out/train" };
        var resume = new Option<bool>("--resume") { Description = "Continue a stopped run from the checkpoint in --out." };

        var cmd = new Command("train", "Fine-tune a model on a text task (default: Quantum-PEFT on the bundled MiniLM, sentiment).");
        foreach (var o in new Option[] { model, task, dataDir, method, rank, layers, map, initScale, alpha, targets, epochs, lr, headLr, batch, maxLength, maxSteps, seed, device, threads, outDir, resume })
            cmd.Options.Add(o);

        cmd.SetAction(parse =>
        {
            var m = parse.GetValue(method)!;
            if (!FineTuneSpec.Methods.Contains(m)) throw new ArgumentException($"unknown --method '{m}' (valid: {string.Join(", ", FineTuneSpec.Methods)}).");
            if (parse.GetValue(threads) is int t) torch.set_num_threads(t);
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            var output = Path.GetFullPath(parse.GetValue(outDir)!);
            var seedValue = parse.GetValue(seed);

            var folder = ModelResolver.Resolve(parse.GetValue(model)!);
            var data = TextTasks.Load(parse.GetValue(task)!, parse.GetValue(dataDir));
            var spec = new FineTuneSpec
            {
                Method = m, Rank = parse.GetValue(rank), Layers = parse.GetValue(layers), Map = parse.GetValue(map)!,
                Targets = parse.GetValue(targets)!, Seed = seedValue,
                InitScale = parse.GetValue(initScale), Alpha = parse.GetValue(alpha),
            };
            torch.manual_seed(seedValue);
            using var classifier = new BertTextClassifier(folder, data.NumLabels, spec, parse.GetValue(maxLength), dev);
            var (adapterParams, headParams, totalParams) = classifier.Counts();

            AnsiConsole.MarkupLine($"[bold]qpeft train[/]: {Markup.Escape(data.Name)} ({data.Train.Count}/{data.Validation.Count}/{data.Test.Count} train/validation/test), model {Markup.Escape(folder)}, method {m}, device {dev}");
            if (classifier.Peft is { } peft) Console.WriteLine(peft.Report().ToTable());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"adapter params: {adapterParams:N0} || head params: {headParams:N0} || trainable params: {adapterParams + headParams:N0} || all params: {totalParams:N0} || trainable%: {100.0 * (adapterParams + headParams) / totalParams:F4}"));

            var defaultLr = m switch { "quantum" => 2e-2, "lora" => 1e-3, "full" => 5e-5, _ => 0.0 };
            var options = new TrainerOptions
            {
                Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batch),
                AdapterLearningRate = parse.GetValue(lr) ?? defaultLr, HeadLearningRate = parse.GetValue(headLr),
                Seed = seedValue, OutputDir = output, Resume = parse.GetValue(resume), MaxSteps = parse.GetValue(maxSteps),
            };
            var result = TrainingProgressDisplay.Train(TrainingProgressDisplay.IsInteractive, progress => new Trainer(classifier, data, options, progress));

            Directory.CreateDirectory(output);
            string saved;
            if (classifier.Peft is { } p)
            {
                saved = Path.Combine(output, "adapter");
                classifier.SaveAdapter(saved);
            }
            else
            {
                // Head-only and full fine-tuning change the model itself: save it as a plain HF classifier folder, which
                // qpeft eval --model DIR/model (and transformers) load without the base model.
                saved = Path.Combine(output, "model");
                classifier.SaveMerged(saved, overwrite: true);
            }

            var results = new Dictionary<string, object?>
            {
                ["task"] = data.Name, ["method"] = m, ["model"] = folder, ["rank"] = spec.Rank, ["layers"] = spec.Layers, ["map"] = spec.Map,
                ["adapter_params"] = adapterParams, ["head_params"] = headParams, ["trainable_params"] = adapterParams + headParams,
                ["total_params"] = totalParams, ["test_metric"] = result.TestMetric, ["test_metric_name"] = result.TestMetricName,
                ["test_metrics"] = result.TestMetrics, ["best_validation_metric"] = result.BestValidationMetric, ["best_epoch"] = result.BestEpoch,
                ["train_seconds"] = result.TrainSeconds, ["examples_per_second"] = result.ExamplesPerSecond,
                ["steps"] = result.Steps, ["epochs"] = result.Epochs, ["seed"] = seedValue, ["saved"] = saved,
                ["lr"] = options.AdapterLearningRate, ["head_lr"] = options.HeadLearningRate, ["alpha"] = spec.Alpha ?? 2.0 * spec.Rank,
                ["init_scale"] = spec.InitScale, ["batch_size"] = options.BatchSize, ["max_length"] = parse.GetValue(maxLength),
                ["threads"] = torch.get_num_threads(), ["device"] = dev.ToString(),
            };
            var resultsPath = Path.Combine(output, "results.json");
            Formats.AtomicFile.WriteAllText(resultsPath, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));

            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"[bold green]test {result.TestMetricName}: {result.TestMetric:F4}[/] (best validation {result.BestValidationMetric:F4} at epoch {result.BestEpoch}; {result.TrainSeconds:F0} s, {result.ExamplesPerSecond:F1} examples/s)"));
            Console.WriteLine($"saved: {saved}");
            Console.WriteLine($"results: {resultsPath}");
            return 0;
        });
        return cmd;
    }
}
