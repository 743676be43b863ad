using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantumPeft.Models.Bert;

/// <summary>The architecture of a BERT encoder, exactly as Hugging Face's config.json spells it (snake_case).</summary>
/// <remarks>
/// Defaults are those of <c>transformers.BertConfig</c>. Keys this record does not model (architectures,
/// id2label, torch_dtype, ...) are kept in <see cref="Extra"/> and written back unchanged. A value the model
/// cannot honour is an error naming the key, never a silent fallback.
/// </remarks>
public sealed record BertConfig
{
    /// <summary>The activations the feed-forward block implements (Hugging Face's ACT2FN names).</summary>
    public static readonly IReadOnlyList<string> SupportedActivations =
        ["gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "silu", "swish", "tanh"];

    /// <summary>The model_type values this encoder reads.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["bert"];

    /// <summary>The model_type values of RoBERTa configs (XLM-R shares the architecture): the same encoder, with position ids offset by the padding index.</summary>
    public static readonly IReadOnlyList<string> RobertaModelTypes = ["roberta", "xlm-roberta"];

    public string? ModelType { get; init; } = "bert";
    public int VocabSize { get; init; } = 30522;
    public int HiddenSize { get; init; } = 768;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int IntermediateSize { get; init; } = 3072;
    public string HiddenAct { get; init; } = "gelu";
    public double HiddenDropoutProb { get; init; } = 0.1;
    public double AttentionProbsDropoutProb { get; init; } = 0.1;
    public int MaxPositionEmbeddings { get; init; } = 512;
    public int TypeVocabSize { get; init; } = 2;
    public double InitializerRange { get; init; } = 0.02;
    public double LayerNormEps { get; init; } = 1e-12;
    public int? PadTokenId { get; init; } = 0;
    public string PositionEmbeddingType { get; init; } = "absolute";
    public double? ClassifierDropout { get; init; }

    /// <summary>Every other key of config.json, preserved so a written folder keeps what it was given.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>The size of one attention head.</summary>
    [JsonIgnore]
    public int HeadSize => HiddenSize / NumAttentionHeads;

    /// <summary>
    /// RoBERTa's position ids: padding_idx + 1 + the count of non-padding tokens so far (padding keeps padding_idx), as
    /// transformers' create_position_ids_from_input_ids; BERT's are 0, 1, 2, ... whatever the tokens.
    /// </summary>
    [JsonIgnore]
    public bool PositionsFromPadding => ModelType is not null && RobertaModelTypes.Contains(ModelType);

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Reads and validates a config.json file.</summary>
    /// <param name="path">The config.json file.</param>
    /// <param name="modelTypes">The model_type values accepted (default <see cref="SupportedModelTypes"/>).</param>
    public static BertConfig Load(string path, IReadOnlyList<string>? modelTypes = null)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"config.json not found: expected a Hugging Face model config at '{path}'.", path);
        return FromJson(File.ReadAllText(path), path, modelTypes);
    }

    /// <summary>Parses and validates the text of a config.json; <paramref name="source"/> names it in errors.</summary>
    public static BertConfig FromJson(string json, string source = "config.json", IReadOnlyList<string>? modelTypes = null)
    {
        BertConfig? config;
        try { config = JsonSerializer.Deserialize<BertConfig>(json, JsonOptions); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not a valid BERT config ({e.Message}).", e); }
        if (config is null) throw new InvalidDataException($"{source}: empty config.");
        // Configs written before transformers 3 carry no model_type, only "architectures": ["BertForMaskedLM"].
        if (!json.Contains("\"model_type\"", StringComparison.Ordinal) && config.ArchitectureNames() is [var first, ..]
            && !first.StartsWith("Bert", StringComparison.Ordinal))
            throw new NotSupportedException($"{source}: architecture '{first}' is not supported yet (supported: {string.Join(", ", modelTypes ?? SupportedModelTypes)}).");
        config.Validate(source, modelTypes);
        return config;
    }

    /// <summary>The config as config.json text (snake_case, extra keys included).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Throws when the encoder cannot honour this config; the message names the key and its value.</summary>
    /// <param name="source">Names the config in errors.</param>
    /// <param name="modelTypes">The model_type values accepted (default <see cref="SupportedModelTypes"/>).</param>
    public void Validate(string source = "config.json", IReadOnlyList<string>? modelTypes = null)
    {
        modelTypes ??= SupportedModelTypes;
        if (ModelType is null || !modelTypes.Contains(ModelType))
            throw new NotSupportedException($"{source}: architecture '{ModelType ?? "(none)"}' is not supported yet (supported: {string.Join(", ", modelTypes)}).");
        if (!SupportedActivations.Contains(HiddenAct))
            throw new NotSupportedException($"{source}: hidden_act '{HiddenAct}' is not supported (supported: {string.Join(", ", SupportedActivations)}).");
        if (PositionEmbeddingType != "absolute")
            throw new NotSupportedException($"{source}: position_embedding_type '{PositionEmbeddingType}' is not supported (supported: absolute).");
        Positive(VocabSize, "vocab_size", source);
        Positive(HiddenSize, "hidden_size", source);
        Positive(NumHiddenLayers, "num_hidden_layers", source);
        Positive(NumAttentionHeads, "num_attention_heads", source);
        Positive(IntermediateSize, "intermediate_size", source);
        Positive(MaxPositionEmbeddings, "max_position_embeddings", source);
        Positive(TypeVocabSize, "type_vocab_size", source);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new InvalidDataException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}.");
        Probability(HiddenDropoutProb, "hidden_dropout_prob", source);
        Probability(AttentionProbsDropoutProb, "attention_probs_dropout_prob", source);
        if (ClassifierDropout is { } cd) Probability(cd, "classifier_dropout", source);
        if (!(LayerNormEps > 0)) throw new InvalidDataException($"{source}: layer_norm_eps must be positive, got {LayerNormEps}.");
        if (PadTokenId is { } pad && (pad < 0 || pad >= VocabSize))
            throw new InvalidDataException($"{source}: pad_token_id {pad} is outside the vocabulary (vocab_size {VocabSize}).");
        if (PositionsFromPadding && PadTokenId is null)
            throw new InvalidDataException($"{source}: model_type '{ModelType}' needs pad_token_id (its position ids start after the padding index).");
        if (PositionsFromPadding && PadTokenId + 2 > MaxPositionEmbeddings)
            throw new InvalidDataException($"{source}: max_position_embeddings {MaxPositionEmbeddings} leaves no position after the padding index {PadTokenId} (model_type '{ModelType}').");
    }

    /// <summary>The "architectures" list of config.json (e.g. BertForSequenceClassification), empty when absent.</summary>
    public IReadOnlyList<string> ArchitectureNames() =>
        Extra is not null && Extra.TryGetValue("architectures", out var arch) && arch.ValueKind == JsonValueKind.Array
            ? arch.EnumerateArray().Select(a => a.GetString() ?? "").ToList()
            : [];

    static void Positive(int value, string key, string source)
    {
        if (value <= 0) throw new InvalidDataException($"{source}: {key} must be positive, got {value}.");
    }

    static void Probability(double value, string key, string source)
    {
        if (!(value >= 0 && value < 1)) throw new InvalidDataException($"{source}: {key} must be in [0, 1), got {value}.");
    }
}
