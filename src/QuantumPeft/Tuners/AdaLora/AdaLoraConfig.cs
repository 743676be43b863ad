using System.Text.Json;
using System.Text.Json.Serialization;
using QuantumPeft.Tuners.Lora;

namespace QuantumPeft.Tuners.AdaLora;

/// <summary>AdaLoRA settings (peft_type "ADALORA"): peft's <c>AdaLoraConfig</c>, which extends LoraConfig, field for field.</summary>
/// <remarks>
/// delta W = B (A * E) * s / (ranknum + 1e-5) with A [init_r, in], E [init_r, 1], B [out, init_r], s = lora_alpha (or init_r when
/// lora_alpha &lt;= 0) and ranknum = init_r. <see cref="AdaLoraRankAllocator"/> prunes triplets (rows of A, entries of E, columns of B)
/// by importance from init_r x layers down to target_r x layers on a cubic schedule and records the kept ones in rank_pattern
/// ("&lt;module path&gt;.lora_E" -> one bool per initial rank); saved files then hold only the kept triplets.
/// </remarks>
public sealed record AdaLoraConfig : PeftConfig, IFanInFanOutConfig
{
    /// <summary>"ADALORA".</summary>
    public const string TypeName = "ADALORA";

    public override string PeftType => TypeName;

    /// <summary>Unused by AdaLoRA (peft ignores it with a warning); the initial rank is <see cref="InitR"/>.</summary>
    public int R { get; init; } = 8;

    /// <summary>The target average rank per layer after pruning.</summary>
    public int TargetR { get; init; } = 8;

    /// <summary>The initial rank per layer.</summary>
    public int InitR { get; init; } = 12;

    /// <summary>Steps of warm-up before pruning starts.</summary>
    public int Tinit { get; init; }

    /// <summary>Final steps with the budget fixed at target_r x layers.</summary>
    public int Tfinal { get; init; }

    /// <summary>Prune every deltaT steps during the budgeting phase (peft spells the key "deltaT").</summary>
    [JsonPropertyName("deltaT")]
    public int DeltaT { get; init; } = 1;

    /// <summary>EMA factor of the sensitivity.</summary>
    public double Beta1 { get; init; } = 0.85;

    /// <summary>EMA factor of the uncertainty.</summary>
    public double Beta2 { get; init; } = 0.85;

    /// <summary>Weight of the orthogonality regulariser.</summary>
    public double OrthRegWeight { get; init; } = 0.5;

    /// <summary>Total training steps (required to train: the budget schedule needs it).</summary>
    public int? TotalStep { get; init; }

    /// <summary>The kept triplets per module ("&lt;path&gt;.lora_E" -> bools, one per initial rank), or null before pruning.</summary>
    public Dictionary<string, bool[]>? RankPattern { get; init; }

    /// <summary>s of delta W = B (A * E) s / ranknum.</summary>
    public double LoraAlpha { get; init; } = 8;

    /// <summary>Dropout probability on the input of the adapter path.</summary>
    public double LoraDropout { get; init; }

    /// <summary>peft's fan_in_fan_out; the targeted layers decide it (true for GPT-2's Conv1D).</summary>
    public bool FanInFanOut { get; init; }

    /// <inheritdoc/>
    public PeftConfig WithFanInFanOut(bool value) => this with { FanInFanOut = value };

    /// <summary>Only "none" is supported.</summary>
    public string Bias { get; init; } = "none";

    /// <summary>Written as peft writes it; AdaLoRA's layers do not use it.</summary>
    public bool UseRslora { get; init; }

    /// <summary>true (default): E = 0 (the model starts unchanged), A and B N(0, 0.02); false: all standard normal.</summary>
    [JsonConverter(typeof(BoolOrStringConverter))]
    public JsonElement InitLoraWeights { get; init; } = JsonSerializer.SerializeToElement(true);

    public JsonElement? LayersToTransform { get; init; }
    public JsonElement? LayersPattern { get; init; }
    public Dictionary<string, double> AlphaPattern { get; init; } = [];
    public JsonElement? MegatronConfig { get; init; }
    public string MegatronCore { get; init; } = "megatron.core";
    public Dictionary<string, JsonElement> LoftqConfig { get; init; } = [];
    public bool UseDora { get; init; }
    public JsonElement? LayerReplication { get; init; }
    public bool LoraBias { get; init; }

