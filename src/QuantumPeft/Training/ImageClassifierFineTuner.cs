using QuantumPeft.Data;
using QuantumPeft.Data.Images;
using QuantumPeft.Formats;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Vision;
using QuantumPeft.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>
/// An image classifier (any <see cref="IImageClassifier"/>: ViT, ResNet, ...) with its image processor and, for the adapter
/// methods, its adapter (modules_to_save = the model's head): what the trainer, <c>qpeft eval</c>, <c>merge</c> and <c>logits</c> use.
/// </summary>
public sealed class ImageClassifierFineTuner : IDisposable
{
    readonly List<(string Name, Parameter Parameter)> _adapter = [];
    readonly List<(string Name, Parameter Parameter)> _head = [];

    /// <summary>Safetensors metadata key of an adapter file that records the head's class count.</summary>
    public const string NumLabelsMetadataKey = "qpeft_num_labels";

    /// <summary>The model (adapters injected in place).</summary>
    public IImageClassifier Model { get; }

    /// <summary>The adapter handle; null for head-only and full fine-tuning, and after <see cref="SaveMerged"/>.</summary>
    public PeftModel? Peft { get; private set; }

    /// <summary>What trains.</summary>
    public FineTuneSpec Spec { get; }

    /// <summary>Turns decoded images into the model's pixel values.</summary>
    public ImageProcessor Processor { get; }

    /// <summary>The base model folder.</summary>
    public string ModelFolder { get; }

    /// <summary>The model's device.</summary>
    public Device Device { get; }

    /// <summary>
    /// Loads <paramref name="modelFolder"/> with a head of <paramref name="numLabels"/> classes (a new one when the checkpoint's
    /// differs) and prepares <paramref name="spec"/>'s method: an adapter (quantum, lora, the baselines) with the head as
    /// modules_to_save, the head alone, or every weight (full). Images are processed by <paramref name="processor"/>, by default
    /// <see cref="ImageProcessor.ForModel"/> of the folder (its preprocessor_config.json, else defaults at the model's image size),
    /// resized to <paramref name="imageSize"/> when given.
    /// </summary>
    public ImageClassifierFineTuner(string modelFolder, int numLabels, FineTuneSpec spec, Device? device = null, int? imageSize = null,
        ImageProcessor? processor = null, Action<string>? log = null)
    {
        if (!FineTuneSpec.Methods.Contains(spec.Method))
            throw new ArgumentException($"unknown method '{spec.Method}' (valid: {string.Join(", ", FineTuneSpec.Methods)}).", nameof(spec));
        if (numLabels < 2) throw new ArgumentOutOfRangeException(nameof(numLabels), numLabels, "image classification needs at least 2 classes.");
        Spec = spec;
        ModelFolder = modelFolder;
        Device = device ?? CPU;
        Model = ImageClassifiers.Load(modelFolder, new ImageLoadOptions(numLabels, spec.Seed, Device, log));
        try
        {
            Processor = processor ?? ImageProcessor.ForModel([modelFolder], imageSize, Model.ImageSize, log ?? Console.Error.WriteLine);
            Prepare(modelFolder);
        }
        catch { Model.Dispose(); throw; }
    }

    void Prepare(string modelFolder)
    {
        var heads = Model.HeadModules;
        bool IsHead(string name) => heads.Any(h => name.StartsWith(h + ".", StringComparison.Ordinal));
        if (Spec.IsAdapter)
        {
            // peft has no image task type: its image classification recipes leave task_type unset.
            var config = Spec.AdapterConfig(modelFolder, null!, heads);
            Peft = PeftModel.Inject(Model.Module, config);
            // Adapters are created on the CPU; move them with the model.
            Model.Module.to(Device);
            _adapter.AddRange(Peft.NamedAdapterParameters());
            _head.AddRange(Peft.NamedOtherTrainableParameters());
            return;
        }
        foreach (var (name, p) in Tuners.ModuleTree.DistinctParameters(Model.Module))
        {
            bool head = IsHead(name);
            p.requires_grad = head || Spec.Method == "full";
            if (head) _head.Add((name, p));
            else if (Spec.Method == "full") _adapter.Add((name, p));
        }
        if (_head.Count == 0)
            throw new InvalidOperationException($"'{modelFolder}': the model names head modules {string.Join(", ", heads)}, but no parameter lies under them.");
    }

    // A saved classifier, for inference: nothing trains.
    ImageClassifierFineTuner(string modelFolder, IImageClassifier model, PeftModel? peft, FineTuneSpec spec, ImageProcessor processor, Device device)
    {
        ModelFolder = modelFolder;
        Model = model;
        Peft = peft;
        Spec = spec;
        Processor = processor;
        Device = device;
        Model.Module.to(Device);
        Model.Module.eval();
    }

