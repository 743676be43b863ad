using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantumPeft.Models.Gpt2;

/// <summary>The architecture of a GPT-2 decoder, exactly as Hugging Face's config.json spells it (n_embd, n_layer, ...).</summary>
/// <remarks>
/// Defaults are those of <c>transformers.GPT2Config</c> (gpt2 small; tie_word_embeddings true, as every GPT-2 checkpoint).
/// Keys this record does not model are kept in <see cref="Extra"/> and written back unchanged. A value the model cannot
/// honour is an error naming the key, never a silent fallback.
/// </remarks>
public sealed record Gpt2Config
{
    /// <summary>The model_type values this decoder reads.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["gpt2"];

    /// <summary>The activations the MLP implements (transformers' ACT2FN names).</summary>
    public static readonly IReadOnlyList<string> SupportedActivations = ["gelu_new", "gelu", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish", "tanh"];

    public string? ModelType { get; init; } = "gpt2";
    public int VocabSize { get; init; } = 50257;
    public int NPositions { get; init; } = 1024;
    public int NEmbd { get; init; } = 768;
    public int NLayer { get; init; } = 12;
    public int NHead { get; init; } = 12;
    /// <summary>The MLP width; null means 4 * n_embd.</summary>
    public int? NInner { get; init; }
    public string ActivationFunction { get; init; } = "gelu_new";
    public double ResidPdrop { get; init; } = 0.1;
    public double EmbdPdrop { get; init; } = 0.1;
    public double AttnPdrop { get; init; } = 0.1;
    public double LayerNormEpsilon { get; init; } = 1e-5;
    public double InitializerRange { get; init; } = 0.02;
    public bool ScaleAttnWeights { get; init; } = true;
    public bool ScaleAttnByInverseLayerIdx { get; init; }
    public bool ReorderAndUpcastAttn { get; init; }
    public bool AddCrossAttention { get; init; }
    public bool TieWordEmbeddings { get; init; } = true;
    public int? BosTokenId { get; init; } = 50256;
    public JsonElement? EosTokenId { get; init; }
    public int? PadTokenId { get; init; }

    /// <summary>Every other key of config.json, preserved so a written folder keeps what it was given.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>The MLP width (n_inner, or 4 * n_embd).</summary>
    [JsonIgnore]
    public int InnerSize => NInner ?? 4 * NEmbd;

    /// <summary>The size of one attention head.</summary>
    [JsonIgnore]
    public int HeadSize => NEmbd / NHead;

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Parses and validates the text of a config.json; <paramref name="source"/> names it in errors.</summary>
    public static Gpt2Config FromJson(string json, string source = "config.json")
    {
        Gpt2Config? config;
        try { config = JsonSerializer.Deserialize<Gpt2Config>(json, JsonOptions); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not a valid GPT-2 config ({e.Message}).", e); }
        if (config is null) throw new InvalidDataException($"{source}: empty config.");
        // transformers' default eos_token_id is 50256; an absent key keeps it.
        if (config.EosTokenId is null && !json.Contains("\"eos_token_id\"", StringComparison.Ordinal))
            config = config with { EosTokenId = JsonSerializer.SerializeToElement(50256) };
        config.Validate(source);
        return config;
    }

    /// <summary>Reads and validates a config.json file.</summary>
    public static Gpt2Config Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config.json not found: expected a Hugging Face model config at '{path}'.", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>The config as config.json text (snake_case, extra keys included).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Throws when the decoder cannot honour this config; the message names the key and its value.</summary>
    public void Validate(string source = "config.json")
    {
        if (ModelType is null || !SupportedModelTypes.Contains(ModelType))
            throw new NotSupportedException($"{source}: model_type '{ModelType ?? "(none)"}' is not GPT-2 (expected: {string.Join(", ", SupportedModelTypes)}).");
        if (!SupportedActivations.Contains(ActivationFunction))
            throw new NotSupportedException($"{source}: activation_function '{ActivationFunction}' is not supported (supported: {string.Join(", ", SupportedActivations)}).");
        if (AddCrossAttention) throw new NotSupportedException($"{source}: add_cross_attention = true (an encoder-decoder GPT-2) is not supported.");
        Positive(VocabSize, "vocab_size", source);
        Positive(NPositions, "n_positions", source);
        Positive(NEmbd, "n_embd", source);
        Positive(NLayer, "n_layer", source);
        Positive(NHead, "n_head", source);
        if (NInner is { } inner) Positive(inner, "n_inner", source);
        if (NEmbd % NHead != 0) throw new InvalidDataException($"{source}: n_embd {NEmbd} is not divisible by n_head {NHead}.");
        foreach (var (v, k) in new[] { (ResidPdrop, "resid_pdrop"), (EmbdPdrop, "embd_pdrop"), (AttnPdrop, "attn_pdrop") })
            if (!(v >= 0 && v < 1)) throw new InvalidDataException($"{source}: {k} must be in [0, 1), got {v}.");
        if (!(LayerNormEpsilon > 0)) throw new InvalidDataException($"{source}: layer_norm_epsilon must be positive, got {LayerNormEpsilon}.");
    }

    static void Positive(int value, string key, string source)
    {
        if (value <= 0) throw new InvalidDataException($"{source}: {key} must be positive, got {value}.");
    }
}
