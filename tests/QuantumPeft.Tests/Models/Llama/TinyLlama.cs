using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Safetensors;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Llama;

/// <summary>Tiny LLaMA-family checkpoints written in the exact Hugging Face layout, with tensor names and shapes spelled
/// out here from transformers' module tree (not taken from the model under test).</summary>
static class TinyLlama
{
    /// <summary>config.json as save_pretrained writes it for <paramref name="modelType"/>, with tiny sizes (GQA: 4 heads, 2 kv heads).</summary>
    public static Dictionary<string, object?> Config(string modelType)
    {
        var c = new Dictionary<string, object?>
        {
            ["architectures"] = new[] { modelType switch { "mistral" => "MistralForCausalLM", "qwen2" => "Qwen2ForCausalLM", _ => "LlamaForCausalLM" } },
            ["attention_dropout"] = 0.0,
            ["bos_token_id"] = 1,
            ["eos_token_id"] = 2,
            ["hidden_act"] = "silu",
            ["hidden_size"] = 16,
            ["initializer_range"] = 0.02,
            ["intermediate_size"] = 24,
            ["max_position_embeddings"] = 64,
            ["model_type"] = modelType,
            ["num_attention_heads"] = 4,
            ["num_hidden_layers"] = 2,
            ["num_key_value_heads"] = 2,
            ["rms_norm_eps"] = 1e-6,
            ["rope_scaling"] = null,
            ["rope_theta"] = 10000.0,
            ["tie_word_embeddings"] = false,
            ["torch_dtype"] = "float32",
            ["transformers_version"] = "4.46.0",
            ["use_cache"] = true,
            ["vocab_size"] = 40,
        };
        switch (modelType)
        {
            case "llama":
                c["attention_bias"] = false;
                c["mlp_bias"] = false;
                c["pretraining_tp"] = 1;
                c["head_dim"] = 4;
                break;
            case "mistral":
                c["head_dim"] = 4;
                c["sliding_window"] = 4096;
                break;
            case "qwen2":
                c["max_window_layers"] = 2;
                c["sliding_window"] = 4096;
                c["use_sliding_window"] = false;
                c["tie_word_embeddings"] = true;
                break;
        }
        return c;
    }

    static int Int(Dictionary<string, object?> c, string key) => Convert.ToInt32(c[key]);
    static bool Flag(Dictionary<string, object?> c, string key) => c.TryGetValue(key, out var v) && v is true;

    /// <summary>The checkpoint tensors transformers' XForCausalLM has for config <paramref name="c"/>: name to shape.</summary>
    public static SortedDictionary<string, long[]> Shapes(Dictionary<string, object?> c)
    {
        string type = (string)c["model_type"]!;
        int hidden = Int(c, "hidden_size"), inter = Int(c, "intermediate_size"), heads = Int(c, "num_attention_heads");
        int kv = Int(c, "num_key_value_heads"), vocab = Int(c, "vocab_size");
        int headDim = c.TryGetValue("head_dim", out var hd) && hd is not null ? Convert.ToInt32(hd) : hidden / heads;
        bool qkvBias = type == "qwen2" || (type == "llama" && Flag(c, "attention_bias"));
        bool oBias = type == "llama" && Flag(c, "attention_bias");
        bool mlpBias = type == "llama" && Flag(c, "mlp_bias");
        var s = new SortedDictionary<string, long[]>(StringComparer.Ordinal) { ["model.embed_tokens.weight"] = [vocab, hidden], ["model.norm.weight"] = [hidden] };
        for (int i = 0; i < Int(c, "num_hidden_layers"); i++)
        {
            var p = $"model.layers.{i}.";
            s[p + "self_attn.q_proj.weight"] = [heads * headDim, hidden];
            s[p + "self_attn.k_proj.weight"] = [kv * headDim, hidden];
            s[p + "self_attn.v_proj.weight"] = [kv * headDim, hidden];
            s[p + "self_attn.o_proj.weight"] = [hidden, heads * headDim];
            if (qkvBias)
            {
                s[p + "self_attn.q_proj.bias"] = [heads * headDim];
                s[p + "self_attn.k_proj.bias"] = [kv * headDim];
                s[p + "self_attn.v_proj.bias"] = [kv * headDim];
            }
            if (oBias) s[p + "self_attn.o_proj.bias"] = [hidden];
            s[p + "mlp.gate_proj.weight"] = [inter, hidden];
            s[p + "mlp.up_proj.weight"] = [inter, hidden];
            s[p + "mlp.down_proj.weight"] = [hidden, inter];
            if (mlpBias)
            {
                s[p + "mlp.gate_proj.bias"] = [inter];
                s[p + "mlp.up_proj.bias"] = [inter];
                s[p + "mlp.down_proj.bias"] = [hidden];
            }
            s[p + "input_layernorm.weight"] = [hidden];
            s[p + "post_attention_layernorm.weight"] = [hidden];
        }
        // save_pretrained leaves a tied head out.
        if (!Flag(c, "tie_word_embeddings")) s["lm_head.weight"] = [vocab, hidden];
        return s;
    }

    /// <summary>Random tensors for every checkpoint name: weights N(0, 0.3), biases N(0, 0.1), norms 1 + N(0, 0.1), embeddings N(0, 1).</summary>
    public static Dictionary<string, Tensor> Weights(Dictionary<string, object?> c, long seed)
    {
        using var generator = new Generator((ulong)seed, CPU);
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, shape) in Shapes(c))
        {
            var t = empty(shape, ScalarType.Float32).normal_(0, 1, generator);
            result[name] = name.Contains("norm") ? 1 + 0.1 * t
                : name.EndsWith("bias") ? 0.1 * t
                : name.Contains("embed_tokens") ? t
                : 0.3 * t;
        }
        return result;
    }

    public static string Json(Dictionary<string, object?> c) => JsonSerializer.Serialize(c, new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Writes config.json and model.safetensors (or shards) into <paramref name="folder"/>; returns the tensors written.</summary>
    public static Dictionary<string, Tensor> Write(string folder, Dictionary<string, object?> c, long seed = 1,
        ScalarType dtype = ScalarType.Float32, long? maxShardBytes = null)
    {
        var weights = Weights(c, seed);
        if (dtype != ScalarType.Float32) weights = weights.ToDictionary(p => p.Key, p => p.Value.to(dtype));
        Directory.CreateDirectory(folder);
        if (maxShardBytes is null)
        {
            File.WriteAllText(Path.Combine(folder, "config.json"), Json(c));
            SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        }
        else HfFolderWriter.Write(folder, Json(c), weights, maxShardBytes);
        return weights;
    }

    /// <summary>Token ids [1, T] in [3, vocab).</summary>
    public static Tensor Ids(int length, long seed = 5, int vocab = 40)
    {
        using var generator = new Generator((ulong)seed, CPU);
        return randint(3, vocab, [1, length], dtype: ScalarType.Int64, generator: generator);
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var d = (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max();
        return d.item<double>();
    }
}
