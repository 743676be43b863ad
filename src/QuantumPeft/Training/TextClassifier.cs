using QuantumPeft.Models.Bert;
using QuantumPeft.Data;
using QuantumPeft.Formats;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>A Hugging Face text-encoder folder (BERT, RoBERTa, ... by model_type) + its tokenizer + (optionally) adapters, as the trainer sees it.</summary>
/// <remarks>The architecture comes from <see cref="TextEncoders.For"/>; every method, target set and file layout is the same for all of them.</remarks>
public sealed class TextClassifier : ITrainableClassifier, IDisposable
{
    // Read on first use: a model folder without tokenizer files still loads, trains on token ids and saves (bench step on random weights).
    readonly Lazy<TextBatchEncoder> _encode;
    readonly int _maxLength;
    readonly List<(string Name, Parameter Parameter)> _adapter = [];
    readonly List<(string Name, Parameter Parameter)> _head = [];

    /// <summary>The wrapped model (adapters injected in place for the adapter methods): input ids, attention mask, token type ids to logits.</summary>
    public nn.Module<Tensor, Tensor?, Tensor?, Tensor> Model { get; }
    /// <summary>The architecture of <see cref="ModelFolder"/>.</summary>
    public TextEncoderArchitecture Architecture { get; }
    /// <summary>Outputs of the head; 1 means regression.</summary>
    public int NumLabels { get; }
    /// <summary>The head (BERT: "mean" or "pooler"; RoBERTa: "classifier").</summary>
    public string Head { get; }
    /// <summary>The adapter handle; null for head-only and full fine-tuning, and after <see cref="SaveMerged"/>.</summary>
    public PeftModel? Peft { get; private set; }
    public FineTuneSpec Spec { get; }
    public Device Device { get; }
    /// <summary>The Hugging Face folder the base model (and tokenizer) came from.</summary>
    public string ModelFolder { get; }

    /// <summary>Safetensors metadata key of an adapter file that records the head ("mean", "pooler", "classifier") it was trained with.</summary>
    public const string HeadMetadataKey = "qpeft_head";

    public TextClassifier(string modelFolder, int numLabels, FineTuneSpec spec, int maxLength = 128, Device? device = null)
    {
        if (!FineTuneSpec.Methods.Contains(spec.Method))
            throw new ArgumentException($"unknown method '{spec.Method}' (valid: {string.Join(", ", FineTuneSpec.Methods)}).", nameof(spec));
        if (maxLength < 8) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "max length must be at least 8 tokens.");
        Spec = spec;
        Device = device ?? CPU;
        ModelFolder = modelFolder;
        Architecture = TextEncoders.For(modelFolder);
        NumLabels = numLabels;
        Head = spec.Head ?? Architecture.DefaultHead;
        if (!Architecture.Heads.Contains(Head))
            throw new ArgumentException($"head '{Head}' is not one of {Architecture.Name}'s heads (valid: {string.Join(", ", Architecture.Heads)}).", nameof(spec));
        if (Head == BertForSequenceClassification.MeanHead && spec.Method is "head" or "full")
            throw new ArgumentException($"--method {spec.Method} writes a plain transformers classifier folder, and transformers has no mean-pooling head " +
                "(its BertForSequenceClassification classifies the pooled [CLS] token), so that folder would predict differently there. " +
                "Use --head pooler, or an adapter method (its adapter keeps the head).", nameof(spec));
        _maxLength = maxLength;
        _encode = new(() => Architecture.Tokenizer(modelFolder));
        Model = Architecture.Load(modelFolder, numLabels, Head, spec.Seed, null).Model;
        Model.to(Device);

