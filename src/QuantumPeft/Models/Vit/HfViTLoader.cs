using System.Text.Json;
using QuantumPeft.Formats;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Vit;

/// <summary>Loads and saves ViT folders (config.json + model.safetensors, sharded safetensors or pytorch_model.bin; any float dtype).</summary>
/// <remarks>
/// Both layouts load into both models: ViTForImageClassification checkpoints (names vit.*, classifier.*) and bare ViTModel
/// checkpoints (names embeddings.*, encoder.*, layernorm.*, pooler.*); the vit. prefix is added or stripped as transformers does.
/// Weights are converted to float32 on load.
/// </remarks>
public static class HfViTLoader
{
    /// <summary>The image processor's file, copied along when a model is saved.</summary>
    public const string PreprocessorConfig = "preprocessor_config.json";

    const string BasePrefix = "vit.";
    const string ClassifierWeight = "classifier.weight", ClassifierBias = "classifier.bias";

    // Never worth a warning: ViTModel's pooler under a classifier (transformers drops it too), and the parts of
    // ViTForMaskedImageModeling (mask token, pixel-shuffle decoder) that no model here has.
    static readonly string[] NotUsedByClassifier = ["pooler.", "vit.pooler.", "embeddings.mask_token", "decoder."];

    /// <summary>Reads and validates the folder's config.json (throws for a missing file, another architecture or an unsupported value).</summary>
    public static ViTConfig LoadConfig(string folder) => ViTConfig.Load(HfCheckpoint.ConfigPath(folder));

    /// <summary>The registry's loader (<see cref="ImageClassifiers"/>): <see cref="LoadForImageClassification"/>.</summary>
    public static (IImageClassifier Model, HfLoadReport Report) Load(string folder, ImageLoadOptions options) => LoadForImageClassification(folder, options);

