using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using QuantumPeft.Data;
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using QuantumPeft.Training;
using TorchSharp;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft eval</c>: a saved adapter (or a merged model folder) on a task's test and/or validation split, with the task's metrics.</summary>
public sealed class EvalCommand : ICliCommand
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "minilm or a Hugging Face BERT folder (the base model, or a merged classifier folder without --adapter).", DefaultValueFactory = _ => "minilm" };
        var adapter = new Option<string?>("--adapter") { Description = "Adapter folder written by qpeft train (OUT/adapter). Without it, --model must hold a classifier head." };
        var task = new Option<string>("--task") { Description = $"Task: {string.Join(", ", TextTasks.Names)}.", DefaultValueFactory = _ => "sentiment" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding the GLUE task folders (GLUE tasks only)." };
        var split = new Option<string>("--split") { Description = "test, validation or both.", DefaultValueFactory = _ => "test" };
        var batch = new Option<int>("--batch-size") { Description = "Evaluation batch (train evaluates in batches of 2 x its batch size, 32).", DefaultValueFactory = _ => ClassifierEvaluation.DefaultBatchSize };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per example (train's default).", DefaultValueFactory = _ => 64 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var outFile = new Option<string?>("--out") { Description = "Write the metrics to this JSON file." };

        var cmd = new Command("eval", "Evaluate a saved adapter (or a merged model folder) on a task's test/validation split.");
        foreach (var o in new Option[] { model, adapter, task, dataDir, split, batch, maxLength, device, outFile })
            cmd.Options.Add(o);

        cmd.SetAction(parse =>
        {
            var splitName = parse.GetValue(split)!;
            string[] splits = splitName switch
            {
                "both" => ["validation", "test"],
                "test" or "validation" => [splitName],
                _ => throw new ArgumentException($"unknown --split '{splitName}' (valid: test, validation, both)."),
            };
            var batchSize = parse.GetValue(batch);
            if (batchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {batchSize}.");
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            var folder = ModelResolver.Resolve(parse.GetValue(model)!);
            var adapterDir = parse.GetValue(adapter) is { } a ? Path.GetFullPath(a) : null;

            // What the saved classifier is, read from file headers, so that a wrong label count fails before the model loads.
            var (numLabels, head, source) = adapterDir is not null
                ? WithSource(BertTextClassifier.ReadAdapterHead(adapterDir), $"adapter '{adapterDir}'")
                : WithSource(HfBertLoader.ReadClassifierHead(folder) ?? throw new ArgumentException(
                    $"model '{folder}' has no classifier head (its config.json has no num_labels or id2label): give the adapter with --adapter DIR, or a folder written by qpeft merge."),
                    $"model '{folder}'");
            var data = TextTasks.Load(parse.GetValue(task)!, parse.GetValue(dataDir));
            ClassifierEvaluation.EnsureLabelsMatch(numLabels, data, source);

            using var classifier = adapterDir is not null
                ? BertTextClassifier.FromAdapter(folder, adapterDir, parse.GetValue(maxLength), dev)
                : BertTextClassifier.FromClassifierFolder(folder, parse.GetValue(maxLength), dev);
            Console.WriteLine($"qpeft eval: task {data.Name}, model {folder}" + (adapterDir is null ? "" : $", adapter {adapterDir} ({classifier.Spec.Method})") +
                $", {numLabels} label(s), {head} head, max length {parse.GetValue(maxLength)}, device {dev}");

            var metrics = ClassifierEvaluation.EvaluateSplits(classifier, data, splits, batchSize, source);
            foreach (var (s, values) in metrics)
                Console.WriteLine($"{s} ({ClassifierEvaluation.Split(data, s).Count} examples): " +
                    string.Join(", ", values.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}"))));

            if (parse.GetValue(outFile) is { } path)
            {
                var full = Path.GetFullPath(path);
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                var json = new Dictionary<string, object?>
                {
                    ["task"] = data.Name, ["model"] = folder, ["adapter"] = adapterDir, ["num_labels"] = numLabels, ["head"] = head,
                    ["max_length"] = parse.GetValue(maxLength), ["batch_size"] = batchSize, ["main_metric"] = data.MainMetric,
                    ["examples"] = splits.ToDictionary(s => s, s => ClassifierEvaluation.Split(data, s).Count),
                    ["metrics"] = metrics,
                };
                Formats.AtomicFile.WriteAllText(full, JsonSerializer.Serialize(json, new JsonSerializerOptions
                {
                    WriteIndented = true,
                    // A metric can be NaN (e.g. a correlation of constant predictions); write it rather than fail.
                    NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
                }) + "\n");
                Console.WriteLine($"metrics: {full}");
            }
            return 0;
        });
        return cmd;
    }

    static (int, string, string) WithSource((int NumLabels, string Head) info, string source) => (info.NumLabels, info.Head, source);
}
