using System.Text.Json;
using System.Text.Json.Serialization;
using QuantumPeft.Tuners.Lora;

namespace QuantumPeft.Tuners.LoKr;

/// <summary>LoKr settings (peft_type "LOKR"), field for field as peft's <c>LoKrConfig</c> (a LyCORIS config) writes them.</summary>
/// <remarks>delta W = kron(w1, w2) * alpha / r with w1 [out_l, in_m] and w2 [out_k, in_n] from peft's <c>factorization</c> of in and out;
/// each factor is a full matrix or a rank-r product (w2 when r &lt; max(out_k, in_n) / 2, w1 only with decompose_both).</remarks>
public sealed record LoKrConfig : PeftConfig
{
    /// <summary>"LOKR".</summary>
    public const string TypeName = "LOKR";

    public override string PeftType => TypeName;

    /// <summary>Rank of the decomposed Kronecker factors.</summary>
    public int R { get; init; } = 8;

    /// <summary>alpha of the scaling alpha / r.</summary>
    public double Alpha { get; init; } = 8;

    /// <summary>Probability of dropping a row of the update during training.</summary>
    public double RankDropout { get; init; }

    /// <summary>Probability of skipping the whole adapter for a training step.</summary>
    public double ModuleDropout { get; init; }

    /// <summary>With rank dropout, rescale the kept rows by 1 / (kept fraction).</summary>
    public bool RankDropoutScale { get; init; }

    /// <summary>Conv2d only in peft (the Tucker form with lokr_t2 on k x k kernels, refused here); no effect on Linear layers or 1 x 1 kernels.</summary>
    public bool UseEffectiveConv2d { get; init; }

    /// <summary>Also decompose the left factor w1 into w1_a w1_b when r is small enough.</summary>
    public bool DecomposeBoth { get; init; }

    /// <summary>peft's factorization divider (-1: factors near the square root).</summary>
    public int DecomposeFactor { get; init; } = -1;

    /// <summary>true (default): w1 = 0 so the model starts unchanged; "lycoris": w2 = 0 instead; false: all random.</summary>
    [JsonConverter(typeof(BoolOrStringConverter))]
    public JsonElement InitWeights { get; init; } = JsonSerializer.SerializeToElement(true);

    public Dictionary<string, int> RankPattern { get; init; } = [];
    public Dictionary<string, double> AlphaPattern { get; init; } = [];
    public JsonElement? LayersToTransform { get; init; }
    public JsonElement? LayersPattern { get; init; }

    /// <summary>"default", "lycoris" or "random" from init_weights.</summary>
    [JsonIgnore]
    public string InitMode => InitWeights.ValueKind switch
    {
        JsonValueKind.True => "default",
        JsonValueKind.False => "random",
        JsonValueKind.String when InitWeights.GetString() == "lycoris" => "lycoris",
        _ => throw new ArgumentException($"init_weights must be true, false or \"lycoris\", got {InitWeights.GetRawText()}.", nameof(InitWeights)),
    };

    public override void Validate()
    {
        base.Validate();
        if (R < 1) throw new ArgumentException($"r must be at least 1, got {R}.", nameof(R));
        if (!double.IsFinite(Alpha)) throw new ArgumentException($"alpha must be a finite number, got {Alpha}.", nameof(Alpha));
        if (RankDropout is < 0 or >= 1) throw new ArgumentException($"rank_dropout must be in [0, 1), got {RankDropout}.", nameof(RankDropout));
        if (ModuleDropout is < 0 or > 1) throw new ArgumentException($"module_dropout must be in [0, 1], got {ModuleDropout}.", nameof(ModuleDropout));
        if (DecomposeFactor == 0 || DecomposeFactor < -1) throw new ArgumentException($"decompose_factor must be -1 or a positive integer, got {DecomposeFactor}.", nameof(DecomposeFactor));
        _ = InitMode;
        foreach (var (k, v) in RankPattern)
            if (v < 1) throw new ArgumentException($"rank_pattern[\"{k}\"] must be at least 1, got {v}.", nameof(RankPattern));
        if (LayersToTransform is { ValueKind: not JsonValueKind.Null }) throw new ArgumentException("layers_to_transform is not supported; select layers with target_modules (a regex).", nameof(LayersToTransform));
    }
}
