using QuantumPeft.Data;
using QuantumPeft.Formats;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Bert;
using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>How a model is fine-tuned: which numbers train (a BERT classifier, a causal LM).</summary>
public sealed record FineTuneSpec
{
    /// <summary>quantum | lora | head | full.</summary>
    public string Method { get; init; } = "quantum";
    /// <summary>Rank K (quantum) or r (LoRA).</summary>
    public int Rank { get; init; } = 8;
    /// <summary>Pauli entanglement layers L.</summary>
    public int Layers { get; init; } = 1;
    /// <summary>Stiefel map name for U and V (pauli, taylor, ...).</summary>
    public string Map { get; init; } = "pauli";
    /// <summary>Target modules in CLI form: all-linear, re:PATTERN, or a,b,c.</summary>
    public string Targets { get; init; } = ModuleSelector.AllLinearShorthand;
    /// <summary>Scaling numerator: s = alpha / rank. Null means 2 x rank (s = 2) for both methods.</summary>
    public double? Alpha { get; init; }
    public long Seed { get; init; } = 42;
    /// <summary>Quantum: initial map parameters uniform in +-InitScale (angles, for Pauli).</summary>
    public double InitScale { get; init; } = 0.02;

    /// <summary>peft's baseline methods, each configured from its own defaults plus <see cref="Settings"/>: name to peft_type.</summary>
    public static readonly IReadOnlyDictionary<string, string> BaselineMethods = new Dictionary<string, string>
    {
        ["adalora"] = "ADALORA", ["vera"] = "VERA", ["fourierft"] = "FOURIERFT", ["ia3"] = "IA3", ["lokr"] = "LOKR", ["oft"] = "OFT",
    };

    /// <summary>Every method: quantum, lora, head, full and the baselines.</summary>
    public static readonly string[] Methods = ["quantum", "lora", "head", "full", .. BaselineMethods.Keys];

    /// <summary>The method name of a peft_type ("LORA" -> lora, "QUANTUM_PEFT" -> quantum, "VERA" -> vera, ...).</summary>
    public static string MethodOf(string peftType) => peftType switch
    {
        "LORA" => "lora", "QUANTUM_PEFT" => "quantum",
        _ => BaselineMethods.FirstOrDefault(p => p.Value == peftType).Key ?? peftType.ToLowerInvariant(),
    };

    /// <summary>Methods that put an adapter into the model (all but head and full).</summary>
    public bool IsAdapter => Method is not ("head" or "full");

    /// <summary>Config fields by peft's JSON names (e.g. n_frequency=1000, target_r=4), applied over a method's defaults; values are JSON or plain text.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();

    /// <summary>The run's optimizer steps, which AdaLoRA's budget schedule needs (total_step); null when unknown.</summary>
    public int? TotalSteps { get; init; }

    /// <summary>The learning rate a method is trained with unless one is given (quantum and lora: ours; the baselines: their papers' and peft examples' ranges).</summary>
    public static double DefaultLearningRate(string method, bool generation = false) => method switch
    {
        "quantum" => 2e-2, "lora" => generation ? 2e-4 : 1e-3, "full" => 5e-5, "adalora" => 1e-3, "vera" => 1e-2,
        "fourierft" => 5e-2, "ia3" => 3e-3, "lokr" => 1e-3, "oft" => 5e-4, _ => 0.0,
    };

