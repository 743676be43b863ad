using QuantumPeft.Formats;
using QuantumPeft.Formats.HuggingFace;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.ResNet;

/// <summary>Loads and saves ResNets as Hugging Face folders (config.json + safetensors / sharded / pytorch_model.bin, preprocessor_config.json).</summary>
public static class HfResNetLoader
{
    /// <summary>The image processor's settings (resize, rescale, normalise), copied along with the weights.</summary>
    public const string PreprocessorConfig = "preprocessor_config.json";

    const string BasePrefix = "resnet.";
    const string HeadPrefix = "classifier.";

    /// <summary>Reads and validates the folder's config.json (throws for a missing file, another model_type or a value the model cannot honour).</summary>
    public static ResNetConfig LoadConfig(string folder) => ResNetConfig.Load(HfCheckpoint.ConfigPath(folder));

    /// <summary>
    /// Loads a folder (a ResNetModel or a ResNetForImageClassification checkpoint) into a classifier of
    /// <paramref name="numLabels"/> classes (null: config.json's num_labels / id2label). The head is newly initialised
    /// from <paramref name="seed"/> when the checkpoint has none, or one of another size (whose tensors are then
    /// reported as ignored); both are reported, neither is an error.
    /// </summary>
    /// <exception cref="InvalidDataException">No label count given and config.json names none (a backbone folder).</exception>
    public static (ResNetForImageClassification Model, HfLoadReport Report) LoadForImageClassification(string folder, int? numLabels = null,
        long seed = 0, Device? device = null, Action<string>? log = null)
    {
        var config = LoadConfig(folder);
        int labels = numLabels ?? config.NumLabels
            ?? throw new InvalidDataException($"{HfCheckpoint.ConfigPath(folder)} names no labels (no num_labels or id2label): it is a backbone; give the number of classes.");
        if (labels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), labels, $"{folder}: a classifier needs at least one label.");
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var model = new ResNetForImageClassification(config, labels, seed);
            // A head of another size (ImageNet's 1000 classes, fine-tuned to 10) is replaced, as transformers does with ignore_mismatched_sizes.
            var expected = model.state_dict().Where(p => p.Key.StartsWith(HeadPrefix, StringComparison.Ordinal)).ToDictionary(p => p.Key, p => p.Value.shape);
            var mismatched = weights.Where(p => p.Key.StartsWith(HeadPrefix, StringComparison.Ordinal)
                && (!expected.TryGetValue(p.Key, out var shape) || !shape.SequenceEqual(p.Value.shape))).Select(p => p.Key).ToList();
            var usable = weights.Where(p => !mismatched.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value);
            AddBatchCounts(model, usable, weights);
            var report = HfStateDict.Load(model, usable, folder, new HfLoadOptions(BasePrefix, ExpectedMissing: [HeadPrefix]), log);
            if (mismatched.Count > 0)
            {
                var shapes = string.Join(", ", mismatched.Select(k => $"{k} [{string.Join(", ", weights[k].shape)}]"));
                (log ?? (m => Console.Error.WriteLine(m)))($"note: {folder}: the checkpoint's head ({shapes}) does not fit {labels} labels and is replaced by a new one.");
                report = report with { Ignored = [.. report.Ignored, .. mismatched] };
            }
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>Loads the backbone alone (a classifier in the checkpoint is ignored).</summary>
    public static (ResNetModel Model, HfLoadReport Report) LoadModelWithReport(string folder, long seed = 0, Device? device = null, Action<string>? log = null)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var model = new ResNetModel(config, seed);
            AddBatchCounts(model, weights, weights);
            var report = HfStateDict.Load(model, weights, folder, new HfLoadOptions(BasePrefix, IgnoredUnexpected: [HeadPrefix]), log);
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Writes a classifier as a ResNetForImageClassification folder (names resnet.*, classifier.1.*) that transformers
    /// reads: config.json with id2label (<paramref name="labels"/>, else the config's own when the count fits, else
    /// LABEL_i), model.safetensors, and preprocessor_config.json copied from <paramref name="copyFilesFrom"/> when it has one.
    /// </summary>
    public static void Save(string folder, ResNetForImageClassification model, string? copyFilesFrom = null, IReadOnlyList<string>? labels = null)
    {
        if (labels is not null && labels.Count != model.NumLabels)
            throw new ArgumentException($"{labels.Count} label names given for a {model.NumLabels}-label classifier.", nameof(labels));
        var names = labels ?? ConfigLabels(model.Config, model.NumLabels) ?? Enumerable.Range(0, model.NumLabels).Select(i => $"LABEL_{i}").ToList();
        var id2label = names.Select((n, i) => (n, i)).ToDictionary(p => p.i.ToString(), p => p.n);
        var config = model.Config.WithExtra(new Dictionary<string, object>
        {
            ["architectures"] = new[] { nameof(ResNetForImageClassification) },
            ["id2label"] = id2label,
            ["label2id"] = id2label.GroupBy(p => p.Value).ToDictionary(g => g.Key, g => int.Parse(g.First().Key)),
            ["num_labels"] = model.NumLabels,
        });
        Write(folder, config, model.state_dict(), copyFilesFrom);
    }