    // LoraConfig fields that peft 0.17 also writes into AdaLoRA files; only their "off" values are accepted.
    public JsonElement? TrainableTokenIndices { get; init; }
    public JsonElement? EvaConfig { get; init; }
    public JsonElement? CordaConfig { get; init; }
    public bool UseQalora { get; init; }
    public int QaloraGroupSize { get; init; } = 16;
    public JsonElement? TargetParameters { get; init; }

    /// <summary>peft's scaling: lora_alpha when positive, else init_r.</summary>
    [JsonIgnore]
    public double Scaling => LoraAlpha > 0 ? LoraAlpha : InitR;

    /// <summary>The rank_pattern entry of the module at <paramref name="modulePath"/> (key "&lt;path&gt;.lora_E"), or null.</summary>
    public bool[]? MaskFor(string modulePath) =>
        RankPattern is null ? null
        : RankPattern.TryGetValue(modulePath + ".lora_E", out var m) ? m
        : RankPattern.TryGetValue(modulePath + ".lora_E.default", out var d) ? d : null;

    public override void Validate()
    {
        base.Validate();
        if (InitR < 1) throw new ArgumentException($"init_r must be at least 1, got {InitR}.", nameof(InitR));
        if (TargetR < 0 || TargetR > InitR) throw new ArgumentException($"target_r must be between 0 and init_r ({InitR}), got {TargetR}.", nameof(TargetR));
        if (Tinit < 0) throw new ArgumentException($"tinit must be non-negative, got {Tinit}.", nameof(Tinit));
        if (Tfinal < 0) throw new ArgumentException($"tfinal must be non-negative, got {Tfinal}.", nameof(Tfinal));
        if (DeltaT < 1) throw new ArgumentException($"deltaT must be at least 1, got {DeltaT}.", nameof(DeltaT));
        if (Beta1 is <= 0 or >= 1) throw new ArgumentException($"beta1 must be in (0, 1), got {Beta1}.", nameof(Beta1));
        if (Beta2 is <= 0 or >= 1) throw new ArgumentException($"beta2 must be in (0, 1), got {Beta2}.", nameof(Beta2));
        if (!(OrthRegWeight >= 0)) throw new ArgumentException($"orth_reg_weight must be non-negative, got {OrthRegWeight}.", nameof(OrthRegWeight));
        if (TotalStep is { } t)
        {
            if (t < 1) throw new ArgumentException($"total_step must be positive, got {t}.", nameof(TotalStep));
            // peft's AdaLoraConfig.__post_init__: the schedule must leave a budgeting phase.
            if (Tinit >= t - Tfinal)
                throw new ArgumentException($"The schedule leaves no budgeting phase: tinit ({Tinit}) must be below total_step - tfinal ({t} - {Tfinal}). Decrease tfinal / tinit or increase total_step.", nameof(Tinit));
        }
        if (LoraDropout is < 0 or >= 1) throw new ArgumentException($"lora_dropout must be in [0, 1), got {LoraDropout}.", nameof(LoraDropout));
        if (Bias != "none") throw new ArgumentException($"bias \"{Bias}\" is not supported; use \"none\".", nameof(Bias));
        if (UseDora) throw new ArgumentException("use_dora = true is not supported by AdaLoRA.", nameof(UseDora));
        if (LoraBias) throw new ArgumentException("lora_bias = true is not supported by AdaLoRA.", nameof(LoraBias));
        if (UseQalora) throw new ArgumentException("use_qalora = true is not supported.", nameof(UseQalora));
        foreach (var (name, value) in new[] { ("trainable_token_indices", TrainableTokenIndices), ("eva_config", EvaConfig), ("corda_config", CordaConfig), ("target_parameters", TargetParameters) })
            if (value is { ValueKind: not JsonValueKind.Null } v && !(v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0))
                throw new ArgumentException($"{name} is not supported by AdaLoRA here; leave it null.", name);
        if (LoftqConfig.Count > 0) throw new ArgumentException("loftq_config is not supported by AdaLoRA.", nameof(LoftqConfig));
        if (InitLoraWeights.ValueKind == JsonValueKind.String) throw new ArgumentException($"init_lora_weights must be true or false for AdaLoRA, got \"{InitLoraWeights.GetString()}\".", nameof(InitLoraWeights));
        foreach (var (k, v) in RankPattern ?? [])
            if (v.Length != InitR) throw new ArgumentException($"rank_pattern[\"{k}\"] has {v.Length} entries; it needs one per initial rank (init_r = {InitR}).", nameof(RankPattern));
        if (LayersToTransform is { ValueKind: not JsonValueKind.Null }) throw new ArgumentException("layers_to_transform is not supported; select layers with target_modules (a regex).", nameof(LayersToTransform));
    }
}
