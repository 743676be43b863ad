using System.Text.Json;
using System.Text.Json.Serialization;
using QuantumPeft.Models.Layers;

namespace QuantumPeft.Models.Vit;

/// <summary>The architecture of a Vision Transformer, exactly as Hugging Face's config.json spells it (snake_case).</summary>
/// <remarks>
/// Defaults are those of <c>transformers.ViTConfig</c> (note: both dropouts default to 0, unlike BERT). Keys this record
/// does not model (architectures, id2label, label2id, torch_dtype, ...) are kept in <see cref="Extra"/> and written back
/// unchanged. A value the model cannot honour is an error naming the key, never a silent fallback.
/// </remarks>
public sealed record ViTConfig
{
    /// <summary>The model_type values this model reads.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["vit"];

    public string? ModelType { get; init; } = "vit";
    public int HiddenSize { get; init; } = 768;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int IntermediateSize { get; init; } = 3072;
    public string HiddenAct { get; init; } = "gelu";
    public double HiddenDropoutProb { get; init; }
    public double AttentionProbsDropoutProb { get; init; }
    public double InitializerRange { get; init; } = 0.02;
    public double LayerNormEps { get; init; } = 1e-12;
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 16;
    public int NumChannels { get; init; } = 3;
    public bool QkvBias { get; init; } = true;
    public int EncoderStride { get; init; } = 16;
    /// <summary>Outputs of ViTModel's pooler dense layer; null: hidden_size (transformers 4.46 and later write it).</summary>
    public int? PoolerOutputSize { get; init; }
    /// <summary>The pooler's activation (transformers' default "tanh").</summary>
    public string PoolerAct { get; init; } = "tanh";

    /// <summary>Every other key of config.json, preserved so a written folder keeps what it was given.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>The size of one attention head.</summary>
    [JsonIgnore]
    public int HeadSize => HiddenSize / NumAttentionHeads;

    /// <summary>Patches along each side of a config.image_size image (the position embeddings' grid).</summary>
    [JsonIgnore]
    public int GridSize => ImageSize / PatchSize;

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Reads and validates a config.json file.</summary>
    public static ViTConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"config.json not found: expected a Hugging Face ViT config at '{path}'.", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses and validates the text of a config.json; <paramref name="source"/> names it in errors.</summary>
    public static ViTConfig FromJson(string json, string source = "config.json")
    {
        ViTConfig? config;
        try { config = JsonSerializer.Deserialize<ViTConfig>(json, JsonOptions); }
        catch (JsonException e)
        {
            // transformers allows image_size / patch_size as [height, width]; every released ViT checkpoint uses one number.
            throw new InvalidDataException($"{source}: not a valid ViT config ({e.Message}; image_size and patch_size must be single numbers).", e);
        }
        if (config is null) throw new InvalidDataException($"{source}: empty config.");
        config.Validate(source);
        return config;
    }

    /// <summary>The config as config.json text (snake_case, extra keys included).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Throws when the model cannot honour this config; the message names the key and its value.</summary>
    public void Validate(string source = "config.json")
    {
        if (ModelType is null || !SupportedModelTypes.Contains(ModelType))
            throw new NotSupportedException($"{source}: model_type '{ModelType ?? "(none)"}' is not a ViT (supported: {string.Join(", ", SupportedModelTypes)}).");
        if (!Activations.Names.Contains(HiddenAct))
            throw new NotSupportedException($"{source}: hidden_act '{HiddenAct}' is not supported (supported: {string.Join(", ", Activations.Names)}).");
        if (!Activations.Names.Contains(PoolerAct))
            throw new NotSupportedException($"{source}: pooler_act '{PoolerAct}' is not supported (supported: {string.Join(", ", Activations.Names)}).");
        Positive(HiddenSize, "hidden_size", source);
        Positive(NumHiddenLayers, "num_hidden_layers", source);
        Positive(NumAttentionHeads, "num_attention_heads", source);
        Positive(IntermediateSize, "intermediate_size", source);
        Positive(ImageSize, "image_size", source);
        Positive(PatchSize, "patch_size", source);
        Positive(NumChannels, "num_channels", source);
        if (PoolerOutputSize is { } pooled) Positive(pooled, "pooler_output_size", source);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new InvalidDataException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}.");
        if (PatchSize > ImageSize)
            throw new InvalidDataException($"{source}: patch_size {PatchSize} is larger than image_size {ImageSize}.");
        Probability(HiddenDropoutProb, "hidden_dropout_prob", source);
        Probability(AttentionProbsDropoutProb, "attention_probs_dropout_prob", source);
        if (!(LayerNormEps > 0)) throw new InvalidDataException($"{source}: layer_norm_eps must be positive, got {LayerNormEps}.");
        if (!(InitializerRange >= 0)) throw new InvalidDataException($"{source}: initializer_range must not be negative, got {InitializerRange}.");
    }

    /// <summary>The "architectures" list of config.json (e.g. ViTForImageClassification), empty when absent.</summary>
    public IReadOnlyList<string> ArchitectureNames() =>
        Extra is not null && Extra.TryGetValue("architectures", out var arch) && arch.ValueKind == JsonValueKind.Array
            ? arch.EnumerateArray().Select(a => a.GetString() ?? "").ToList()
            : [];

    /// <summary>
    /// config.json's class names in id order (id2label; LABEL_i for ids it leaves out), or null when it has none. save_pretrained
    /// writes id2label only when it differs from the default two labels, so a missing id2label with num_labels means LABEL_i.
    /// </summary>
    public IReadOnlyList<string>? Labels(string source = "config.json")
    {
        if (Extra is not null && Extra.TryGetValue("id2label", out var ids) && ids.ValueKind == JsonValueKind.Object)
        {
            var map = new SortedDictionary<int, string>();
            foreach (var entry in ids.EnumerateObject())
            {
                if (!int.TryParse(entry.Name, out var id) || id < 0)
                    throw new InvalidDataException($"{source}: id2label key '{entry.Name}' is not a class index.");
                map[id] = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()! : entry.Value.ToString();
            }
            if (map.Count == 0) return null;
            int count = map.Keys.Max() + 1;
            return Enumerable.Range(0, count).Select(i => map.TryGetValue(i, out var name) ? name : $"LABEL_{i}").ToList();
        }
        if (Extra is not null && Extra.TryGetValue("num_labels", out var n) && n.ValueKind == JsonValueKind.Number && n.GetInt32() > 0)
            return Enumerable.Range(0, n.GetInt32()).Select(i => $"LABEL_{i}").ToList();
        return null;
    }

    static void Positive(int value, string key, string source)
    {
        if (value <= 0) throw new InvalidDataException($"{source}: {key} must be positive, got {value}.");
    }

    static void Probability(double value, string key, string source)
    {
        if (!(value >= 0 && value < 1)) throw new InvalidDataException($"{source}: {key} must be in [0, 1), got {value}.");
    }
}
