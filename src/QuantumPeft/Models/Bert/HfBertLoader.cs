using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Bert;

/// <summary>Loads and saves BERT models as Hugging Face folders (config.json + safetensors / sharded / pytorch_model.bin).</summary>
public static class HfBertLoader
{
    // Never worth a warning: a buffer older checkpoints saved, and the pre-training heads (MLM/NSP) of base checkpoints.
    static readonly string[] AlwaysIgnored = ["embeddings.position_ids", "cls."];

    /// <summary>Reads and validates the folder's config.json (throws for a missing file or an unsupported architecture).</summary>
    public static BertConfig LoadConfig(string folder) => BertConfig.Load(HfCheckpoint.ConfigPath(folder));

    /// <summary>
    /// Loads a BERT encoder from a base checkpoint (names embeddings.*) or a task checkpoint (names bert.*). The
    /// pooler is built when <paramref name="addPoolingLayer"/> says so, or, when null, when the checkpoint has one.
    /// </summary>
    public static BertModel LoadModel(string folder, Device? device = null, bool? addPoolingLayer = null) =>
        LoadModelWithReport(folder, device, addPoolingLayer).Model;

    /// <summary><see cref="LoadModel"/> with the per-key load report; warnings go to <paramref name="log"/> (stderr by default).</summary>
    public static (BertModel Model, HfLoadReport Report) LoadModelWithReport(string folder, Device? device = null,
        bool? addPoolingLayer = null, Action<string>? log = null)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            bool pooler = addPoolingLayer ?? weights.Keys.Any(k => k.EndsWith("pooler.dense.weight", StringComparison.Ordinal));
            var model = new BertModel(config, pooler);
            string[] ignored = pooler ? [.. AlwaysIgnored, "classifier."] : [.. AlwaysIgnored, "classifier.", "pooler."];
            var report = HfStateDict.Load(model, weights, folder, new HfLoadOptions("bert.", IgnoredUnexpected: ignored), log);
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Loads a folder into a sequence classifier. From a base checkpoint the classifier (and, for the "pooler" head
    /// without pooler weights, the pooler) starts from <paramref name="seed"/>; that is expected, not an error.
    /// </summary>
    public static (BertForSequenceClassification Model, HfLoadReport Report) LoadForSequenceClassification(string folder, int numLabels,
        string head = BertForSequenceClassification.PoolerHead, long seed = 0, Device? device = null, Action<string>? log = null)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var model = new BertForSequenceClassification(config, numLabels, head, seed);
            string[] ignored = head == BertForSequenceClassification.PoolerHead ? AlwaysIgnored : [.. AlwaysIgnored, "bert.pooler."];
            var options = new HfLoadOptions("bert.", ExpectedMissing: ["classifier."], IgnoredUnexpected: ignored);
            var report = HfStateDict.Load(model, weights, folder, options, log);
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>config.json key (not a transformers key) that records the pooling head of a saved classifier.</summary>
    public const string HeadConfigKey = "qpeft_head";

    /// <summary>
    /// The label count and head a sequence-classification folder was saved with: num_labels (or the size of id2label)
    /// and qpeft_head (absent in transformers' folders, whose head is the pooler). Null when config.json names no labels
    /// and no BertForSequenceClassification architecture (a base model).
    /// </summary>
    public static (int NumLabels, string Head)? ReadClassifierHead(string folder)
    {
        var config = LoadConfig(folder);
        var extra = config.Extra ?? [];
        int? numLabels = null;
        if (extra.TryGetValue("num_labels", out var n) && n.ValueKind == JsonValueKind.Number) numLabels = n.GetInt32();
        else if (extra.TryGetValue("id2label", out var ids) && ids.ValueKind == JsonValueKind.Object) numLabels = ids.EnumerateObject().Count();
        else if (config.ArchitectureNames().Contains(nameof(BertForSequenceClassification))) numLabels = 2;   // transformers' default
        if (numLabels is null) return null;
        var head = extra.TryGetValue(HeadConfigKey, out var h) && h.ValueKind == JsonValueKind.String ? h.GetString()! : BertForSequenceClassification.PoolerHead;
        BertForSequenceClassification.RequireKnownHead(head, $"{HfCheckpoint.ConfigPath(folder)}: {HeadConfigKey}");
        return (numLabels.Value, head);
    }

    /// <summary>
    /// Loads a saved sequence classifier (e.g. written by <see cref="Save(string, BertForSequenceClassification, string?, long?)"/>)
    /// with the label count and head its config.json records; its classifier weights must be in the folder.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder is a base model (no labels in config.json) or lacks classifier weights.</exception>
    public static BertForSequenceClassification LoadClassifier(string folder, Device? device = null)
    {
        var (numLabels, head) = ReadClassifierHead(folder)
            ?? throw new InvalidDataException($"{HfCheckpoint.ConfigPath(folder)} describes a base model (no num_labels, id2label or BertForSequenceClassification): " +
                "expected a sequence-classification folder (e.g. written by qpeft merge); for a base model, give the adapter that holds the classifier.");
        var (model, report) = LoadForSequenceClassification(folder, numLabels, head, device: device,
            log: m => { if (!m.StartsWith("note:", StringComparison.Ordinal)) Console.Error.WriteLine(m); });
        if (report.NewlyInitialized.Count > 0 || report.Missing.Count > 0)
        {
            model.Dispose();
            var absent = report.NewlyInitialized.Concat(report.Missing).ToList();
            throw new InvalidDataException($"{folder}: config.json describes a {numLabels}-label '{head}' classifier but the weights lack " +
                $"{string.Join(", ", absent.Take(4))}{(absent.Count > 4 ? ", ..." : "")}: expected a folder with a trained head (e.g. written by qpeft merge).");
        }
        return model;
    }

    /// <summary>Saves an encoder as a base checkpoint folder (names embeddings.*, encoder.*, pooler.*).</summary>
    public static void Save(string folder, BertModel model, string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        var config = WithExtra(model.Config, new() { ["architectures"] = new[] { "BertModel" } });
        Save(folder, config, model.state_dict(), copyTokenizerFrom, maxShardBytes);
    }

    /// <summary>
    /// Writes any state dict with Hugging Face names (e.g. after merging adapters into the base weights) and its config
    /// as a model folder; <paramref name="copyTokenizerFrom"/> names a folder whose vocab.txt and tokenizer files come along.
    /// </summary>
    public static void Save(string folder, BertConfig config, IReadOnlyDictionary<string, Tensor> stateDict,
        string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        config.Validate("config");
        HfFolderWriter.Write(folder, config.ToJson(), stateDict, maxShardBytes, copyTokenizerFrom);
    }

    /// <summary>Saves a classifier as a task checkpoint folder (names bert.*, classifier.*) that transformers can read.</summary>
    public static void Save(string folder, BertForSequenceClassification model, string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        var labels = Enumerable.Range(0, model.NumLabels).ToDictionary(i => i.ToString(), i => $"LABEL_{i}");
        var extra = new Dictionary<string, object>
        {
            ["architectures"] = new[] { nameof(BertForSequenceClassification) },
            ["id2label"] = labels,
            ["label2id"] = labels.ToDictionary(p => p.Value, p => int.Parse(p.Key)),
            ["num_labels"] = model.NumLabels,
            // Not a transformers key: tells a reader that the head mean-pools (transformers would use a pooler).
            [HeadConfigKey] = model.Head,
        };
        if (model.NumLabels == 1) extra["problem_type"] = "regression";
        Save(folder, WithExtra(model.Config, extra), model.state_dict(), copyTokenizerFrom, maxShardBytes);
    }

    static BertConfig WithExtra(BertConfig config, Dictionary<string, object> values)
    {
        var extra = config.Extra is null ? new Dictionary<string, JsonElement>() : new Dictionary<string, JsonElement>(config.Extra);
        foreach (var (key, value) in values) extra[key] = JsonSerializer.SerializeToElement(value);
        return config with { Extra = extra };
    }

    static T MoveTo<T>(T model, Device? device) where T : nn.Module =>
        device is null || device.type == DeviceType.CPU ? model : model.to(device);
}
