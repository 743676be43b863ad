using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.DebertaV2;

/// <summary>Loads and saves DeBERTa-v2 / v3 models as Hugging Face folders (config.json + safetensors / sharded / pytorch_model.bin).</summary>
public static class HfDebertaV2Loader
{
    const string BasePrefix = "deberta.";

    // Never worth a warning: a buffer older checkpoints saved, absolute positions a relative-only model does not have
    // (transformers' _keys_to_ignore_on_load_unexpected), and the pre-training heads of base checkpoints: the MLM head
    // (lm_predictions.*, or cls.* in the legacy layout) and DeBERTa-v3's replaced-token-detection head (mask_predictions.*).
    static readonly string[] AlwaysIgnored = ["embeddings.position_ids", "embeddings.position_embeddings.weight", "lm_predictions.", "mask_predictions.", "cls."];

    /// <summary>Reads and validates the folder's config.json (throws for a missing file or an unsupported value, naming the key).</summary>
    public static DebertaV2Config LoadConfig(string folder) => DebertaV2Config.Load(HfCheckpoint.ConfigPath(folder));

    /// <summary>Loads the bare encoder from a base checkpoint (names embeddings.*, encoder.*) or a task / pre-training checkpoint (names deberta.*).</summary>
    public static DebertaV2Model LoadModel(string folder, Device? device = null, Action<string>? log = null) =>
        LoadModelWithReport(folder, device, log).Model;

    /// <summary><see cref="LoadModel"/> with the per-key load report; warnings go to <paramref name="log"/> (stderr by default).</summary>
    public static (DebertaV2Model Model, HfLoadReport Report) LoadModelWithReport(string folder, Device? device = null, Action<string>? log = null)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var model = new DebertaV2Model(config);
            var options = new HfLoadOptions(BasePrefix, IgnoredUnexpected: [.. AlwaysIgnored, "classifier.", "pooler."]);
            var report = HfStateDict.Load(model, weights, folder, options, log);
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Loads a folder into a sequence classifier. The ContextPooler and classifier come from the checkpoint when it has them
    /// with <paramref name="numLabels"/> outputs; otherwise (a base checkpoint, or a classifier of another label count) they
    /// start from <paramref name="seed"/> and the report lists them as newly initialised, which is expected, not an error.
    /// </summary>
    public static (DebertaV2ForSequenceClassification Model, HfLoadReport Report) LoadForSequenceClassification(string folder, int numLabels,
        long seed = 0, Action<string>? log = null, Device? device = null)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var model = new DebertaV2ForSequenceClassification(config, numLabels, seed);
            var notes = new List<string>();
            // A classifier for another label count cannot be used (transformers' ignore_mismatched_sizes): it is set aside, and a new one is made.
            if (weights.TryGetValue("classifier.weight", out var given) && given.shape[0] != numLabels)
            {
                notes.Add($"note: {folder}: its classifier has {given.shape[0]} outputs; a new {numLabels}-output classifier is initialised instead.");
                foreach (var key in weights.Keys.Where(k => k.StartsWith("classifier.", StringComparison.Ordinal)).ToList())
                {
                    weights[key].Dispose();
                    weights.Remove(key);
                }
            }
            var options = new HfLoadOptions(BasePrefix, ExpectedMissing: ["classifier.", "pooler."], IgnoredUnexpected: AlwaysIgnored);
            var report = HfStateDict.Load(model, weights, folder, options, log);
            foreach (var n in notes) (log ?? (m => Console.Error.WriteLine(m)))(n);
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>
    /// The label count a sequence-classification folder was saved with: num_labels, else the size of id2label, else 2 when
    /// config.json names DebertaV2ForSequenceClassification (transformers' default); null for a base model.
    /// </summary>
    public static int? ReadNumLabels(string folder)
    {
        var config = LoadConfig(folder);
        var extra = config.Extra ?? [];
        if (extra.TryGetValue("num_labels", out var n) && n.ValueKind == JsonValueKind.Number) return n.GetInt32();
        if (extra.TryGetValue("id2label", out var ids) && ids.ValueKind == JsonValueKind.Object) return ids.EnumerateObject().Count();
        return config.ArchitectureNames().Contains(nameof(DebertaV2ForSequenceClassification)) ? 2 : null;
    }

