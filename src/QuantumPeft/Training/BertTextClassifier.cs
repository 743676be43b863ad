using QuantumPeft.Data;
using QuantumPeft.Models.Bert;
using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>How a BERT classifier is fine-tuned: which numbers train.</summary>
public sealed record FineTuneSpec
{
    /// <summary>quantum | lora | head | full.</summary>
    public string Method { get; init; } = "quantum";
    /// <summary>Rank K (quantum) or r (LoRA).</summary>
    public int Rank { get; init; } = 4;
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

    public static readonly string[] Methods = ["quantum", "lora", "head", "full"];
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
    /// <summary>The adapter handle; null for head-only and full fine-tuning.</summary>
    public PeftModel? Peft { get; }
    public FineTuneSpec Spec { get; }
    public Device Device { get; }

    public BertTextClassifier(string modelFolder, int numLabels, FineTuneSpec spec, int maxLength = 128, Device? device = null)
    {
        if (!FineTuneSpec.Methods.Contains(spec.Method))
            throw new ArgumentException($"unknown method '{spec.Method}' (valid: {string.Join(", ", FineTuneSpec.Methods)}).", nameof(spec));
        if (maxLength < 8) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "max length must be at least 8 tokens.");
        Spec = spec;
        Device = device ?? CPU;
        _maxLength = maxLength;
        _encoder = BertTextEncoder.FromFolder(modelFolder);
        Model = BertForSequenceClassification.FromPretrained(modelFolder, numLabels, seed: spec.Seed);
        Model.to(Device);

        switch (spec.Method)
        {
            case "quantum":
            case "lora":
                PeftConfig config = spec.Method == "quantum"
                    ? new QuantumPeftConfig
                    {
                        R = spec.Rank, Alpha = spec.Alpha ?? 2.0 * spec.Rank, Seed = spec.Seed,
                        StiefelU = new StiefelMapOptions { Kind = StiefelMaps.Parse(spec.Map), Layers = spec.Layers, InitScale = spec.InitScale },
                        StiefelV = new StiefelMapOptions { Kind = StiefelMaps.Parse(spec.Map), Layers = spec.Layers, InitScale = spec.InitScale },
                        TargetModules = ModuleSelector.Parse(spec.Targets), ModulesToSave = ["classifier"],
                        BaseModelNameOrPath = modelFolder, TaskType = "SEQ_CLS",
                    }
                    : new LoraConfig
                    {
                        R = spec.Rank, LoraAlpha = spec.Alpha ?? 2.0 * spec.Rank,
                        TargetModules = ModuleSelector.Parse(spec.Targets), ModulesToSave = ["classifier"],
                        BaseModelNameOrPath = modelFolder, TaskType = "SEQ_CLS",
                    };
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

    public IReadOnlyDictionary<string, Tensor> GetTrainableState() =>
        _adapter.Concat(_head).ToDictionary(p => p.Name, p => (Tensor)p.Parameter);

    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state)
    {
        using var _ = no_grad();
        foreach (var (name, p) in _adapter.Concat(_head))
        {
            if (!state.TryGetValue(name, out var t))
                throw new InvalidDataException($"trainable state has no tensor '{name}'.");
            if (!t.shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"trainable state '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", p.shape)}].");
            p.copy_(t);
        }
    }

    public void Dispose() => Model.Dispose();
}
