using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantumPeft.Models.DebertaV2;

/// <summary>The architecture of a DeBERTa-v2 / v3 encoder, exactly as Hugging Face's config.json spells it (model_type "deberta-v2").</summary>
/// <remarks>
/// Defaults are those of <c>transformers.DebertaV2Config</c> (deberta-v2-xlarge's shape), and, for the keys the model reads with
/// getattr (position_buckets, share_att_key, norm_rel_ebd, conv_kernel_size, embedding_size, ...), the getattr defaults of
/// modeling_deberta_v2.py. DeBERTa-v3 is the same model_type with relative_attention, position_buckets 256, share_att_key,
/// norm_rel_ebd "layer_norm" and no absolute positions. Keys this record does not model are kept in <see cref="Extra"/>.
/// A value the model cannot honour is an error naming the key and the accepted values, never a silent fallback.
/// </remarks>
public sealed record DebertaV2Config
{
    /// <summary>The model_type this encoder reads.</summary>
    public const string DebertaV2ModelType = "deberta-v2";

    /// <summary>The relative-attention terms DeBERTa-v2 has: content-to-position and position-to-content.</summary>
    public static readonly IReadOnlyList<string> SupportedPosAttTypes = ["c2p", "p2c"];

    /// <summary>The norm_rel_ebd values modeling_deberta_v2.py acts on ("|"-separated).</summary>
    public static readonly IReadOnlyList<string> SupportedNormRelEbd = ["none", "layer_norm"];

    public string? ModelType { get; init; } = DebertaV2ModelType;
    public int VocabSize { get; init; } = 128100;
    public int HiddenSize { get; init; } = 1536;
    public int NumHiddenLayers { get; init; } = 24;
    public int NumAttentionHeads { get; init; } = 24;
    public int IntermediateSize { get; init; } = 6144;
    public string HiddenAct { get; init; } = "gelu";
    public double HiddenDropoutProb { get; init; } = 0.1;
    public double AttentionProbsDropoutProb { get; init; } = 0.1;
    public int MaxPositionEmbeddings { get; init; } = 512;
    public int TypeVocabSize { get; init; }
    public double InitializerRange { get; init; } = 0.02;
    public double LayerNormEps { get; init; } = 1e-7;
    public bool RelativeAttention { get; init; }
    /// <summary>Below 1: max_position_embeddings.</summary>
    public int MaxRelativePositions { get; init; } = -1;
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public int? PadTokenId { get; init; } = 0;
    public bool PositionBiasedInput { get; init; } = true;
    /// <summary>["p2c", "c2p"] or the older "p2c|c2p" string (read either way, written as a list); null: no position terms.</summary>
    [JsonConverter(typeof(PosAttTypeConverter))]
    public IReadOnlyList<string>? PosAttType { get; init; }
    public double PoolerDropout { get; init; }
    public string PoolerHiddenAct { get; init; } = "gelu";
    /// <summary>Null: hidden_size (the ContextPooler is square).</summary>
    public int? PoolerHiddenSize { get; init; }
    /// <summary>Log-bucketed relative positions when above 0 (DeBERTa-v3: 256); -1: plain clamped distances.</summary>
    public int PositionBuckets { get; init; } = -1;
    /// <summary>Position terms reuse query_proj / key_proj (v3) instead of pos_query_proj / pos_key_proj.</summary>
    public bool ShareAttKey { get; init; }
    /// <summary>"layer_norm" (v3): LayerNorm on the relative embeddings; "none": as they are.</summary>
    public string NormRelEbd { get; init; } = "none";
    /// <summary>Above 0 (deberta-v2-xlarge: 3): a convolution beside the first layer (ConvLayer).</summary>
    public int ConvKernelSize { get; init; }
    public int ConvGroups { get; init; } = 1;
    public string ConvAct { get; init; } = "tanh";
    /// <summary>Null: hidden_size; otherwise the embeddings are this wide and embed_proj maps them to hidden_size.</summary>
    public int? EmbeddingSize { get; init; }
    /// <summary>Null: hidden_size / num_attention_heads.</summary>
    public int? AttentionHeadSize { get; init; }
    /// <summary>The dropout before the classifier; null: hidden_dropout_prob.</summary>
    public double? ClsDropout { get; init; }