    /// <summary>The adapter config of an adapter method (alpha 2 x rank unless given), for <paramref name="modelFolder"/> and peft's <paramref name="taskType"/>.</summary>
    /// <param name="modelFolder">The base model (recorded as base_model_name_or_path).</param>
    /// <param name="taskType">peft's task_type.</param>
    /// <param name="modulesToSave">Heads trained and saved with the adapter.</param>
    /// <param name="feedforward">IA3's feed-forward layers (input-scaled), when the targets are the model's defaults.</param>
    public PeftConfig AdapterConfig(string modelFolder, string taskType, IReadOnlyList<string>? modulesToSave, IReadOnlyList<string>? feedforward = null) => Method switch
    {
        "quantum" => Apply(new QuantumPeftConfig
        {
            R = Rank, Alpha = Alpha ?? 2.0 * Rank, Seed = Seed,
            StiefelU = new StiefelMapOptions { Kind = StiefelMaps.Parse(Map), Layers = Layers, InitScale = InitScale },
            StiefelV = new StiefelMapOptions { Kind = StiefelMaps.Parse(Map), Layers = Layers, InitScale = InitScale },
            TargetModules = ModuleSelector.Parse(Targets), ModulesToSave = modulesToSave,
            BaseModelNameOrPath = modelFolder, TaskType = taskType,
        }),
        "lora" => Apply(new LoraConfig
        {
            R = Rank, LoraAlpha = Alpha ?? 2.0 * Rank,
            TargetModules = ModuleSelector.Parse(Targets), ModulesToSave = modulesToSave,
            BaseModelNameOrPath = modelFolder, TaskType = taskType,
        }),
        _ when BaselineMethods.TryGetValue(Method, out var type) => Baseline(type, modelFolder, taskType, modulesToSave, feedforward),
        _ => throw new ArgumentException($"method '{Method}' has no adapter config (adapter methods: quantum, lora, {string.Join(", ", BaselineMethods.Keys)}).", nameof(Method)),
    };

    // A baseline's config: peft's defaults, the rank where the method has one, then --set values over them.
    PeftConfig Baseline(string type, string modelFolder, string taskType, IReadOnlyList<string>? modulesToSave, IReadOnlyList<string>? feedforward)
    {
        var o = new System.Text.Json.Nodes.JsonObject
        {
            ["peft_type"] = type, ["task_type"] = taskType, ["base_model_name_or_path"] = modelFolder,
            ["target_modules"] = System.Text.Json.JsonSerializer.SerializeToNode(ModuleSelector.Parse(Targets), PeftConfig.JsonOptions),
        };
        if (modulesToSave is not null) o["modules_to_save"] = System.Text.Json.JsonSerializer.SerializeToNode(modulesToSave);
        switch (type)
        {
            case "ADALORA":
                // target_r = the rank; init_r half as much again, as peft's default 12 -> 8; the schedule over the run's steps.
                o["target_r"] = Rank; o["init_r"] = Math.Max(Rank + 1, (int)Math.Round(1.5 * Rank)); o["lora_alpha"] = Alpha ?? 2.0 * Rank;
                if (TotalSteps is { } t) { o["total_step"] = t; o["tinit"] = t / 10; o["tfinal"] = (int)(t * 0.3); o["deltaT"] = Math.Max(1, t / 50); }
                break;
            case "VERA": o["r"] = Rank; break;
            case "LOKR": o["r"] = Rank; o["alpha"] = Alpha ?? Rank; break;
            case "IA3":
                if (feedforward is not null) o["feedforward_modules"] = System.Text.Json.JsonSerializer.SerializeToNode(feedforward);
                break;
        }
        foreach (var (key, value) in Settings) o[key] = SettingValue(value);
        var warnings = new List<string>();
        var config = PeftConfig.FromJson(o.ToJsonString(), warnings, $"--method {Method}");
        var unknown = Settings.Keys.FirstOrDefault(k => warnings.Any(w => w.Contains($"\"{k}\"", StringComparison.Ordinal)));
        if (unknown is not null)
        {
            var known = PeftConfig.JsonOptions.GetTypeInfo(config.GetType()).Properties.Select(p => p.Name).Order(StringComparer.Ordinal);
            throw new ArgumentException($"--set {unknown}: {type} has no such field (its fields: {string.Join(", ", known)}).");
        }
        config.Validate();
        return config;
    }

    // A --set value is JSON (1000, true, ["q","v"]) or, failing that, plain text taken as a string.
    static System.Text.Json.Nodes.JsonNode? SettingValue(string value)
    {
        try { return System.Text.Json.Nodes.JsonNode.Parse(value); }
        catch (System.Text.Json.JsonException) { return System.Text.Json.Nodes.JsonValue.Create(value); }
    }

    // --set also reaches quantum's and lora's fields, through the same JSON round trip.
    PeftConfig Apply(PeftConfig config)
    {
        if (Settings.Count == 0) return config;
        var o = System.Text.Json.Nodes.JsonNode.Parse(config.ToJson())!.AsObject();
        foreach (var (key, value) in Settings)
        {
            if (!o.ContainsKey(key)) throw new ArgumentException($"--set {key}: {config.PeftType} has no such field (its fields: {string.Join(", ", o.Select(p => p.Key))}).");
            o[key] = SettingValue(value);
        }
        var result = PeftConfig.FromJson(o.ToJsonString(), [], $"--method {Method}");
        result.Validate();
        return result;
    }
}

