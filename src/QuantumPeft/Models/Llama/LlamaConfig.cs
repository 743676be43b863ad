using System.Text.Json;
using System.Text.Json.Serialization;
using QuantumPeft.Models.Decoder;

namespace QuantumPeft.Models.Llama;

/// <summary>The architecture of a LLaMA-family decoder (llama, mistral, qwen2), exactly as Hugging Face's config.json spells it.</summary>
/// <remarks>
/// Defaults are those of <c>transformers.LlamaConfig</c>; a key that config.json leaves out takes the default of the
/// config class its model_type names (MistralConfig: 8 key/value heads, sliding_window 4096; Qwen2Config: vocab 151936,
/// 32 key/value heads, no bos/eos). The three differ in a few switches only: llama reads attention_bias and mlp_bias,
/// mistral has no biases and a sliding window on every layer when sliding_window is set, qwen2 always has q/k/v biases
/// (no o_proj bias) and a sliding window only when use_sliding_window is true, on the layers from max_window_layers on.
/// Keys this record does not model are kept in <see cref="Extra"/> and written back unchanged.
/// </remarks>
public sealed record LlamaConfig
{
    /// <summary>The model_type values this decoder reads.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "mistral", "qwen2"];

    /// <summary>The activations the MLP implements (Hugging Face's ACT2FN names for SiLU).</summary>
    public static readonly IReadOnlyList<string> SupportedActivations = ["silu", "swish"];

    /// <summary>The rope_scaling types whose inverse frequencies this decoder computes.</summary>
    public static readonly IReadOnlyList<string> SupportedRopeTypes = ["default", "linear", "llama3"];

    /// <summary>layer_types values (transformers' names).</summary>
    public const string FullAttention = "full_attention", SlidingAttention = "sliding_attention";