    /// <summary>Every other key of config.json, preserved so a written folder keeps what it was given.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>The width of the embedding tables.</summary>
    [JsonIgnore] public int EmbeddingWidth => EmbeddingSize ?? HiddenSize;

    /// <summary>The size of one attention head.</summary>
    [JsonIgnore] public int HeadSize => AttentionHeadSize ?? HiddenSize / NumAttentionHeads;

    /// <summary>The relative distance the model distinguishes: max_relative_positions, or max_position_embeddings when below 1.</summary>
    [JsonIgnore] public int MaxRelativePositionsInEffect => MaxRelativePositions < 1 ? MaxPositionEmbeddings : MaxRelativePositions;

    /// <summary>att_span of the attention (pos_ebd_size): position_buckets when above 0, else the maximum relative distance.</summary>
    [JsonIgnore] public int AttentionSpan => PositionBuckets > 0 ? PositionBuckets : MaxRelativePositionsInEffect;

    /// <summary>Whether the content-to-position term is on.</summary>
    [JsonIgnore] public bool C2P => PosAttType?.Contains("c2p") == true;

    /// <summary>Whether the position-to-content term is on.</summary>
    [JsonIgnore] public bool P2C => PosAttType?.Contains("p2c") == true;

    /// <summary>Whether the relative embeddings go through the encoder's LayerNorm.</summary>
    [JsonIgnore] public bool NormalizeRelativeEmbeddings => NormRelEbd.ToLowerInvariant().Split('|').Select(x => x.Trim()).Contains("layer_norm");

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Reads and validates a config.json file.</summary>
    public static DebertaV2Config Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"config.json not found: expected a Hugging Face model config at '{path}'.", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses and validates the text of a config.json; <paramref name="source"/> names it in errors.</summary>
    public static DebertaV2Config FromJson(string json, string source = "config.json")
    {
        DebertaV2Config? config;
        try { config = JsonSerializer.Deserialize<DebertaV2Config>(json, JsonOptions); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not a valid DeBERTa-v2 config ({e.Message}).", e); }
        if (config is null) throw new InvalidDataException($"{source}: empty config.");
        config.Validate(source);
        return config;
    }

    /// <summary>The config as config.json text (snake_case, extra keys included).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Throws when the encoder cannot honour this config; the message names the key, its value and the accepted values.</summary>
    public void Validate(string source = "config.json")
    {
        if (ModelType != DebertaV2ModelType)
            throw new NotSupportedException($"{source}: model_type '{ModelType ?? "(none)"}' is not DeBERTa-v2 (supported: {DebertaV2ModelType}; " +
                "DeBERTa v1, model_type 'deberta', has another attention and is not supported).");
        Activation(HiddenAct, "hidden_act", source);
        Activation(PoolerHiddenAct, "pooler_hidden_act", source);
        if (PosAttType is { } types)
            foreach (var t in types)
                if (!SupportedPosAttTypes.Contains(t))
                    throw new NotSupportedException($"{source}: pos_att_type '{t}' is not supported (accepted: {string.Join(", ", SupportedPosAttTypes)}, " +
                        "as a list or a '|'-separated string).");
        foreach (var part in NormRelEbd.ToLowerInvariant().Split('|').Select(x => x.Trim()))
            if (!SupportedNormRelEbd.Contains(part))
                throw new NotSupportedException($"{source}: norm_rel_ebd '{NormRelEbd}' is not supported (accepted: {string.Join(", ", SupportedNormRelEbd)}, '|'-separated).");
        Positive(VocabSize, "vocab_size", source);
        Positive(HiddenSize, "hidden_size", source);
        Positive(NumHiddenLayers, "num_hidden_layers", source);
        Positive(NumAttentionHeads, "num_attention_heads", source);
        Positive(IntermediateSize, "intermediate_size", source);
        Positive(MaxPositionEmbeddings, "max_position_embeddings", source);
        if (TypeVocabSize < 0) throw new InvalidDataException($"{source}: type_vocab_size must be 0 (no token types) or more, got {TypeVocabSize}.");
        if (EmbeddingSize is { } es) Positive(es, "embedding_size", source);
        if (AttentionHeadSize is { } hs) Positive(hs, "attention_head_size", source);
        else if (HiddenSize % NumAttentionHeads != 0)
            throw new InvalidDataException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads} (and no attention_head_size is given).");
        if (PoolerHiddenSize is { } ps && ps != HiddenSize)
            throw new NotSupportedException($"{source}: pooler_hidden_size {ps} differs from hidden_size {HiddenSize}; the ContextPooler and classifier of DeBERTa-v2 expect them equal.");
        if (ConvKernelSize > 0)
        {
            if (ConvKernelSize % 2 == 0)
                throw new NotSupportedException($"{source}: conv_kernel_size {ConvKernelSize} is even; the ConvLayer keeps the sequence length only for an odd kernel.");
            Positive(ConvGroups, "conv_groups", source);
            if (HiddenSize % ConvGroups != 0)
                throw new InvalidDataException($"{source}: hidden_size {HiddenSize} is not divisible by conv_groups {ConvGroups}.");
            Activation(ConvAct, "conv_act", source);
        }
        if (RelativeAttention && PositionBuckets > 0 && MaxRelativePositionsInEffect < 2)
            throw new InvalidDataException($"{source}: max_relative_positions {MaxRelativePositions} leaves no room for position_buckets {PositionBuckets} (expected at least 2).");
        Probability(HiddenDropoutProb, "hidden_dropout_prob", source);
        Probability(AttentionProbsDropoutProb, "attention_probs_dropout_prob", source);
        Probability(PoolerDropout, "pooler_dropout", source);
        if (ClsDropout is { } cd) Probability(cd, "cls_dropout", source);
        if (!(LayerNormEps > 0)) throw new InvalidDataException($"{source}: layer_norm_eps must be positive, got {LayerNormEps}.");
        if (PadTokenId is { } pad && (pad < 0 || pad >= VocabSize))
            throw new InvalidDataException($"{source}: pad_token_id {pad} is outside the vocabulary (vocab_size {VocabSize}).");
    }

