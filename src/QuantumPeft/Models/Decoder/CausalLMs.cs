using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Decoder;

/// <summary>How to load a causal-LM folder: where the weights go and in which dtype they compute.</summary>
/// <param name="Device">The device (null: CPU).</param>
/// <param name="DType">The dtype of the model's weights after loading (null: float32, whatever the file stores).</param>
/// <param name="Log">Receives load warnings (null: stderr).</param>
public sealed record DecoderLoadOptions(Device? Device = null, ScalarType? DType = null, Action<string>? Log = null)
{
    /// <summary>The --dtype names and their types.</summary>
    public static readonly IReadOnlyDictionary<string, ScalarType> DTypeNames = new Dictionary<string, ScalarType>(StringComparer.OrdinalIgnoreCase)
    {
        ["float32"] = ScalarType.Float32, ["fp32"] = ScalarType.Float32,
        ["float16"] = ScalarType.Float16, ["fp16"] = ScalarType.Float16,
        ["bfloat16"] = ScalarType.BFloat16, ["bf16"] = ScalarType.BFloat16,
    };

    /// <summary>Parses a --dtype value ("float32", "float16", "bfloat16"); throws naming the choices.</summary>
    public static ScalarType ParseDType(string name) =>
        DTypeNames.TryGetValue(name, out var t) ? t
            : throw new ArgumentException($"--dtype '{name}' is not supported; choose float32, float16 or bfloat16.", nameof(name));
}

/// <summary>A causal-LM architecture: which model_type values it reads and how to load a folder of them.</summary>
/// <param name="ModelTypes">config.json model_type values.</param>
/// <param name="Load">Builds the model from the folder's config.json and weights.</param>
/// <param name="Save">Writes a model of this architecture (its current weights, e.g. after merging adapters) as a plain Hugging Face
/// folder: config.json, safetensors (a tied head left out), and the tokenizer and generation files of the folder named by the third argument.</param>
public sealed record CausalLMArchitecture(IReadOnlyList<string> ModelTypes, Func<string, DecoderLoadOptions, (ICausalLM Model, HfLoadReport Report)> Load,
    Action<ICausalLM, string, string?> Save);

/// <summary>The causal-LM architectures this library loads, picked by config.json's model_type.</summary>
public static class CausalLMs
{
    // One line per architecture folder.
    private static readonly List<CausalLMArchitecture> architectures =
    [
        new(Gpt2.Gpt2Config.SupportedModelTypes, Gpt2.HfGpt2Loader.Load, Gpt2.HfGpt2Loader.Save),
        new(Llama.LlamaConfig.SupportedModelTypes, Llama.HfLlamaLoader.Load, Llama.HfLlamaLoader.Save),
    ];

    /// <summary>Every model_type a causal-LM folder may have.</summary>
    public static IReadOnlyList<string> ModelTypes => architectures.SelectMany(a => a.ModelTypes).ToList();

    /// <summary>config.json's model_type (null when absent); throws for a missing folder or config.</summary>
    public static string? ReadModelType(string folder) => HfCheckpoint.ReadModelType(folder);

    /// <summary>The layers adapted unless the user names others: the LoRA paper's query and value (GPT-2's c_attn[q,v], the LLaMA family's q_proj and v_proj).</summary>
    public static string DefaultTargets(string folder) => ReadModelType(folder) == "gpt2" ? "c_attn[q,v]" : "q_proj,v_proj";

    /// <summary>True when the folder's model_type is a causal LM this library loads.</summary>
    public static bool IsCausalLM(string folder) => ReadModelType(folder) is { } t && ModelTypes.Contains(t);

    /// <summary>Loads a causal-LM folder (config.json + safetensors, sharded safetensors or pytorch_model.bin).</summary>
    /// <exception cref="NotSupportedException">The model_type is not a causal LM this library knows (the message lists them).</exception>
    public static (ICausalLM Model, HfLoadReport Report) LoadWithReport(string folder, DecoderLoadOptions? options = null)
    {
        var type = ReadModelType(folder);
        var arch = architectures.FirstOrDefault(a => type is not null && a.ModelTypes.Contains(type!))
            ?? throw new NotSupportedException(
                $"{HfCheckpoint.ConfigPath(folder)}: model_type '{type ?? "(none)"}' is not a supported causal LM (supported: {string.Join(", ", ModelTypes)}).");
        return arch.Load(folder, options ?? new DecoderLoadOptions());
    }

    /// <summary>Writes <paramref name="model"/> (its current weights) as a plain Hugging Face folder, copying tokenizer and generation files from <paramref name="copyFilesFrom"/>.</summary>
    public static void Save(ICausalLM model, string folder, string? copyFilesFrom = null)
    {
        var arch = architectures.FirstOrDefault(a => a.ModelTypes.Contains(model.Info.ModelType))
            ?? throw new NotSupportedException($"no writer for model_type '{model.Info.ModelType}'.");
        arch.Save(model, folder, copyFilesFrom);
    }

    /// <summary><see cref="LoadWithReport"/> without the report.</summary>
    public static ICausalLM Load(string folder, DecoderLoadOptions? options = null) => LoadWithReport(folder, options).Model;

    /// <summary>Moves a freshly loaded model to the options' device and dtype (float32 when none is given).</summary>
    public static T Place<T>(T model, DecoderLoadOptions options) where T : nn.Module
    {
        if (options.DType is { } dt && dt != ScalarType.Float32) model.to(dt);
        if (options.Device is { } d && d.type != DeviceType.CPU) model.to(d);
        return model;
    }
}

/// <summary>Reads the special-token ids of a decoder folder: config.json, overridden by generation_config.json as transformers does.</summary>
public static class SpecialTokenIds
{
    /// <summary>generation_config.json's file name.</summary>
    public const string GenerationConfigFile = "generation_config.json";

    /// <summary>(bos, eos list, pad) from config.json's root <paramref name="config"/> and the folder's generation_config.json when present.</summary>
    public static (int? Bos, IReadOnlyList<int> Eos, int? Pad) Read(JsonElement config, string? folder)
    {
        int? bos = Int(config, "bos_token_id"), pad = Int(config, "pad_token_id");
        var eos = Ids(config, "eos_token_id");
        var genPath = folder is null ? null : Path.Combine(folder, GenerationConfigFile);
        if (genPath is not null && File.Exists(genPath))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(genPath));
                var g = doc.RootElement;
                if (g.ValueKind == JsonValueKind.Object)
                {
                    bos = Int(g, "bos_token_id") ?? bos;
                    pad = Int(g, "pad_token_id") ?? pad;
                    var ge = Ids(g, "eos_token_id");
                    if (ge.Count > 0) eos = ge;
                }
            }
            catch (JsonException e) { throw new InvalidDataException($"{genPath}: not valid JSON ({e.Message}).", e); }
        }
        return (bos, eos, pad);
    }

    static int? Int(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    static List<int> Ids(JsonElement e, string key)
    {
        if (!e.TryGetProperty(key, out var v)) return [];
        return v.ValueKind switch
        {
            JsonValueKind.Number => [v.GetInt32()],
            JsonValueKind.Array => v.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.Number).Select(x => x.GetInt32()).ToList(),
            _ => [],
        };
    }
}