    /// <summary>
    /// The class count of an adapter folder's head: its <see cref="NumLabelsMetadataKey"/> metadata, else the rows of the last
    /// 2-D weight of its modules_to_save (base_model.model.classifier.weight for ViT). Reads only the file header.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">adapter_config.json or adapter_model.safetensors is missing.</exception>
    /// <exception cref="InvalidDataException">The adapter holds no head.</exception>
    public static int ReadAdapterNumLabels(string adapterFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterFolder);
        var folder = Path.GetFullPath(adapterFolder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"adapter folder not found: '{folder}' (expected a folder with {PeftAdapterFiles.ConfigFileName} and {PeftAdapterFiles.WeightsFileName}, e.g. DIR/adapter written by qpeft train --out DIR).");
        foreach (var file in new[] { PeftAdapterFiles.ConfigFileName, PeftAdapterFiles.WeightsFileName })
            if (!File.Exists(Path.Combine(folder, file)))
                throw new FileNotFoundException($"'{folder}' has no {file}: expected an adapter folder in peft's layout ({PeftAdapterFiles.ConfigFileName} + {PeftAdapterFiles.WeightsFileName})" +
                    (File.Exists(Path.Combine(folder, "config.json")) ? $"; it holds config.json, so it is a model folder: give it with --model '{folder}' and no --adapter." : "."),
                    Path.Combine(folder, file));
        var weights = Path.Combine(folder, PeftAdapterFiles.WeightsFileName);
        var header = SafetensorsFile.ReadHeader(weights);
        if (header.Metadata.TryGetValue(NumLabelsMetadataKey, out var n) && int.TryParse(n, out var count) && count > 0) return count;
        var saved = PeftConfig.Load(Path.Combine(folder, PeftAdapterFiles.ConfigFileName), []).ModulesToSave ?? [];
        var head = header.Entries
            .Where(e => e.Shape.Length == 2 && e.Name.EndsWith(".weight", StringComparison.Ordinal)
                && saved.Any(m => e.Name.StartsWith(PeftAdapterFiles.KeyPrefix + m + ".", StringComparison.Ordinal)))
            .OrderBy(e => e.Name, StringComparer.Ordinal).LastOrDefault()
            ?? throw new InvalidDataException($"{weights} has no classifier head: expected an adapter saved with modules_to_save = the model's head (e.g. [\"classifier\"]), as qpeft train writes.");
        return (int)head.Shape[0];
    }

    /// <summary>
    /// A base model folder plus an adapter folder written by <see cref="SaveAdapter"/> (or peft), for inference: the head's class
    /// count from the adapter, the head's weights from its modules_to_save.
    /// </summary>
    /// <exception cref="InvalidDataException">The adapter does not fit the model (the message names both).</exception>
    /// <remarks>The processor: <paramref name="processor"/>, else the adapter folder's preprocessor_config.json (the one training used), else the model's, else defaults.</remarks>
    public static ImageClassifierFineTuner FromAdapter(string modelFolder, string adapterFolder, Device? device = null, int? imageSize = null,
        ImageProcessor? processor = null, ICollection<string>? warnings = null)
    {
        var numLabels = ReadAdapterNumLabels(adapterFolder);
        // The base folder has no (or another) head; the adapter's replaces it, so the "newly initialised" notes are noise.
        var model = ImageClassifiers.Load(modelFolder, new ImageLoadOptions(numLabels, Log: m => { if (!m.StartsWith("note:", StringComparison.Ordinal)) Console.Error.WriteLine(m); }));
        try
        {
            PeftModel peft;
            try { peft = PeftModel.Load(model.Module, adapterFolder, warnings: warnings); }
            catch (Exception e) when (e is InvalidDataException or ArgumentException)
            {
                var trainedOn = PeftConfig.Load(Path.Combine(adapterFolder, PeftAdapterFiles.ConfigFileName), []).BaseModelNameOrPath;
                throw new InvalidDataException($"adapter '{Path.GetFullPath(adapterFolder)}' does not fit model '{modelFolder}': {e.Message} " +
                    $"Expected the model the adapter was trained on{(trainedOn is null ? "" : $" (its adapter_config.json names '{trainedOn}')")}.", e);
            }
            var spec = new FineTuneSpec { Method = FineTuneSpec.MethodOf(peft.ActiveConfig.PeftType) };
            processor ??= ImageProcessor.ForModel([adapterFolder, modelFolder], imageSize, model.ImageSize, Console.Error.WriteLine);
            return new ImageClassifierFineTuner(modelFolder, model, peft, spec, processor, device ?? CPU);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>A classifier folder (its own head, e.g. written by <see cref="SaveMerged"/>), for inference.</summary>
    public static ImageClassifierFineTuner FromModelFolder(string folder, Device? device = null, int? imageSize = null, ImageProcessor? processor = null)
    {
        var model = ImageClassifiers.Load(folder, new ImageLoadOptions());
        processor ??= ImageProcessor.ForModel([folder], imageSize, model.ImageSize, Console.Error.WriteLine);
        return new ImageClassifierFineTuner(folder, model, null, new FineTuneSpec { Method = "full" }, processor, device ?? CPU);
    }

    /// <summary>Adapter (or backbone, for full fine-tuning) parameters: the first learning-rate group.</summary>
    public IReadOnlyList<Parameter> AdapterParameters => _adapter.Select(p => p.Parameter).ToList();

    /// <summary>Head parameters: the second learning-rate group.</summary>
    public IReadOnlyList<Parameter> HeadParameters => _head.Select(p => p.Parameter).ToList();

    /// <summary>The adapter's scale parameters (Quantum-PEFT's lambda), for a learning rate of their own.</summary>
    public IReadOnlyList<Parameter> ScaleParameters => Peft?.NamedScaleParameters().Select(p => p.Parameter).ToList() ?? [];

    /// <summary>Adapter numbers (backbone numbers for full fine-tuning), head numbers and all numbers of the model.</summary>
    public (long Adapter, long Head, long Total) Counts() =>
        (_adapter.Sum(p => p.Parameter.numel()), _head.Sum(p => p.Parameter.numel()), Tuners.ModuleTree.CountParameters(Model.Module));

    /// <summary>The processed pixel values of a batch, on the model's device.</summary>
    public Tensor PixelValues(IReadOnlyList<ImageExample> batch) => Processor.Process(batch, Model.NumChannels, Device);

    /// <summary>Logits [B, num_labels] of a batch (honours train/eval mode).</summary>
    public Tensor Logits(IReadOnlyList<ImageExample> batch)
    {
        using var pixels = PixelValues(batch);
        return Model.Logits(pixels);
    }

    /// <summary>Accuracy and mean cross-entropy on <paramref name="examples"/> (eval mode, no gradients; the model is left in eval mode).</summary>
    public Dictionary<string, double> Evaluate(IReadOnlyList<ImageExample> examples, int batchSize = ClassifierEvaluation.DefaultBatchSize)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1.");
        if (examples.Count == 0) throw new ArgumentException("no examples to evaluate.", nameof(examples));
        var predictions = new float[examples.Count];
        double loss = 0;
        SetTraining(false);
        using (no_grad())
            for (int start = 0; start < examples.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var batch = examples.Skip(start).Take(batchSize).ToList();
                var logits = Logits(batch);
                CheckLogits(logits, batch.Count);
                var labels = tensor(batch.Select(e => (long)e.Label).ToArray(), device: logits.device);
                loss += nn.functional.cross_entropy(logits.to_type(ScalarType.Float32), labels, reduction: nn.Reduction.Sum).item<float>();
                logits.argmax(-1).to_type(ScalarType.Float32).cpu().data<float>().ToArray().CopyTo(predictions, start);
            }
        var metrics = Metrics.Compute(["accuracy"], predictions, examples.Select(e => (float)e.Label).ToArray());
        metrics["loss"] = loss / examples.Count;
        return metrics;
    }

    /// <summary>Throws when logits are not [batch, num_labels].</summary>
    internal void CheckLogits(Tensor logits, int batch)
    {
        if (logits.ndim != 2 || logits.shape[0] != batch || logits.shape[1] != Model.NumLabels)
            throw new InvalidOperationException($"The {Model.ModelType} model returned logits of shape [{string.Join(", ", logits.shape)}]; expected [{batch}, {Model.NumLabels}].");
    }

    /// <summary>Switches dropout and similar layers.</summary>
    public void SetTraining(bool training) => Model.Module.train(training);

    /// <summary>The adapter method's training hook (AdaLoRA's allocator), or null.</summary>
    public IAdapterTrainingHook? CreateTrainingHook() => Peft?.CreateTrainingHook();

    /// <summary>The trainable tensors by name (checkpoints, keep-best).</summary>
    public IReadOnlyDictionary<string, Tensor> GetTrainableState() => _adapter.Concat(_head).ToDictionary(p => p.Name, p => (Tensor)p.Parameter);

    /// <summary>Copies a state of <see cref="GetTrainableState"/>'s names into the parameters.</summary>
    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state) => TrainableState.Load(_adapter.Concat(_head), state);

    /// <summary>
    /// Saves the adapter with the head (modules_to_save) in peft's layout, the head's class count in the file's metadata, and the
    /// image processor the run used (preprocessor_config.json, which peft ignores and eval and logits read).
    /// </summary>
    public void SaveAdapter(string directory)
    {
        var peft = Peft ?? throw new InvalidOperationException($"method '{Spec.Method}' has no adapter to save; write the whole model with SaveMerged instead.");
        peft.Save(directory, metadata: new Dictionary<string, string> { [NumLabelsMetadataKey] = Model.NumLabels.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        Processor.Save(directory);
    }

    /// <summary>
    /// Merges the adapter into the base weights (in place: <see cref="Peft"/> becomes null) and writes a Hugging Face folder
    /// (<see cref="IImageClassifier.Save"/>) with the run's preprocessor_config.json, built under a temporary name and renamed.
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
        AtomicFolder.Write(folder, temp =>
        {
            Model.Save(temp, ModelFolder);
            Processor.Save(temp);
        }, overwrite);
    }

    public void Dispose() => Model.Dispose();
}