    /// <summary>Loads a saved sequence classifier (e.g. written by <see cref="Save(string, DebertaV2ForSequenceClassification, string?, long?)"/>) with the label count its config.json records.</summary>
    /// <exception cref="InvalidDataException">The folder is a base model or lacks the classifier's or pooler's weights.</exception>
    public static DebertaV2ForSequenceClassification LoadClassifier(string folder, Device? device = null)
    {
        var numLabels = ReadNumLabels(folder)
            ?? throw new InvalidDataException($"{HfCheckpoint.ConfigPath(folder)} describes a base model (no num_labels, id2label or DebertaV2ForSequenceClassification): " +
                "expected a sequence-classification folder.");
        var (model, report) = LoadForSequenceClassification(folder, numLabels, device: device,
            log: m => { if (!m.StartsWith("note:", StringComparison.Ordinal)) Console.Error.WriteLine(m); });
        if (report.NewlyInitialized.Count > 0 || report.Missing.Count > 0)
        {
            model.Dispose();
            var absent = report.NewlyInitialized.Concat(report.Missing).ToList();
            throw new InvalidDataException($"{folder}: config.json describes a {numLabels}-label classifier but the weights lack " +
                $"{string.Join(", ", absent.Take(4))}{(absent.Count > 4 ? ", ..." : "")}: expected a folder with a trained head.");
        }
        return model;
    }

    /// <summary>Saves an encoder as a base checkpoint folder (names embeddings.*, encoder.*), as DebertaV2Model.save_pretrained writes it.</summary>
    public static void Save(string folder, DebertaV2Model model, string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        var config = WithExtra(model.Config, new() { ["architectures"] = new[] { nameof(DebertaV2Model) } });
        Save(folder, config, model.state_dict(), copyTokenizerFrom, maxShardBytes);
    }

    /// <summary>Saves a classifier as a task checkpoint folder (names deberta.*, pooler.*, classifier.*; id2label / label2id in config.json) that transformers reads.</summary>
    public static void Save(string folder, DebertaV2ForSequenceClassification model, string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        var labels = Enumerable.Range(0, model.NumLabels).ToDictionary(i => i.ToString(), i => $"LABEL_{i}");
        var extra = new Dictionary<string, object>
        {
            ["architectures"] = new[] { nameof(DebertaV2ForSequenceClassification) },
            ["id2label"] = labels,
            ["label2id"] = labels.ToDictionary(p => p.Value, p => int.Parse(p.Key)),
        };
        if (model.NumLabels == 1) extra["problem_type"] = "regression";
        Save(folder, WithExtra(model.Config, extra), model.state_dict(), copyTokenizerFrom, maxShardBytes);
    }

    /// <summary>
    /// Writes any state dict with Hugging Face names (e.g. after merging adapters) and its config as a model folder;
    /// <paramref name="copyTokenizerFrom"/> names a folder whose tokenizer files (spm.model included) come along.
    /// </summary>
    public static void Save(string folder, DebertaV2Config config, IReadOnlyDictionary<string, Tensor> stateDict,
        string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        config.Validate("config");
        // Non-persistent in transformers: never written by save_pretrained.
        var tensors = stateDict.Where(p => !p.Key.EndsWith("position_ids", StringComparison.Ordinal)).ToDictionary(p => p.Key, p => p.Value);
        HfFolderWriter.Write(folder, config.ToJson(), tensors, maxShardBytes, copyTokenizerFrom);
    }

    static DebertaV2Config WithExtra(DebertaV2Config config, Dictionary<string, object> values)
    {
        var extra = config.Extra is null ? new Dictionary<string, JsonElement>() : new Dictionary<string, JsonElement>(config.Extra);
        foreach (var (key, value) in values) extra[key] = JsonSerializer.SerializeToElement(value);
        return config with { Extra = extra };
    }

    static T MoveTo<T>(T model, Device? device) where T : nn.Module =>
        device is null || device.type == DeviceType.CPU ? model : model.to(device);
}
