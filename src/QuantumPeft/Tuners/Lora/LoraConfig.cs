using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantumPeft.Tuners.Lora;

/// <summary>LoRA settings, field for field as peft's <c>LoraConfig</c> writes them, so peft reads our files and we read peft's.</summary>
/// <remarks>
/// Supported: r, lora_alpha, lora_dropout, use_rslora (scaling alpha / sqrt(r) instead of alpha / r), init_lora_weights
/// (true: A kaiming-uniform, B = 0; false: both random), target_modules, exclude_modules, modules_to_save.
/// The remaining peft fields are kept for round trips; non-default values of features this library does not implement
/// (bias other than "none", DoRA, rank/alpha patterns, layer selection, replication) are rejected when
/// the adapter is injected, with a message naming the field.
/// </remarks>
public sealed record LoraConfig : PeftConfig, IFanInFanOutConfig
{
    /// <summary>"LORA".</summary>
    public const string TypeName = "LORA";

    public override string PeftType => TypeName;

    /// <summary>Rank r of the update B A.</summary>
    public int R { get; init; } = 8;

    /// <summary>alpha of the scaling alpha / r (or alpha / sqrt(r) with <see cref="UseRslora"/>).</summary>
    public double LoraAlpha { get; init; } = 8;

    /// <summary>Dropout probability on the input of the adapter path.</summary>
    public double LoraDropout { get; init; }

    /// <summary>Rank-stabilised LoRA: scaling alpha / sqrt(r).</summary>
    public bool UseRslora { get; init; }

    /// <summary>Only "none" is supported (no bias is trained).</summary>
    public string Bias { get; init; } = "none";

    /// <summary>True when the adapted layers store their weight [in, out] (GPT-2's Conv1D). As in peft, the layer decides:
    /// injection sets it to match the targeted layers (with a warning when the file said otherwise).</summary>
    public bool FanInFanOut { get; init; }

    /// <inheritdoc/>
    public PeftConfig WithFanInFanOut(bool value) => this with { FanInFanOut = value };

    /// <summary>true: A kaiming-uniform and B = 0 (the adapted model equals the base model); false: B random too.
    /// peft also allows strings ("gaussian", "pissa", ...); those are read as true with a warning at injection.</summary>
    [JsonConverter(typeof(BoolOrStringConverter))]
    public JsonElement InitLoraWeights { get; init; } = JsonSerializer.SerializeToElement(true);

    public IReadOnlyList<int>? LayersToTransform { get; init; }
    public JsonElement? LayersPattern { get; init; }
    public Dictionary<string, int> RankPattern { get; init; } = [];
    public Dictionary<string, double> AlphaPattern { get; init; } = [];
    public JsonElement? MegatronConfig { get; init; }
    public string MegatronCore { get; init; } = "megatron.core";
    public Dictionary<string, JsonElement> LoftqConfig { get; init; } = [];
    public bool UseDora { get; init; }
    public JsonElement? LayerReplication { get; init; }
    public bool LoraBias { get; init; }

    /// <summary>alpha / r, or alpha / sqrt(r) with rsLoRA.</summary>
    [JsonIgnore]
    public double Scaling => UseRslora ? LoraAlpha / Math.Sqrt(R) : LoraAlpha / R;

    /// <summary>Whether B starts at zero (init_lora_weights true or a peft string variant).</summary>
    [JsonIgnore]
    public bool ZeroInitB => InitLoraWeights.ValueKind != JsonValueKind.False;

    public override void Validate()
    {
        base.Validate();
        if (R < 1) throw new ArgumentException($"r must be at least 1, got {R}.", nameof(R));
        if (!double.IsFinite(LoraAlpha) || LoraAlpha <= 0) throw new ArgumentException($"lora_alpha must be a positive number (scaling = lora_alpha / r), got {LoraAlpha}.", nameof(LoraAlpha));
        if (LoraDropout is < 0 or >= 1) throw new ArgumentException($"lora_dropout must be in [0, 1), got {LoraDropout}.", nameof(LoraDropout));
        if (Bias != "none") throw new ArgumentException($"bias \"{Bias}\" is not supported; use \"none\".", nameof(Bias));
        if (UseDora) throw new ArgumentException("use_dora = true (DoRA) is not supported.", nameof(UseDora));
        if (LoraBias) throw new ArgumentException("lora_bias = true is not supported.", nameof(LoraBias));
        if (RankPattern.Count > 0) throw new ArgumentException("rank_pattern is not supported; leave it empty.", nameof(RankPattern));
        if (AlphaPattern.Count > 0) throw new ArgumentException("alpha_pattern is not supported; leave it empty.", nameof(AlphaPattern));
        if (LayersToTransform is { Count: > 0 }) throw new ArgumentException("layers_to_transform is not supported; select layers with target_modules (a regex).", nameof(LayersToTransform));
        if (LayerReplication is { ValueKind: not JsonValueKind.Null }) throw new ArgumentException("layer_replication is not supported.", nameof(LayerReplication));
    }
}

/// <summary>Accepts a JSON bool or string (peft's init_lora_weights) and writes it back unchanged.</summary>
public sealed class BoolOrStringConverter : JsonConverter<JsonElement>
{
    public override JsonElement Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False or JsonTokenType.String))
            throw new JsonException($"Expected true, false or a string, found {reader.TokenType}.");
        return JsonElement.ParseValue(ref reader);
    }

    public override void Write(Utf8JsonWriter writer, JsonElement value, JsonSerializerOptions options) => value.WriteTo(writer);
}
