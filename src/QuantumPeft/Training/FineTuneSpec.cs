using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;

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
    /// <summary>The classifier head of a text model: null takes the architecture's default (BERT: "pooler", transformers' head; "mean" is the option).</summary>
    public string? Head { get; init; }
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
            BaseModelNameOrPath = Models.BundledModels.HubNameOf(modelFolder) ?? modelFolder, TaskType = taskType,
        }),
        "lora" => Apply(new LoraConfig
        {
            R = Rank, LoraAlpha = Alpha ?? 2.0 * Rank,
            TargetModules = ModuleSelector.Parse(Targets), ModulesToSave = modulesToSave,
            BaseModelNameOrPath = Models.BundledModels.HubNameOf(modelFolder) ?? modelFolder, TaskType = taskType,
        }),
        _ when BaselineMethods.TryGetValue(Method, out var type) => Baseline(type, modelFolder, taskType, modulesToSave, feedforward),
        _ => throw new ArgumentException($"method '{Method}' has no adapter config (adapter methods: quantum, lora, {string.Join(", ", BaselineMethods.Keys)}).", nameof(Method)),
    };

    // A baseline's config: peft's defaults, the rank where the method has one, then --set values over them.
    PeftConfig Baseline(string type, string modelFolder, string taskType, IReadOnlyList<string>? modulesToSave, IReadOnlyList<string>? feedforward)
    {
        var o = new System.Text.Json.Nodes.JsonObject
        {
            ["peft_type"] = type, ["task_type"] = taskType, ["base_model_name_or_path"] = Models.BundledModels.HubNameOf(modelFolder) ?? modelFolder,
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
            // Quantum-PEFT's circuit options (init, gate_order, local_qubits, ...) live under stiefel_u / stiefel_v: set both, or one with stiefel_v.KEY.
            if (config is QuantumPeftConfig && QuantumPeftConfig.SetMapOption(o, key, SettingValue(value))) continue;
            if (!o.ContainsKey(key))
            {
                var mapKeys = config is QuantumPeftConfig ? $"; map options for both sides (or stiefel_u.KEY / stiefel_v.KEY): {string.Join(", ", QuantumPeftConfig.MapOptionKeys)}" : "";
                throw new ArgumentException($"--set {key}: {config.PeftType} has no such field (its fields: {string.Join(", ", o.Select(p => p.Key))}{mapKeys}).");
            }
            o[key] = SettingValue(value);
        }
        var result = PeftConfig.FromJson(o.ToJsonString(), [], $"--method {Method}");
        result.Validate();
        return result;
    }
}