    /// <summary>Writes a backbone as a ResNetModel folder (names resnet.*, no classifier), as the ONNX import does.</summary>
    public static void Save(string folder, ResNetModel model, string? copyFilesFrom = null)
    {
        var config = model.Config.WithExtra(new Dictionary<string, object> { ["architectures"] = new[] { nameof(ResNetModel) } });
        var prefixed = model.state_dict().ToDictionary(p => BasePrefix + p.Key, p => p.Value);
        Write(folder, config, prefixed, copyFilesFrom);
    }

    /// <summary>Writes config.json, the weights and preprocessor_config.json (when <paramref name="copyFilesFrom"/> has one).</summary>
    public static void Write(string folder, ResNetConfig config, IReadOnlyDictionary<string, Tensor> stateDict, string? copyFilesFrom = null)
    {
        config.Validate("config");
        HfFolderWriter.Write(folder, config.ToJson(), stateDict);
        if (copyFilesFrom is null || Path.GetFullPath(copyFilesFrom) == Path.GetFullPath(folder)) return;
        var from = Path.Combine(copyFilesFrom, PreprocessorConfig);
        if (File.Exists(from)) AtomicFile.WriteAllBytes(Path.Combine(folder, PreprocessorConfig), File.ReadAllBytes(from));
    }

    // PyTorch's BatchNorm loads a checkpoint without num_batches_tracked (older ones lack it) as 0, silently; so do we,
    // rather than report it missing. The zeros go into owned (disposed with the checkpoint) under the checkpoint's naming.
    static void AddBatchCounts(nn.Module model, Dictionary<string, Tensor> checkpoint, Dictionary<string, Tensor> owned)
    {
        static string Bare(string name) => name.StartsWith(BasePrefix, StringComparison.Ordinal) ? name[BasePrefix.Length..] : name;
        bool prefixed = checkpoint.Keys.Any(k => k.StartsWith(BasePrefix, StringComparison.Ordinal));
        var present = checkpoint.Keys.Select(Bare).ToHashSet();
        foreach (var key in model.state_dict().Keys.Where(k => k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)).Select(Bare))
        {
            if (present.Contains(key)) continue;
            var zero = tensor(0L);
            var name = prefixed ? BasePrefix + key : key;
            checkpoint[name] = zero;
            if (!ReferenceEquals(owned, checkpoint)) owned[name] = zero;
        }
    }

    static List<string>? ConfigLabels(ResNetConfig config, int count)
    {
        if (config.Extra is null || !config.Extra.TryGetValue("id2label", out var ids) || ids.ValueKind != System.Text.Json.JsonValueKind.Object) return null;
        var map = ids.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ToString());
        if (map.Count != count) return null;
        var list = new List<string>();
        for (int i = 0; i < count; i++)
        {
            if (!map.TryGetValue(i.ToString(), out var name)) return null;
            list.Add(name);
        }
        return list;
    }

    static T MoveTo<T>(T model, Device? device) where T : nn.Module =>
        device is null || device.type == DeviceType.CPU ? model : model.to(device);
}