    /// <summary>
    /// Loads a folder into a ViTForImageClassification. The head has <see cref="ImageLoadOptions.NumLabels"/> classes, or,
    /// when that is null, config.json's (id2label, else num_labels, else the checkpoint classifier's rows, else transformers'
    /// default of 2). When the checkpoint has no classifier, or one of another class count (a 1000-class ImageNet head
    /// fine-tuned on 10 classes), a new classifier starts from <see cref="ImageLoadOptions.Seed"/>; the report lists it
    /// under NewlyInitialized and the dropped checkpoint head under Ignored.
    /// </summary>
    public static (ViTForImageClassification Model, HfLoadReport Report) LoadForImageClassification(string folder, ImageLoadOptions? options = null)
    {
        options ??= new ImageLoadOptions();
        if (options.NumLabels is < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.NumLabels, $"{folder}: a ViT classifier needs at least one class, got num_labels {options.NumLabels}.");
        var config = LoadConfig(folder);
        var configLabels = config.Labels(HfCheckpoint.ConfigPath(folder));
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var headWeight = weights.GetValueOrDefault(ClassifierWeight) ?? weights.GetValueOrDefault(BasePrefix + ClassifierWeight);
            int? checkpointClasses = headWeight is { } w && w.dim() == 2 ? (int)w.shape[0] : null;
            int numLabels = options.NumLabels ?? configLabels?.Count ?? checkpointClasses ?? 2;

            // A head of another size cannot load; transformers would refuse (ignore_mismatched_sizes=False), but a new
            // class count is the point of fine-tuning, so the old head is set aside and a new one starts from the seed.
            var dropped = new List<string>();
            if (checkpointClasses is { } old && old != numLabels)
                foreach (var key in weights.Keys.Where(IsClassifierKey).ToList())
                {
                    weights.Remove(key, out var t);
                    t!.Dispose();
                    dropped.Add(key);
                }

            var labels = configLabels is { } names && names.Count == numLabels ? names : null;
            var model = new ViTForImageClassification(config, numLabels, labels, options.Seed);
            var loadOptions = new HfLoadOptions(BasePrefix, ExpectedMissing: ["classifier."], IgnoredUnexpected: NotUsedByClassifier);
            var report = HfStateDict.Load(model, weights, folder, loadOptions, options.Log);
            if (dropped.Count > 0)
            {
                (options.Log ?? (m => Console.Error.WriteLine(m)))(
                    $"note: {folder}: the checkpoint's {checkpointClasses}-class classifier was not used; a new {numLabels}-class classifier is initialised (seed {options.Seed}).");
                report = report with { Ignored = [.. dropped, .. report.Ignored] };
            }
            RequireBackbone(folder, report, model);
            model.eval();
            return (MoveTo(model, options.Device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Loads the backbone alone (transformers' ViTModel) from either layout. The pooler is built when <paramref name="addPoolingLayer"/>
    /// says so, or, when null, when the checkpoint has one (a new pooler is reported under NewlyInitialized).
    /// </summary>
    public static (ViTModel Model, HfLoadReport Report) LoadModel(string folder, bool? addPoolingLayer = null, Device? device = null,
        long seed = 0, Action<string>? log = null)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            bool pooler = addPoolingLayer ?? weights.Keys.Any(k => k.EndsWith("pooler.dense.weight", StringComparison.Ordinal));
            var model = new ViTModel(config, pooler, seed);
            string[] ignored = ["classifier.", "embeddings.mask_token", "decoder.", .. pooler ? Array.Empty<string>() : ["pooler."]];
            var report = HfStateDict.Load(model, weights, folder, new HfLoadOptions(BasePrefix, ExpectedMissing: ["pooler."], IgnoredUnexpected: ignored), log);
            RequireBackbone(folder, report, model);
            model.eval();
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Writes a classifier as save_pretrained writes ViTForImageClassification: config.json (model_type vit, architectures,
    /// id2label / label2id of this head, torch_dtype float32) and model.safetensors (or shards over <paramref name="maxShardBytes"/>);
    /// preprocessor_config.json comes from <paramref name="copyFilesFrom"/> when it has one.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model still carries adapters (merge and unload them first).</exception>
    public static void Save(string folder, ViTForImageClassification model, string? copyFilesFrom = null, long? maxShardBytes = null) =>
        WithState(model, state => Save(folder, model.Config, state, nameof(ViTForImageClassification), model.Labels, copyFilesFrom, maxShardBytes));

    /// <summary>Writes a backbone as a ViTModel folder (names embeddings.*, encoder.*, layernorm.*, pooler.*).</summary>
    public static void Save(string folder, ViTModel model, string? copyFilesFrom = null, long? maxShardBytes = null) =>
        WithState(model, state => Save(folder, model.Config, state, nameof(ViTModel), null, copyFilesFrom, maxShardBytes));

    /// <summary>
    /// Writes any state dict with Hugging Face names (e.g. after merging adapters) and its config as a model folder;
    /// <paramref name="labels"/> (the head's classes) become id2label / label2id, null keeps config.json's.
    /// </summary>
    public static void Save(string folder, ViTConfig config, IReadOnlyDictionary<string, Tensor> stateDict, string architecture,
        IReadOnlyList<string>? labels = null, string? copyFilesFrom = null, long? maxShardBytes = null)
    {
        config.Validate("config");
        var extra = config.Extra is null ? new Dictionary<string, JsonElement>() : new Dictionary<string, JsonElement>(config.Extra);
        extra["architectures"] = JsonSerializer.SerializeToElement(new[] { architecture });
        if (labels is not null)
        {
            var id2label = new SortedDictionary<int, string>();
            var label2id = new Dictionary<string, int>();
            for (int i = 0; i < labels.Count; i++) { id2label[i] = labels[i]; label2id[labels[i]] = i; }
            extra["id2label"] = JsonSerializer.SerializeToElement(id2label.ToDictionary(p => p.Key.ToString(), p => p.Value));
            extra["label2id"] = JsonSerializer.SerializeToElement(label2id);
            // save_pretrained derives num_labels from id2label and does not write it; a stale one would disagree.
            extra.Remove("num_labels");
        }
        var dtypes = stateDict.Values.Select(t => t.dtype).Distinct().ToList();
        if (dtypes is [var only])
        {
            var name = only switch { ScalarType.Float32 => "float32", ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => null };
            if (name is not null) extra["torch_dtype"] = JsonSerializer.SerializeToElement(name);
        }
        HfFolderWriter.Write(folder, (config with { Extra = extra }).ToJson(), stateDict, maxShardBytes);
        if (copyFilesFrom is not null && Path.GetFullPath(copyFilesFrom) != Path.GetFullPath(folder))
        {
            var from = Path.Combine(copyFilesFrom, PreprocessorConfig);
            if (File.Exists(from)) AtomicFile.WriteAllBytes(Path.Combine(folder, PreprocessorConfig), File.ReadAllBytes(from));
        }
    }

    static void WithState(nn.Module model, Action<Dictionary<string, Tensor>> write)
    {
        var names = model.state_dict().Keys;
        // Adapter wrappers rename their base weights (query.base_layer.weight); such a folder would load nowhere.
        var wrapped = names.FirstOrDefault(k => k.Contains(".base_layer.", StringComparison.Ordinal));
        if (wrapped is not null)
            throw new InvalidOperationException($"the model still carries adapters ('{wrapped}'): merge and unload them before saving it as a model folder.");
        using var scope = NewDisposeScope();
        write(model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().contiguous()));
    }

    static bool IsClassifierKey(string key) =>
        key.StartsWith("classifier.", StringComparison.Ordinal) || key.StartsWith(BasePrefix + "classifier.", StringComparison.Ordinal);

    // Only the head (and a pooler nobody asked to load) may be new; a backbone tensor that stays random is an error, not a warning.
    static void RequireBackbone(string folder, HfLoadReport report, nn.Module model)
    {
        if (report.Missing.Count == 0) return;
        model.Dispose();
        throw new InvalidDataException($"{folder}: the checkpoint lacks {report.Missing.Count} tensor(s) a ViT with this config.json needs: " +
            $"{string.Join(", ", report.Missing.Take(6))}{(report.Missing.Count > 6 ? ", ..." : "")}.");
    }

    static T MoveTo<T>(T model, Device? device) where T : nn.Module =>
        device is null || device.type == DeviceType.CPU ? model : model.to(device);
}