/// <summary>A Hugging Face BERT folder + WordPiece encoder + (optionally) adapters, as the trainer sees it.</summary>
public sealed class BertTextClassifier : ITrainableClassifier, IDisposable
{
    readonly BertTextEncoder _encoder;
    readonly int _maxLength;
    readonly List<(string Name, Parameter Parameter)> _adapter = [];
    readonly List<(string Name, Parameter Parameter)> _head = [];

    /// <summary>The wrapped model (adapters injected in place when the method is quantum or lora).</summary>
    public BertForSequenceClassification Model { get; }
    /// <summary>The adapter handle; null for head-only and full fine-tuning, and after <see cref="SaveMerged"/>.</summary>
    public PeftModel? Peft { get; private set; }
    public FineTuneSpec Spec { get; }
    public Device Device { get; }
    /// <summary>The Hugging Face folder the base model (and tokenizer) came from.</summary>
    public string ModelFolder { get; }

    /// <summary>Safetensors metadata key of an adapter file that records the pooling head ("mean" or "pooler") it was trained with.</summary>
    public const string HeadMetadataKey = "qpeft_head";

    public BertTextClassifier(string modelFolder, int numLabels, FineTuneSpec spec, int maxLength = 128, Device? device = null)
    {
        if (!FineTuneSpec.Methods.Contains(spec.Method))
            throw new ArgumentException($"unknown method '{spec.Method}' (valid: {string.Join(", ", FineTuneSpec.Methods)}).", nameof(spec));
        if (maxLength < 8) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "max length must be at least 8 tokens.");
        Spec = spec;
        Device = device ?? CPU;
        ModelFolder = modelFolder;
        _maxLength = maxLength;
        _encoder = BertTextEncoder.FromFolder(modelFolder);
        Model = BertForSequenceClassification.FromPretrained(modelFolder, numLabels, seed: spec.Seed);
        Model.to(Device);

