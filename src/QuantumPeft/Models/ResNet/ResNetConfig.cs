using System.Text.Json;
using System.Text.Json.Serialization;
using QuantumPeft.Models.Layers;

namespace QuantumPeft.Models.ResNet;

/// <summary>The architecture of a ResNet, exactly as Hugging Face's config.json spells it (snake_case).</summary>
/// <remarks>
/// Defaults are those of <c>transformers.ResNetConfig</c> (a ResNet-50: bottleneck layers, depths 3, 4, 6, 3).
/// Keys this record does not model (architectures, id2label, out_features, torch_dtype, ...) are kept in
/// <see cref="Extra"/> and written back unchanged. A value the model cannot honour is an error naming the key.
/// </remarks>
public sealed record ResNetConfig
{
    /// <summary>The residual layers transformers knows: two 3x3 convolutions, or 1x1 / 3x3 / 1x1 with a 4x narrower middle.</summary>
    public static readonly IReadOnlyList<string> LayerTypes = ["basic", "bottleneck"];

    /// <summary>The model_type values this model reads.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["resnet"];

    /// <summary>How much narrower the middle of a bottleneck layer is than its output (transformers' reduction).</summary>
    public const int BottleneckReduction = 4;

    /// <summary>The image side transformers assumes for ResNets (the checkpoints are ImageNet models).</summary>
    public const int DefaultImageSize = 224;

    public string? ModelType { get; init; } = "resnet";
    public int NumChannels { get; init; } = 3;
    public int EmbeddingSize { get; init; } = 64;
    public IReadOnlyList<int> HiddenSizes { get; init; } = [256, 512, 1024, 2048];
    public IReadOnlyList<int> Depths { get; init; } = [3, 4, 6, 3];
    public string LayerType { get; init; } = "bottleneck";
    public string HiddenAct { get; init; } = "relu";
    public bool DownsampleInFirstStage { get; init; }
    public bool DownsampleInBottleneck { get; init; }

    /// <summary>Every other key of config.json, preserved so a written folder keeps what it was given.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>Width of the pooled features (the last stage's hidden size), the classifier's input.</summary>
    [JsonIgnore]
    public int FeatureSize => HiddenSizes[^1];

    /// <summary>config.json's image_size when given (transformers does not save one for ResNets), else 224.</summary>
    [JsonIgnore]
    public int ImageSize => Extra is not null && Extra.TryGetValue("image_size", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt32() : DefaultImageSize;

    /// <summary>The head's classes as config.json records them (num_labels, else the size of id2label); null for a backbone without labels.</summary>
    [JsonIgnore]
    public int? NumLabels =>
        Extra is null ? null
        : Extra.TryGetValue("num_labels", out var n) && n.ValueKind == JsonValueKind.Number ? n.GetInt32()
        : Extra.TryGetValue("id2label", out var ids) && ids.ValueKind == JsonValueKind.Object ? ids.EnumerateObject().Count()
        : null;

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads and validates a config.json file.</summary>
    public static ResNetConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"config.json not found: expected a Hugging Face model config at '{path}'.", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses and validates the text of a config.json; <paramref name="source"/> names it in errors.</summary>
    public static ResNetConfig FromJson(string json, string source = "config.json")
    {
        ResNetConfig? config;
        try { config = JsonSerializer.Deserialize<ResNetConfig>(json, JsonOptions); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not a valid ResNet config ({e.Message}).", e); }
        if (config is null) throw new InvalidDataException($"{source}: empty config.");
        config.Validate(source);
        return config;
    }

    /// <summary>The config as config.json text (snake_case, extra keys included).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>This config with <paramref name="values"/> set among the extra keys (architectures, id2label, ...).</summary>
    public ResNetConfig WithExtra(IReadOnlyDictionary<string, object> values)
    {
        var extra = Extra is null ? new Dictionary<string, JsonElement>() : new Dictionary<string, JsonElement>(Extra);
        foreach (var (key, value) in values) extra[key] = JsonSerializer.SerializeToElement(value);
        return this with { Extra = extra };
    }

    /// <summary>Throws when the model cannot honour this config; the message names the key and its value.</summary>
    public void Validate(string source = "config.json")
    {
        if (ModelType is null || !SupportedModelTypes.Contains(ModelType))
            throw new NotSupportedException($"{source}: model_type '{ModelType ?? "(none)"}' is not a ResNet (expected: {string.Join(", ", SupportedModelTypes)}).");
        if (!LayerTypes.Contains(LayerType))
            throw new NotSupportedException($"{source}: layer_type '{LayerType}' is not supported (supported: {string.Join(", ", LayerTypes)}).");
        if (!Activations.Names.Contains(HiddenAct))
            throw new NotSupportedException($"{source}: hidden_act '{HiddenAct}' is not supported (supported: {string.Join(", ", Activations.Names)}).");
        Positive(NumChannels, "num_channels", source);
        Positive(EmbeddingSize, "embedding_size", source);
        if (HiddenSizes is null || HiddenSizes.Count == 0) throw new InvalidDataException($"{source}: hidden_sizes must list at least one stage.");
        if (Depths is null || Depths.Count != HiddenSizes.Count)
            throw new InvalidDataException($"{source}: depths has {Depths?.Count ?? 0} entries but hidden_sizes has {HiddenSizes.Count}: one depth per stage.");
        for (int i = 0; i < HiddenSizes.Count; i++)
        {
            Positive(HiddenSizes[i], $"hidden_sizes[{i}]", source);
            Positive(Depths[i], $"depths[{i}]", source);
            if (LayerType == "bottleneck" && HiddenSizes[i] < BottleneckReduction)
                throw new InvalidDataException($"{source}: hidden_sizes[{i}] is {HiddenSizes[i]}, but a bottleneck layer needs at least {BottleneckReduction} (its middle is {BottleneckReduction}x narrower).");
        }
        if (NumLabels is < 0) throw new InvalidDataException($"{source}: num_labels must not be negative, got {NumLabels}.");
    }

    static void Positive(int value, string key, string source)
    {
        if (value <= 0) throw new InvalidDataException($"{source}: {key} must be positive, got {value}.");
    }
}
