using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using QuantumPeft.Data;
using QuantumPeft.Data.Images;
using QuantumPeft.Models;
using QuantumPeft.Models.Vision;
using QuantumPeft.Training;
using TorchSharp;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft eval</c>: a saved adapter (or a merged model folder) on a task's test and/or validation split, with the task's metrics.</summary>
public sealed class EvalCommand : ICliCommand
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "minilm, a Hugging Face BERT / RoBERTa folder or an image classifier folder (the base model, or a merged classifier folder without --adapter).", DefaultValueFactory = _ => "minilm" };
        var adapter = new Option<string?>("--adapter") { Description = "Adapter folder written by qpeft train (OUT/adapter). Without it, --model must hold a classifier head." };
        var task = new Option<string>("--task") { Description = $"Task: {string.Join(", ", TextTasks.Names)}; images: {string.Join(", ", ImageTasks.Names)}.", DefaultValueFactory = _ => "sentiment" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding the GLUE task folders, or the image task's data (as for qpeft train)." };
        var split = new Option<string>("--split") { Description = "test, validation or both.", DefaultValueFactory = _ => "test" };
        var batch = new Option<int>("--batch-size") { Description = "Evaluation batch (train evaluates in batches of 2 x its batch size, 32).", DefaultValueFactory = _ => ClassifierEvaluation.DefaultBatchSize };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per example (train's default).", DefaultValueFactory = _ => 64 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var outFile = new Option<string?>("--out") { Description = "Write the metrics to this JSON file." };
        var imageSize = new Option<int?>("--image-size") { Description = "Image tasks: resize to this square side (default: the adapter's, then the model's preprocessor_config.json)." };
        var evalLimit = new Option<int?>("--eval-limit") { Description = "Image tasks: the fixed seeded subsets of train --eval-limit." };

        var cmd = new Command("eval", "Evaluate a saved adapter (or a merged model folder) on a task's test/validation split.");
        foreach (var o in new Option[] { model, adapter, task, dataDir, split, batch, maxLength, device, outFile, imageSize, evalLimit })
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
            var taskName = parse.GetValue(task)!;
            if (ImageTasks.IsImageTask(taskName) || ImageClassifiers.IsImageClassifier(folder))
                return EvalImages(folder, adapterDir, taskName, parse.GetValue(dataDir), splits, batchSize, dev, parse.GetValue(imageSize), parse.GetValue(evalLimit), parse.GetValue(outFile));

            // What the saved classifier is, read from file headers, so that a wrong label count fails before the model loads.
            var (numLabels, head, source) = adapterDir is not null
                ? WithSource(TextClassifier.ReadAdapterHead(adapterDir, folder), $"adapter '{adapterDir}'")
                : WithSource(TextEncoders.For(folder).ReadHead(folder) ?? throw new ArgumentException(
                    $"model '{folder}' has no classifier head (its config.json has no num_labels or id2label): give the adapter with --adapter DIR, or a folder written by qpeft merge."),
                    $"model '{folder}'");
            var data = TextTasks.Load(parse.GetValue(task)!, parse.GetValue(dataDir));
            ClassifierEvaluation.EnsureLabelsMatch(numLabels, data, source);

            using var classifier = adapterDir is not null
                ? TextClassifier.FromAdapter(folder, adapterDir, parse.GetValue(maxLength), dev)
                : TextClassifier.FromClassifierFolder(folder, parse.GetValue(maxLength), dev);
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

    /// <summary>An image classifier (base + adapter, or a classifier folder) on an image task's splits: accuracy and mean loss.</summary>
    static int EvalImages(string folder, string? adapterDir, string taskName, string? dataDir, string[] splits, int batchSize, TorchSharp.torch.Device dev,
        int? imageSize, int? evalLimit, string? outFile)
    {
        if (!ImageTasks.IsImageTask(taskName))
            throw new ArgumentException($"--model '{folder}' is an image classifier; evaluate it on an image task ({string.Join(", ", ImageTasks.Names)}), not on '{taskName}'.");
        if (!ImageClassifiers.IsImageClassifier(folder))
            throw new ArgumentException($"task '{taskName}' needs an image classifier ({string.Join(", ", ImageClassifiers.ModelTypes)}), but --model '{folder}' is model_type '{Formats.HuggingFace.HfCheckpoint.ReadModelType(folder) ?? "(none)"}'.");
        var source = adapterDir is not null ? $"adapter '{adapterDir}'" : $"model '{folder}'";
        int? adapterLabels = adapterDir is not null ? ImageClassifierFineTuner.ReadAdapterNumLabels(adapterDir) : null;
        var data = ImageTasks.Load(taskName, dataDir).Limit(null, evalLimit);
        using var classifier = adapterDir is not null
            ? ImageClassifierFineTuner.FromAdapter(folder, adapterDir, dev, imageSize)
            : ImageClassifierFineTuner.FromModelFolder(folder, dev, imageSize);
        var numLabels = adapterLabels ?? classifier.Model.NumLabels;
        if (numLabels != data.NumLabels)
            throw new ArgumentException($"{source} has a head of {numLabels} classes, but task '{data.Name}' has {data.NumLabels}: expected an adapter or model trained on this task.");
        Console.WriteLine($"qpeft eval: task {data.Name}, model {folder} ({classifier.Model.ModelType})" + (adapterDir is null ? "" : $", adapter {adapterDir} ({classifier.Spec.Method})") +
            $", {numLabels} classes, image processor: {classifier.Processor.Source}, device {dev}");
        IReadOnlyList<ImageExample> Split(string s) => s == "test" ? data.Test : data.Validation;
        var metrics = splits.ToDictionary(s => s, s => classifier.Evaluate(Split(s), batchSize));
        foreach (var (s, values) in metrics)
            Console.WriteLine($"{s} ({Split(s).Count} examples): " + string.Join(", ", values.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}"))));
        if (outFile is { } path)
        {
            var full = Path.GetFullPath(path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            var json = new Dictionary<string, object?>
            {
                ["task"] = data.Name, ["model"] = folder, ["adapter"] = adapterDir, ["num_labels"] = numLabels, ["batch_size"] = batchSize,
                ["main_metric"] = ImageTask.MainMetric, ["examples"] = splits.ToDictionary(s => s, s => Split(s).Count), ["metrics"] = metrics,
            };
            Formats.AtomicFile.WriteAllText(full, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }) + "\n");
            Console.WriteLine($"metrics: {full}");
        }
        return 0;
    }

    static (int, string, string) WithSource((int NumLabels, string Head) info, string source) => (info.NumLabels, info.Head, source);
}