        switch (spec.Method)
        {
            case var adapterMethod when spec.IsAdapter:
                // IA3 on BERT: peft's default layers (key, value, output.dense; output.dense scaled on its input).
                var ia3Defaults = spec.Method == "ia3" && spec.Targets == ModuleSelector.AllLinearShorthand;
                var config = (ia3Defaults ? spec with { Targets = "key,value,output.dense" } : spec)
                    .AdapterConfig(modelFolder, "SEQ_CLS", ["classifier"], ia3Defaults ? ["output.dense"] : null);
                Peft = PeftModel.Inject(Model, config);
                // Adapters are created on the CPU; move them with the model.
                Model.to(Device);
                _adapter.AddRange(Peft.NamedAdapterParameters());
                _head.AddRange(Peft.NamedOtherTrainableParameters());
                break;
            case "head":
                foreach (var (name, p) in Model.named_parameters())
                {
                    bool head = name.StartsWith("classifier.", StringComparison.Ordinal);
                    p.requires_grad = head;
                    if (head) _head.Add((name, p));
                }
                break;
            case "full":
                foreach (var (name, p) in Model.named_parameters())
                {
                    p.requires_grad = true;
                    (name.StartsWith("classifier.", StringComparison.Ordinal) ? _head : _adapter).Add((name, p));
                }
                break;
        }
    }

    // A saved classifier, for inference: nothing trains.
    BertTextClassifier(string modelFolder, BertTextEncoder encoder, BertForSequenceClassification model, PeftModel? peft, FineTuneSpec spec, int maxLength, Device device)
    {
        if (maxLength < 8) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "max length must be at least 8 tokens.");
        ModelFolder = modelFolder;
        _encoder = encoder;
        Model = model;
        Peft = peft;
        Spec = spec;
        _maxLength = maxLength;
        Device = device;
        Model.to(Device);
        Model.eval();
    }

    /// <summary>
    /// The label count and pooling head of an adapter folder: the rows of its classifier weight
    /// (base_model.model.classifier.weight, saved as modules_to_save) and its <see cref="HeadMetadataKey"/> metadata
    /// (when absent: "mean", the trainer's head, for our files; "pooler", transformers' head, for files peft wrote). Reads only the file header.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">adapter_config.json or adapter_model.safetensors is missing.</exception>
    /// <exception cref="InvalidDataException">The adapter holds no classifier head, or names an unknown head.</exception>
    public static (int NumLabels, string Head) ReadAdapterHead(string adapterFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterFolder);
        var folder = Path.GetFullPath(adapterFolder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"adapter folder not found: '{folder}' (expected a folder with {PeftAdapterFiles.ConfigFileName} and {PeftAdapterFiles.WeightsFileName}, e.g. DIR/adapter written by qpeft train --out DIR).");
        foreach (var file in new[] { PeftAdapterFiles.ConfigFileName, PeftAdapterFiles.WeightsFileName })
            if (!File.Exists(Path.Combine(folder, file)))
                throw new FileNotFoundException($"'{folder}' has no {file}: expected an adapter folder in peft's layout ({PeftAdapterFiles.ConfigFileName} + {PeftAdapterFiles.WeightsFileName})" +
                    NotAnAdapterHint(folder), Path.Combine(folder, file));
        var weights = Path.Combine(folder, PeftAdapterFiles.WeightsFileName);
        var header = SafetensorsFile.ReadHeader(weights);
        var key = PeftAdapterFiles.Key("classifier", "weight");
        var entry = header.Entries.FirstOrDefault(e => e.Name == key)
            ?? throw new InvalidDataException($"{weights} has no classifier head ('{key}'): expected an adapter saved with modules_to_save = [\"classifier\"], as qpeft train writes.");
        if (entry.Shape.Length != 2 || entry.Shape[0] < 1)
            throw new InvalidDataException($"{weights}: '{key}' has shape [{string.Join(", ", entry.Shape)}], expected [num_labels, hidden_size].");
        // Our files name their head; a file without any of our metadata was written by peft for transformers'
        // BertForSequenceClassification, whose head is the pooler.
        var writtenHere = header.Metadata.ContainsKey(PeftAdapterFiles.ShapesMetadataKey);
        var head = header.Metadata.TryGetValue(HeadMetadataKey, out var h) ? h
            : writtenHere ? BertForSequenceClassification.MeanHead : BertForSequenceClassification.PoolerHead;
        BertForSequenceClassification.RequireKnownHead(head, $"{weights}: metadata {HeadMetadataKey}");
        return ((int)entry.Shape[0], head);
    }

    // What the folder holds instead: a model folder (head-only or full fine-tuning, or a merge) or a train --out folder.
    static string NotAnAdapterHint(string folder)
    {
        if (File.Exists(Path.Combine(folder, "config.json")))
            return $"; it holds config.json, so it is a model folder: evaluate it with --model '{folder}' and no --adapter.";
        foreach (var (sub, option) in new[] { ("adapter", "--adapter"), ("model", "--model") })
            if (Directory.Exists(Path.Combine(folder, sub)))
                return $"; it has a '{sub}' folder (qpeft train --out DIR writes DIR/adapter for adapters, DIR/model for head-only and full fine-tuning): give {option} '{Path.Combine(folder, sub)}'.";
        return ".";
    }

    /// <summary>
    /// A base model folder plus an adapter folder written by <see cref="SaveAdapter"/> (or <c>qpeft train</c>), for
    /// inference: the label count and head come from the adapter (<see cref="ReadAdapterHead"/>), the classifier
    /// weights from its modules_to_save.
    /// </summary>
    /// <exception cref="InvalidDataException">The adapter targets modules the model lacks, or its shapes differ.</exception>
    public static BertTextClassifier FromAdapter(string modelFolder, string adapterFolder, int maxLength = 128, Device? device = null, ICollection<string>? warnings = null)
    {
        var (numLabels, head) = ReadAdapterHead(adapterFolder);
        var encoder = BertTextEncoder.FromFolder(modelFolder);
        // The base folder has no (or another) classifier; the adapter's replaces it, so the "newly initialised" note is noise.
        var (model, _) = HfBertLoader.LoadForSequenceClassification(modelFolder, numLabels, head,
            log: m => { if (!m.StartsWith("note:", StringComparison.Ordinal)) Console.Error.WriteLine(m); });
        try
        {
            PeftModel peft;
            try { peft = PeftModel.Load(model, adapterFolder, warnings: warnings); }
            catch (Exception e) when (e is InvalidDataException or ArgumentException)
            {
                var trainedOn = PeftConfig.Load(Path.Combine(adapterFolder, PeftAdapterFiles.ConfigFileName), []).BaseModelNameOrPath;
                throw new InvalidDataException($"adapter '{Path.GetFullPath(adapterFolder)}' does not fit model '{modelFolder}': {e.Message} " +
                    $"Expected the model the adapter was trained on{(trainedOn is null ? "" : $" (its adapter_config.json names '{trainedOn}')")}.", e);
            }
            var spec = new FineTuneSpec { Method = FineTuneSpec.MethodOf(peft.ActiveConfig.PeftType) };
            return new BertTextClassifier(modelFolder, encoder, model, peft, spec, maxLength, device ?? CPU);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>A sequence-classification folder (e.g. written by <see cref="SaveMerged"/>), for inference; label count and head come from its config.json.</summary>
    public static BertTextClassifier FromClassifierFolder(string folder, int maxLength = 128, Device? device = null)
    {
        var encoder = BertTextEncoder.FromFolder(folder);
        var model = HfBertLoader.LoadClassifier(folder);
        return new BertTextClassifier(folder, encoder, model, null, new FineTuneSpec { Method = "full" }, maxLength, device ?? CPU);
    }

    /// <summary>Saves the adapter (with the classifier as modules_to_save) in peft's layout, recording the head in the file's metadata.</summary>
    public void SaveAdapter(string directory)
    {
        var peft = Peft ?? throw new InvalidOperationException($"method '{Spec.Method}' has no adapter to save; write the whole model with SaveMerged instead.");
        peft.Save(directory, metadata: new Dictionary<string, string> { [HeadMetadataKey] = Model.Head });
    }

    /// <summary>
    /// Merges the adapter into the base weights (in place: this classifier then holds the plain merged model and
    /// <see cref="Peft"/> becomes null) and writes a Hugging Face sequence-classification folder with the tokenizer
    /// files of <see cref="ModelFolder"/>. The folder is built under a temporary name and renamed into place.
    /// </summary>
    /// <exception cref="IOException"><paramref name="folder"/> is not empty and <paramref name="overwrite"/> is false.</exception>
    public void SaveMerged(string folder, bool overwrite = false)
    {
        AtomicFolder.EnsureWritable(folder, overwrite);
        if (Peft is { } peft)
        {
            peft.MergeAndUnload();
            Peft = null;
            _adapter.Clear();
        }
        AtomicFolder.Write(folder, temp => HfBertLoader.Save(temp, Model, copyTokenizerFrom: ModelFolder), overwrite);
    }

    public IReadOnlyList<Parameter> AdapterParameters => _adapter.Select(p => p.Parameter).ToList();
    public IReadOnlyList<Parameter> HeadParameters => _head.Select(p => p.Parameter).ToList();

    /// <summary>Adapter numbers (or backbone numbers for full fine-tuning) and head numbers.</summary>
    public (long Adapter, long Head, long Total) Counts()
    {
        long total = Model.parameters().Sum(p => p.numel());
        return (_adapter.Sum(p => p.Parameter.numel()), _head.Sum(p => p.Parameter.numel()), total);
    }

    public Tensor Forward(IReadOnlyList<TextExample> batch)
    {
        var texts = batch.Select(e => e.Text).ToList();
        var pairs = batch.Any(e => e.TextPair is not null) ? batch.Select(e => e.TextPair ?? "").ToList() : null;
        using var encoded = _encoder.Encode(texts, pairs, _maxLength, Device);
        return Model.forward(encoded.InputIds, encoded.AttentionMask, encoded.TokenTypeIds);
    }

    public void SetTraining(bool training) => Model.train(training);

    public IAdapterTrainingHook? CreateTrainingHook() => Peft?.CreateTrainingHook();

    public IReadOnlyDictionary<string, Tensor> GetTrainableState() =>
        _adapter.Concat(_head).ToDictionary(p => p.Name, p => (Tensor)p.Parameter);

    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state) => TrainableState.Load(_adapter.Concat(_head), state);

    public void Dispose() => Model.Dispose();
}