        bool InHead(string name) => Architecture.HeadModules.Any(h => name.StartsWith(h + ".", StringComparison.Ordinal));
        switch (spec.Method)
        {
            case var adapterMethod when spec.IsAdapter:
                // IA3: peft's default layers of the architecture (BERT, RoBERTa: key, value, output.dense; output.dense scaled on its input).
                var ia3Defaults = spec.Method == "ia3" && spec.Targets == ModuleSelector.AllLinearShorthand;
                var targets = ia3Defaults ? Architecture.Ia3Targets
                    : spec.Targets == TextEncoders.PaperTargetsShorthand ? Architecture.PaperTargets : spec.Targets;
                var config = (spec with { Targets = targets })
                    .AdapterConfig(modelFolder, "SEQ_CLS", Architecture.HeadModules, ia3Defaults ? Architecture.Ia3Feedforward : null);
                Peft = PeftModel.Inject(Model, config);
                // Adapters are created on the CPU; move them with the model.
                Model.to(Device);
                _adapter.AddRange(Peft.NamedAdapterParameters());
                _head.AddRange(Peft.NamedOtherTrainableParameters());
                break;
            case "head":
                foreach (var (name, p) in Model.named_parameters())
                {
                    bool head = InHead(name);
                    p.requires_grad = head;
                    if (head) _head.Add((name, p));
                }
                break;
            case "full":
                foreach (var (name, p) in Model.named_parameters())
                {
                    p.requires_grad = true;
                    (InHead(name) ? _head : _adapter).Add((name, p));
                }
                break;
        }
    }

    // A saved classifier, for inference: nothing trains.
    TextClassifier(string modelFolder, TextEncoderArchitecture architecture, nn.Module<Tensor, Tensor?, Tensor?, Tensor> model, int numLabels, string head,
        PeftModel? peft, FineTuneSpec spec, int maxLength, Device device)
    {
        if (maxLength < 8) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "max length must be at least 8 tokens.");
        ModelFolder = modelFolder;
        Architecture = architecture;
        _encode = new(() => architecture.Tokenizer(modelFolder));
        Model = model;
        NumLabels = numLabels;
        Head = head;
        Peft = peft;
        Spec = spec;
        _maxLength = maxLength;
        Device = device;
        Model.to(Device);
        Model.eval();
    }

    /// <summary>
    /// The label count and head of an adapter folder: the rows of its labels layer (BERT: base_model.model.classifier.weight;
    /// RoBERTa: base_model.model.classifier.out_proj.weight, saved as modules_to_save) and its <see cref="HeadMetadataKey"/> metadata
    /// (when absent: transformers' head, BERT's "pooler", as for a config.json without one). Reads only the file
    /// header. The architecture is that of <paramref name="modelFolder"/> (the base model), BERT when it is not given.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">adapter_config.json or adapter_model.safetensors is missing.</exception>
    /// <exception cref="InvalidDataException">The adapter holds no classifier head, or names an unknown head.</exception>
    public static (int NumLabels, string Head) ReadAdapterHead(string adapterFolder, string? modelFolder = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterFolder);
        var arch = modelFolder is null ? TextEncoders.Bert : TextEncoders.For(modelFolder);
        var folder = Path.GetFullPath(adapterFolder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"adapter folder not found: '{folder}' (expected a folder with {PeftAdapterFiles.ConfigFileName} and {PeftAdapterFiles.WeightsFileName}, e.g. DIR/adapter written by qpeft train --out DIR).");
        foreach (var file in new[] { PeftAdapterFiles.ConfigFileName, PeftAdapterFiles.WeightsFileName })
            if (!File.Exists(Path.Combine(folder, file)))
                throw new FileNotFoundException($"'{folder}' has no {file}: expected an adapter folder in peft's layout ({PeftAdapterFiles.ConfigFileName} + {PeftAdapterFiles.WeightsFileName})" +
                    NotAnAdapterHint(folder), Path.Combine(folder, file));
        var weights = Path.Combine(folder, PeftAdapterFiles.WeightsFileName);
        var header = SafetensorsFile.ReadHeader(weights);
        var key = PeftAdapterFiles.Key(arch.LabelsModule, "weight");
        var entry = header.Entries.FirstOrDefault(e => e.Name == key)
            ?? throw new InvalidDataException($"{weights} has no {arch.Name} classifier head ('{key}'): expected an adapter saved with modules_to_save = " +
                $"[{string.Join(", ", arch.HeadModules.Select(m => $"\"{m}\""))}], as qpeft train writes for a {arch.Name} model.");
        if (entry.Shape.Length != 2 || entry.Shape[0] < 1)
            throw new InvalidDataException($"{weights}: '{key}' has shape [{string.Join(", ", entry.Shape)}], expected [num_labels, hidden_size].");
        // Our files name their head; a file without any of our metadata was written by peft for transformers' model, whose
        // head (BERT: the pooler) is the architecture's foreign head.
        // One rule for adapters and model folders: without a recorded head, transformers' head (BERT: the pooler).
        var head = header.Metadata.TryGetValue(HeadMetadataKey, out var h) ? h : arch.ForeignHead;
        if (!arch.Heads.Contains(head))
            throw new InvalidDataException($"{weights}: metadata {HeadMetadataKey} '{head}' is not a known head (valid: {string.Join(", ", arch.Heads)}).");
        return ((int)entry.Shape[0], head);
    }

    /// <summary>True when the adapter folder holds the architecture's classifier (modules_to_save), false for an encoder-only adapter (peft's FEATURE_EXTRACTION).</summary>
    public static bool AdapterHasHead(string adapterFolder, string modelFolder)
    {
        var arch = TextEncoders.For(modelFolder);
        var weights = Path.Combine(Path.GetFullPath(adapterFolder), PeftAdapterFiles.WeightsFileName);
        if (!File.Exists(weights)) ReadAdapterHead(adapterFolder, modelFolder);   // the full message for a folder that is no adapter
        var key = PeftAdapterFiles.Key(arch.LabelsModule, "weight");
        return SafetensorsFile.ReadHeader(weights).Entries.Any(e => e.Name == key);
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
    public static TextClassifier FromAdapter(string modelFolder, string adapterFolder, int maxLength = 128, Device? device = null, ICollection<string>? warnings = null)
    {
        var arch = TextEncoders.For(modelFolder);
        var (numLabels, head) = ReadAdapterHead(adapterFolder, modelFolder);
        // The base folder has no (or another) classifier; the adapter's replaces it, so the "newly initialised" note is noise.
        var (model, _) = arch.Load(modelFolder, numLabels, head, 0, WarningsOnly);
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
            return new TextClassifier(modelFolder, arch, model, numLabels, head, peft, spec, maxLength, device ?? CPU);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>A sequence-classification folder (e.g. written by <see cref="SaveMerged"/>), for inference; label count and head come from its config.json.</summary>
    public static TextClassifier FromClassifierFolder(string folder, int maxLength = 128, Device? device = null)
    {
        var arch = TextEncoders.For(folder);
        var (model, numLabels, head) = LoadSavedClassifier(folder);
        return new TextClassifier(folder, arch, model, numLabels, head, null, new FineTuneSpec { Method = "full" }, maxLength, device ?? CPU);
    }

    /// <summary>
    /// The classifier a sequence-classification folder holds (e.g. written by qpeft merge), with the label count and head its
    /// config.json records; its classifier weights must be in the folder.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder is a base model (no labels in config.json) or lacks classifier weights.</exception>
    public static (nn.Module<Tensor, Tensor?, Tensor?, Tensor> Model, int NumLabels, string Head) LoadSavedClassifier(string folder)
    {
        var arch = TextEncoders.For(folder);
        var (numLabels, head) = arch.ReadHead(folder)
            ?? throw new InvalidDataException($"{HfCheckpoint.ConfigPath(folder)} describes a base model (no num_labels, id2label or *ForSequenceClassification): " +
                "expected a sequence-classification folder (e.g. written by qpeft merge); for a base model, give the adapter that holds the classifier.");
        var (model, report) = arch.Load(folder, numLabels, head, 0, WarningsOnly);
        if (report.NewlyInitialized.Count > 0 || report.Missing.Count > 0)
        {
            model.Dispose();
            var absent = report.NewlyInitialized.Concat(report.Missing).ToList();
            throw new InvalidDataException($"{folder}: config.json describes a {numLabels}-label '{head}' classifier but the weights lack " +
                $"{string.Join(", ", absent.Take(4))}{(absent.Count > 4 ? ", ..." : "")}: expected a folder with a trained head (e.g. written by qpeft merge).");
        }
        return (model, numLabels, head);
    }

    // Load notes ("newly initialised") are expected where a saved head replaces the folder's; warnings still go to stderr.
    static void WarningsOnly(string message)
    {
        if (!message.StartsWith("note:", StringComparison.Ordinal)) Console.Error.WriteLine(message);
    }

    /// <summary>Saves the adapter (with the head as modules_to_save) in peft's layout, recording the head in the file's metadata.</summary>
    public void SaveAdapter(string directory)
    {
        var peft = Peft ?? throw new InvalidOperationException($"method '{Spec.Method}' has no adapter to save; write the whole model with SaveMerged instead.");
        peft.Save(directory, metadata: new Dictionary<string, string> { [HeadMetadataKey] = Head });
    }

    /// <summary>
    /// Merges the adapter into the base weights (in place: this classifier then holds the plain merged model and
    /// <see cref="Peft"/> becomes null) and writes a Hugging Face sequence-classification folder with the tokenizer
    /// files of <see cref="ModelFolder"/>. The folder is built under a temporary name and renamed into place.
    /// </summary>
    /// <exception cref="IOException"><paramref name="folder"/> is not empty and <paramref name="overwrite"/> is false.</exception>
    public void SaveMerged(string folder, bool overwrite = false)
    {
        if (Head == BertForSequenceClassification.MeanHead)
            throw new InvalidOperationException("this classifier mean-pools the last hidden state, and transformers' BertForSequenceClassification has no such head " +
                "(it classifies the pooled [CLS] token): a merged folder would predict differently in transformers, so none is written. " +
                "Keep the adapter (qpeft eval --adapter applies it with its head), or train with --head pooler.");
        AtomicFolder.EnsureWritable(folder, overwrite);
        if (Peft is { } peft)
        {
            peft.MergeAndUnload();
            Peft = null;
            _adapter.Clear();
        }
        AtomicFolder.Write(folder, temp => Architecture.Save(temp, Model, Head, ModelFolder), overwrite);
    }

    public IReadOnlyList<Parameter> AdapterParameters => _adapter.Select(p => p.Parameter).ToList();
    public IReadOnlyList<Parameter> HeadParameters => _head.Select(p => p.Parameter).ToList();

    /// <summary>The adapter's scale parameters (Quantum-PEFT's lambda), for a learning rate of their own.</summary>
    public IReadOnlyList<Parameter> ScaleParameters => Peft?.NamedScaleParameters().Select(p => p.Parameter).ToList() ?? [];

    /// <summary>Adapter numbers (or backbone numbers for full fine-tuning) and head numbers.</summary>
    public (long Adapter, long Head, long Total) Counts()
    {
        long total = Tuners.ModuleTree.CountParameters(Model);
        return (_adapter.Sum(p => p.Parameter.numel()), _head.Sum(p => p.Parameter.numel()), total);
    }

    public Tensor Forward(IReadOnlyList<TextExample> batch)
    {
        var texts = batch.Select(e => e.Text).ToList();
        int withPair = batch.Count(e => e.TextPair is not null);
        // A pair task's model reads both texts in every row; a row without its second text would be classified on half its input.
        if (withPair != 0 && withPair != batch.Count)
            throw new ArgumentException($"the batch mixes sentence pairs and single sentences ({withPair} of {batch.Count} rows have a second text): " +
                "a pair task (MRPC, STS-B, QQP, MNLI, QNLI, RTE) needs both texts in every example.", nameof(batch));
        var pairs = withPair > 0 ? batch.Select(e => e.TextPair!).ToList() : null;
        using var encoded = _encode.Value(texts, pairs, _maxLength, Device);
        return Model.forward(encoded.InputIds, encoded.AttentionMask, encoded.TokenTypeIds);
    }

    public void SetTraining(bool training) => Model.train(training);

    public IAdapterTrainingHook? CreateTrainingHook() => Peft?.CreateTrainingHook();

    public IReadOnlyDictionary<string, Tensor> GetTrainableState() =>
        _adapter.Concat(_head).ToDictionary(p => p.Name, p => (Tensor)p.Parameter);

    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state) => TrainableState.Load(_adapter.Concat(_head), state);

    public void Dispose() => Model.Dispose();
}