    public string? ModelType { get; init; } = "llama";
    public int VocabSize { get; init; } = 32000;
    public int HiddenSize { get; init; } = 4096;
    public int IntermediateSize { get; init; } = 11008;
    public int NumHiddenLayers { get; init; } = 32;
    public int NumAttentionHeads { get; init; } = 32;
    /// <summary>Key/value heads (grouped-query attention); null: one per attention head.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public int? NumKeyValueHeads { get; init; }
    /// <summary>The size of one head; null: hidden_size / num_attention_heads.</summary>
    public int? HeadDim { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>transformers 4.x's RoPE scaling (null: none).</summary>
    public RopeScalingConfig? RopeScaling { get; init; }
    /// <summary>transformers 5's rope_parameters (rope_theta and the scaling in one object); wins over rope_theta and rope_scaling.</summary>
    public RopeScalingConfig? RopeParameters { get; init; }
    /// <summary>llama: biases on q/k/v/o_proj (null: false). Mistral and Qwen2 do not read it.</summary>
    public bool? AttentionBias { get; init; }
    /// <summary>llama: biases on gate/up/down_proj (null: false).</summary>
    public bool? MlpBias { get; init; }
    public double AttentionDropout { get; init; }
    /// <summary>mistral: the window of every layer (null: none); qwen2: the window of the sliding layers when <see cref="UseSlidingWindow"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public int? SlidingWindow { get; init; }
    /// <summary>qwen2: whether layers from <see cref="MaxWindowLayers"/> on use the sliding window.</summary>
    public bool? UseSlidingWindow { get; init; }
    /// <summary>qwen2: the first layer index with a sliding window (when <see cref="UseSlidingWindow"/>; null: 28).</summary>
    public int? MaxWindowLayers { get; init; }
    /// <summary>qwen2: each layer's attention ("full_attention" or "sliding_attention"), as transformers 4.53+ writes it.</summary>
    public IReadOnlyList<string>? LayerTypes { get; init; }
    public bool TieWordEmbeddings { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public int? BosTokenId { get; init; } = 1;
    [JsonConverter(typeof(TokenIdsConverter))]
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public IReadOnlyList<int>? EosTokenId { get; init; } = [2];
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public int? PadTokenId { get; init; }

    /// <summary>Every other key of config.json, preserved so a written folder keeps what it was given.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>The size of one attention head.</summary>
    [JsonIgnore] public int HeadSize => HeadDim ?? HiddenSize / NumAttentionHeads;

    /// <summary>Key/value heads after the default (one per attention head).</summary>
    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;

    /// <summary>Whether q_proj, k_proj and v_proj have biases (qwen2 always; llama when attention_bias).</summary>
    [JsonIgnore] public bool QkvBias => ModelType switch { "qwen2" => true, "llama" => AttentionBias ?? false, _ => false };

    /// <summary>Whether o_proj has a bias (llama when attention_bias).</summary>
    [JsonIgnore] public bool OutputBias => ModelType == "llama" && (AttentionBias ?? false);

    /// <summary>Whether the MLP's projections have biases (llama when mlp_bias).</summary>
    [JsonIgnore] public bool MlpBiases => ModelType == "llama" && (MlpBias ?? false);

    /// <summary>The RoPE scaling in effect (rope_parameters, else rope_scaling), or null.</summary>
    [JsonIgnore] public RopeScalingConfig? Rope => RopeParameters ?? RopeScaling;

    /// <summary>The RoPE base in effect (rope_parameters' rope_theta, else rope_theta).</summary>
    [JsonIgnore] public double RopeBase => RopeParameters?.RopeTheta ?? RopeTheta;

    /// <summary>The sliding window of layer <paramref name="layer"/>, or null when it attends to every earlier token.</summary>
    public int? WindowOf(int layer) => ModelType switch
    {
        "mistral" => SlidingWindow,
        "qwen2" when UseSlidingWindow == true && SlidingWindow is { } w => ResolvedLayerTypes()[layer] == SlidingAttention ? w : null,
        _ => null,
    };

    /// <summary>qwen2's layer types: layer_types when given, else sliding from max_window_layers on when use_sliding_window.</summary>
    public IReadOnlyList<string> ResolvedLayerTypes()
    {
        if (LayerTypes is not null) return LayerTypes;
        bool sliding = ModelType == "qwen2" && UseSlidingWindow == true && SlidingWindow is not null;
        int from = MaxWindowLayers ?? 28;
        return Enumerable.Range(0, NumHiddenLayers).Select(i => sliding && i >= from ? SlidingAttention : FullAttention).ToList();
    }

    /// <summary>The transformers class name of the causal LM ("LlamaForCausalLM", ...).</summary>
    [JsonIgnore]
    public string ArchitectureName => ModelType switch { "mistral" => "MistralForCausalLM", "qwen2" => "Qwen2ForCausalLM", _ => "LlamaForCausalLM" };

    // Keys whose default depends on model_type are written even when null, so a written config reads back the same.
    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Reads and validates a config.json file.</summary>
    public static LlamaConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"config.json not found: expected a Hugging Face model config at '{path}'.", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses and validates the text of a config.json; <paramref name="source"/> names it in errors.</summary>
    public static LlamaConfig FromJson(string json, string source = "config.json")
    {
        LlamaConfig? config;
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(json);
            root = doc.RootElement.Clone();
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{source}: expected a JSON object, got {root.ValueKind}.");
            config = root.Deserialize<LlamaConfig>(JsonOptions);
        }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not a valid LLaMA-family config ({e.Message}).", e); }
        if (config is null) throw new InvalidDataException($"{source}: empty config.");
        config = config.WithTypeDefaults(root);
        config.Validate(source);
        return config;
    }

    // A key config.json leaves out takes the default of the config class its model_type names.
    LlamaConfig WithTypeDefaults(JsonElement root)
    {
        bool Has(string key) => root.TryGetProperty(key, out _);
        var c = this;
        switch (ModelType)
        {
            case "mistral":
                if (!Has("intermediate_size")) c = c with { IntermediateSize = 14336 };
                if (!Has("num_key_value_heads")) c = c with { NumKeyValueHeads = 8 };
                if (!Has("max_position_embeddings")) c = c with { MaxPositionEmbeddings = 4096 * 32 };
                if (!Has("sliding_window")) c = c with { SlidingWindow = 4096 };
                break;
            case "qwen2":
                if (!Has("vocab_size")) c = c with { VocabSize = 151936 };
                if (!Has("intermediate_size")) c = c with { IntermediateSize = 22016 };
                if (!Has("num_key_value_heads")) c = c with { NumKeyValueHeads = 32 };
                if (!Has("max_position_embeddings")) c = c with { MaxPositionEmbeddings = 32768 };
                if (!Has("sliding_window")) c = c with { SlidingWindow = 4096 };
                if (!Has("use_sliding_window")) c = c with { UseSlidingWindow = false };
                if (!Has("max_window_layers")) c = c with { MaxWindowLayers = 28 };
                if (!Has("bos_token_id")) c = c with { BosTokenId = null };
                if (!Has("eos_token_id")) c = c with { EosTokenId = null };
                break;
        }
        return c;
    }

    /// <summary>The config as config.json text (snake_case, extra keys included).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Sizes and special tokens; generation_config.json in <paramref name="folder"/> overrides the ids, as transformers does.</summary>
    public CausalLMInfo Info(string? folder = null)
    {
        using var doc = JsonDocument.Parse(ToJson());
        var (bos, eos, pad) = SpecialTokenIds.Read(doc.RootElement, folder);
        return new CausalLMInfo(ModelType ?? "llama", VocabSize, NumHiddenLayers, null, bos, eos, pad);
    }

    /// <summary>Throws when the decoder cannot honour this config; the message names the file, the key and its value.</summary>
    public void Validate(string source = "config.json")
    {
        if (ModelType is null || !SupportedModelTypes.Contains(ModelType))
            throw new NotSupportedException(
                $"{source}: model_type '{ModelType ?? "(none)"}' is not a LLaMA-family decoder (supported: {string.Join(", ", SupportedModelTypes)}).");
        if (!SupportedActivations.Contains(HiddenAct))
            throw new NotSupportedException($"{source}: hidden_act '{HiddenAct}' is not supported (supported: {string.Join(", ", SupportedActivations)}).");
        Positive(VocabSize, "vocab_size", source);
        Positive(HiddenSize, "hidden_size", source);
        Positive(IntermediateSize, "intermediate_size", source);
        Positive(NumHiddenLayers, "num_hidden_layers", source);
        Positive(NumAttentionHeads, "num_attention_heads", source);
        Positive(MaxPositionEmbeddings, "max_position_embeddings", source);
        if (NumKeyValueHeads is { } kv)
        {
            Positive(kv, "num_key_value_heads", source);
            if (NumAttentionHeads % kv != 0)
                throw new InvalidDataException(
                    $"{source}: num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {kv} (each key/value head serves a whole group).");
        }
        if (HeadDim is { } hd) Positive(hd, "head_dim", source);
        else if (HiddenSize % NumAttentionHeads != 0)
            throw new InvalidDataException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads} (and no head_dim is given).");
        if (HeadSize % 2 != 0)
            throw new InvalidDataException($"{source}: the head size {HeadSize} is odd; rotary embeddings rotate pairs of dimensions (expected an even head_dim).");
        if (!(RmsNormEps > 0)) throw new InvalidDataException($"{source}: rms_norm_eps must be positive, got {RmsNormEps}.");
        if (!(RopeBase > 0)) throw new InvalidDataException($"{source}: rope_theta must be positive, got {RopeBase}.");
        if (!(AttentionDropout >= 0 && AttentionDropout < 1)) throw new InvalidDataException($"{source}: attention_dropout must be in [0, 1), got {AttentionDropout}.");
        if (Rope is { } rope) rope.Validate(RopeParameters is not null ? "rope_parameters" : "rope_scaling", source);
        if (SlidingWindow is { } window && ModelType != "llama") Positive(window, "sliding_window", source);
        if (MaxWindowLayers is { } mwl && mwl < 0) throw new InvalidDataException($"{source}: max_window_layers must be 0 or more, got {mwl}.");
        if (ModelType == "qwen2" && LayerTypes is { } types)
        {
            if (types.Count != NumHiddenLayers)
                throw new InvalidDataException($"{source}: layer_types has {types.Count} entries; expected one per layer (num_hidden_layers {NumHiddenLayers}).");
            if (types.FirstOrDefault(t => t is not (FullAttention or SlidingAttention)) is { } bad)
                throw new NotSupportedException($"{source}: layer_types entry '{bad}' is not supported (supported: {FullAttention}, {SlidingAttention}).");
        }
        if (PadTokenId is { } pad && (pad < 0 || pad >= VocabSize))
            throw new InvalidDataException($"{source}: pad_token_id {pad} is outside the vocabulary (vocab_size {VocabSize}).");
    }