    /// <summary>The "architectures" list of config.json, empty when absent.</summary>
    public IReadOnlyList<string> ArchitectureNames() =>
        Extra is not null && Extra.TryGetValue("architectures", out var arch) && arch.ValueKind == JsonValueKind.Array
            ? arch.EnumerateArray().Select(a => a.GetString() ?? "").ToList()
            : [];

    static void Activation(string name, string key, string source)
    {
        if (!Layers.Activations.Names.Contains(name))
            throw new NotSupportedException($"{source}: {key} '{name}' is not supported (supported: {string.Join(", ", Layers.Activations.Names)}).");
    }

    static void Positive(int value, string key, string source)
    {
        if (value <= 0) throw new InvalidDataException($"{source}: {key} must be positive, got {value}.");
    }

    static void Probability(double value, string key, string source)
    {
        if (!(value >= 0 && value < 1)) throw new InvalidDataException($"{source}: {key} must be in [0, 1), got {value}.");
    }

    // transformers' DebertaV2Config turns the older "p2c|c2p" string into a list (lower-cased, trimmed); so does this.
    sealed class PosAttTypeConverter : JsonConverter<IReadOnlyList<string>?>
    {
        public override IReadOnlyList<string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.Null: return null;
                case JsonTokenType.String:
                    return reader.GetString()!.ToLowerInvariant().Split('|').Select(x => x.Trim()).ToList();
                case JsonTokenType.StartArray:
                    var list = new List<string>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType != JsonTokenType.String) throw new JsonException("pos_att_type must hold strings (\"c2p\", \"p2c\").");
                        list.Add(reader.GetString()!);
                    }
                    return list;
                default: throw new JsonException("pos_att_type must be a list such as [\"p2c\", \"c2p\"] or a string such as \"p2c|c2p\".");
            }
        }

        public override void Write(Utf8JsonWriter writer, IReadOnlyList<string>? value, JsonSerializerOptions options)
        {
            if (value is null) { writer.WriteNullValue(); return; }
            writer.WriteStartArray();
            foreach (var v in value) writer.WriteStringValue(v);
            writer.WriteEndArray();
        }
    }
}
