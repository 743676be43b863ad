using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Decoder;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Llama;

/// <summary>Loads and saves LLaMA, Mistral and Qwen2 causal LMs as Hugging Face folders (config.json + safetensors / sharded / pytorch_model.bin).</summary>
public static class HfLlamaLoader
{
    /// <summary>The tied LM head's name: save_pretrained leaves it out of the weights when tie_word_embeddings is true.</summary>
    public const string LmHeadWeight = "lm_head.weight";

    // A buffer older checkpoints saved in every attention layer; transformers now computes it.
    static readonly string[] AlwaysIgnored = ["rotary_emb.inv_freq"];

    /// <summary>Reads and validates the folder's config.json (throws for a missing file or an unsupported model_type).</summary>
    public static LlamaConfig LoadConfig(string folder) => LlamaConfig.Load(HfCheckpoint.ConfigPath(folder));

    /// <summary>The <see cref="CausalLMs"/> entry: <see cref="LoadForCausalLM"/> as an <see cref="ICausalLM"/>.</summary>
    public static (ICausalLM Model, HfLoadReport Report) Load(string folder, DecoderLoadOptions options)
    {
        var (model, report) = LoadForCausalLM(folder, options);
        return (model, report);
    }

    /// <summary>
    /// Builds the model from config.json and copies the folder's weights into it (names model.* and lm_head.*, or a base
    /// LlamaModel's names without model.), then moves it to the options' device and dtype (float32 by default, whatever
    /// the file stores). A tensor the model needs and the folder lacks is an error naming the folder and the key.
    /// </summary>
    public static (LlamaForCausalLM Model, HfLoadReport Report) LoadForCausalLM(string folder, DecoderLoadOptions? options = null)
    {
        options ??= new DecoderLoadOptions();
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        LlamaForCausalLM? model = null;
        try
        {
            // A tied head is the embedding: a stray copy in the checkpoint must not overwrite it (transformers ties after loading).
            if (config.TieWordEmbeddings && weights.Remove(LmHeadWeight, out var strayHead)) strayHead.Dispose();
            model = new LlamaForCausalLM(config);
            var messages = new List<string>();
            var loadOptions = new HfLoadOptions("model.", IgnoredUnexpected: AlwaysIgnored, Tied: config.TieWordEmbeddings ? [LmHeadWeight] : null);
            var report = HfStateDict.Load(model, weights, folder, loadOptions, messages.Add);
            if (report.Missing.Count > 0)
                throw new InvalidDataException(
                    $"{folder}: the checkpoint lacks {report.Missing.Count} tensor(s) a {config.ModelType} model with this config.json needs: " +
                    $"{string.Join(", ", report.Missing.Take(8))}{(report.Missing.Count > 8 ? ", ..." : "")} " +
                    $"(expected every weight of {config.ArchitectureName}, under model.* and lm_head.*{(config.TieWordEmbeddings ? "" : "; lm_head.weight is required because tie_word_embeddings is false")}).");
            var log = options.Log ?? (m => Console.Error.WriteLine(m));
            foreach (var m in messages) log(m);
            model.Info = config.Info(folder);
            model.eval();
            CausalLMs.Place(model, options);
            return (model, report);
        }
        catch
        {
            model?.Dispose();
            throw;
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>Saves a model as a Hugging Face folder (config.json with its architecture, weights without a tied lm_head).</summary>
    public static void Save(string folder, LlamaForCausalLM model, string? copyTokenizerFrom = null, long? maxShardBytes = null) =>
        Save(folder, model.Config, model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().contiguous()), copyTokenizerFrom, maxShardBytes);

    /// <summary>Writes a loaded model (its current weights, in their dtype) as a plain Hugging Face folder: the shape of a registry writer.</summary>
    public static void Save(ICausalLM model, string folder, string? copyFilesFrom)
    {
        var llama = model as LlamaForCausalLM ?? throw new ArgumentException($"expected a LLaMA-family model, got {model.GetType().Name}.", nameof(model));
        Save(folder, llama, copyFilesFrom);
    }

    /// <summary>
    /// Writes a state dict with Hugging Face names (e.g. after merging adapters into the base weights) and its config as a
    /// model folder, as save_pretrained does: lm_head.weight is left out when the embeddings are tied, config.json names
    /// the architecture and the tensors' dtype. <paramref name="copyTokenizerFrom"/> names a folder whose tokenizer files come along.
    /// </summary>
    public static void Save(string folder, LlamaConfig config, IReadOnlyDictionary<string, Tensor> stateDict,
        string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        config.Validate("config");
        var tensors = config.TieWordEmbeddings ? stateDict.Where(p => p.Key != LmHeadWeight).ToDictionary() : stateDict;
        var extra = config.Extra is null ? new Dictionary<string, JsonElement>() : new Dictionary<string, JsonElement>(config.Extra);
        if (!extra.ContainsKey("architectures")) extra["architectures"] = JsonSerializer.SerializeToElement(new[] { config.ArchitectureName });
        if (tensors.Values.FirstOrDefault(t => t.is_floating_point()) is { } first && DTypeName(first.dtype) is { } dtypeName)
        {
            extra["torch_dtype"] = JsonSerializer.SerializeToElement(dtypeName);
            if (extra.ContainsKey("dtype")) extra["dtype"] = extra["torch_dtype"];
        }
        HfFolderWriter.Write(folder, (config with { Extra = extra }).ToJson(), tensors, maxShardBytes, copyTokenizerFrom);
    }

    static string? DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => null,
    };
}