    static void Positive(int value, string key, string source)
    {
        if (value <= 0) throw new InvalidDataException($"{source}: {key} must be positive, got {value}.");
    }
}

/// <summary>rope_scaling (or transformers 5's rope_parameters) of config.json: which RoPE variant and its parameters.</summary>
public sealed record RopeScalingConfig
{
    /// <summary>The variant ("default", "linear", "llama3", ...).</summary>
    public string? RopeType { get; init; }
    /// <summary>The variant under its pre-4.43 key.</summary>
    public string? Type { get; init; }
    public double? Factor { get; init; }
    public double? LowFreqFactor { get; init; }
    public double? HighFreqFactor { get; init; }
    public int? OriginalMaxPositionEmbeddings { get; init; }
    /// <summary>rope_parameters only: the base.</summary>
    public double? RopeTheta { get; init; }

    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>rope_type, else type, else "default".</summary>
    [JsonIgnore] public string Kind => RopeType ?? Type ?? "default";

    /// <summary>Throws naming <paramref name="key"/> when the variant is unsupported or a parameter it needs is absent or invalid.</summary>
    public void Validate(string key, string source)
    {
        if (!LlamaConfig.SupportedRopeTypes.Contains(Kind))
            throw new NotSupportedException(
                $"{source}: {key} type '{Kind}' is not supported (supported: {string.Join(", ", LlamaConfig.SupportedRopeTypes)}).");
        if (Kind == "default") return;
        Require(Factor, "factor");
        if (Factor is not > 0) throw new InvalidDataException($"{source}: {key}.factor must be positive, got {Factor}.");
        if (Kind != "llama3") return;
        Require(LowFreqFactor, "low_freq_factor");
        Require(HighFreqFactor, "high_freq_factor");
        Require(OriginalMaxPositionEmbeddings, "original_max_position_embeddings");
        if (!(HighFreqFactor > LowFreqFactor) || LowFreqFactor is not > 0)
            throw new InvalidDataException(
                $"{source}: {key} needs 0 < low_freq_factor < high_freq_factor, got low_freq_factor {LowFreqFactor} and high_freq_factor {HighFreqFactor}.");
        if (OriginalMaxPositionEmbeddings is not > 0)
            throw new InvalidDataException($"{source}: {key}.original_max_position_embeddings must be positive, got {OriginalMaxPositionEmbeddings}.");

        void Require<T>(T? value, string name) where T : struct
        {
            if (value is null) throw new InvalidDataException($"{source}: {key} of type '{Kind}' needs '{name}', which is missing.");
        }
    }
}

/// <summary>eos_token_id as config.json writes it: one id, or a list of ids.</summary>
internal sealed class TokenIdsConverter : JsonConverter<IReadOnlyList<int>?>
{
    public override IReadOnlyList<int>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.Number: return [reader.GetInt32()];
            case JsonTokenType.StartArray:
                var ids = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number) throw new JsonException("eos_token_id: expected a list of integer token ids.");
                    ids.Add(reader.GetInt32());
                }
                return ids;
            default: throw new JsonException("eos_token_id: expected an integer token id or a list of them.");
        }
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<int>? value, JsonSerializerOptions options)
    {
        if (value is null) { writer.WriteNullValue(); return; }
        if (value.Count == 1) { writer.WriteNumberValue(value[0]); return; }
        writer.WriteStartArray();
        foreach (var id in value) writer.WriteNumberValue(id);
        writer.WriteEndArray();
    }
}
