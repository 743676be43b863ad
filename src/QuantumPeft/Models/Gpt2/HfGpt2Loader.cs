using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Decoder;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Gpt2;

/// <summary>Loads and saves GPT-2 folders (config.json + model.safetensors, sharded safetensors or pytorch_model.bin).</summary>
public static class HfGpt2Loader
{
    // The causal-mask buffers old checkpoints saved (h.N.attn.bias, h.N.attn.masked_bias) carry no weights.
    static readonly string[] Buffers = [".attn.bias", ".attn.masked_bias"];

    /// <summary>Reads and validates the folder's config.json.</summary>
    public static Gpt2Config LoadConfig(string folder) => Gpt2Config.Load(HfCheckpoint.ConfigPath(folder));

    /// <summary>
    /// Loads a GPT2LMHeadModel (names transformer.*, lm_head.weight only when untied) or GPT2Model (names wte.*, h.*)
    /// checkpoint. A model tensor missing from the checkpoint is an error naming the folder and the key.
    /// </summary>
    public static (ICausalLM Model, HfLoadReport Report) Load(string folder, DecoderLoadOptions options)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var model = new Gpt2LMHeadModel(config, folder);
            var tied = config.TieWordEmbeddings ? new[] { "lm_head.weight" } : [];
            var report = HfStateDict.Load(model, weights, folder, new HfLoadOptions("transformer.", IgnoredUnexpected: Buffers, Tied: tied), options.Log);
            if (report.Missing.Count > 0)
            {
                model.Dispose();
                throw new InvalidDataException($"{folder}: the checkpoint lacks {report.Missing.Count} tensor(s) a GPT-2 with this config.json needs: " +
                    $"{string.Join(", ", report.Missing.Take(6))}{(report.Missing.Count > 6 ? ", ..." : "")}" +
                    (report.Missing.Contains("lm_head.weight") ? " (config.json says tie_word_embeddings: false, so lm_head.weight must be in the file)." : "."));
            }
            model.eval();
            return (CausalLMs.Place(model, options), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>Writes a loaded GPT-2 (its current weights) as a GPT2LMHeadModel folder; the registry's writer.</summary>
    public static void Save(ICausalLM model, string folder, string? copyFilesFrom)
    {
        var gpt2 = model as Gpt2LMHeadModel ?? throw new ArgumentException($"expected a GPT-2 model, got {model.GetType().Name}.", nameof(model));
        var state = gpt2.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().contiguous());
        Save(folder, gpt2.Config, state, copyFilesFrom);
    }

    /// <summary>
    /// Writes a GPT2LMHeadModel folder from a state dict with Hugging Face names (e.g. after merging adapters); a tied
    /// lm_head.weight is left out, as save_pretrained does. Tokenizer and generation files come from <paramref name="copyTokenizerFrom"/>.
    /// </summary>
    public static void Save(string folder, Gpt2Config config, IReadOnlyDictionary<string, Tensor> stateDict, string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        config.Validate("config");
        var tensors = stateDict.Where(p => !(config.TieWordEmbeddings && p.Key == "lm_head.weight")).ToDictionary(p => p.Key, p => p.Value);
        var extra = config.Extra is null ? new Dictionary<string, System.Text.Json.JsonElement>() : new(config.Extra);
        extra["architectures"] = System.Text.Json.JsonSerializer.SerializeToElement(new[] { "GPT2LMHeadModel" });
        HfFolderWriter.Write(folder, (config with { Extra = extra }).ToJson(), tensors, maxShardBytes, copyTokenizerFrom);
    }
}
