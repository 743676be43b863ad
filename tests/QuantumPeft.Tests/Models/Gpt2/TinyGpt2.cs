using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Gpt2;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Gpt2;

/// <summary>Tiny GPT-2 checkpoints written the way transformers' save_pretrained writes them.</summary>
static class TinyGpt2
{
    public const int Vocab = 40, Embd = 16, Layers = 2, Heads = 4, Positions = 32;

    /// <summary>config.json text with every key save_pretrained writes for a GPT2LMHeadModel.</summary>
    public static string ConfigJson(bool tied = true, string act = "gelu_new", string modelType = "gpt2", bool inverseLayerScale = false, int? inner = null, int vocab = Vocab, int eos = 2) => $$"""
    {
      "activation_function": "{{act}}",
      "architectures": ["GPT2LMHeadModel"],
      "attn_pdrop": 0.1,
      "bos_token_id": 1,
      "embd_pdrop": 0.1,
      "eos_token_id": {{eos}},
      "initializer_range": 0.02,
      "layer_norm_epsilon": 1e-05,
      "model_type": "{{modelType}}",
      "n_embd": {{Embd}},
      "n_head": {{Heads}},
      "n_inner": {{(inner is null ? "null" : inner.ToString())}},
      "n_layer": {{Layers}},
      "n_positions": {{Positions}},
      "reorder_and_upcast_attn": false,
      "resid_pdrop": 0.1,
      "scale_attn_by_inverse_layer_idx": {{(inverseLayerScale ? "true" : "false")}},
      "scale_attn_weights": true,
      "summary_activation": null,
      "summary_first_dropout": 0.1,
      "summary_proj_to_labels": true,
      "summary_type": "cls_index",
      "summary_use_proj": true,
      "tie_word_embeddings": {{(tied ? "true" : "false")}},
      "torch_dtype": "float32",
      "transformers_version": "4.46.3",
      "use_cache": true,
      "vocab_size": {{vocab}}
    }
    """;

    /// <summary>A model with seeded random weights (LayerNorms perturbed so they matter) in eval mode.</summary>
    public static Gpt2LMHeadModel Model(bool tied = true, long seed = 7, string act = "gelu_new", bool inverseLayerScale = false, int? inner = null,
        int vocab = Vocab, int eos = 2)
    {
        manual_seed(seed);
        var model = new Gpt2LMHeadModel(Gpt2Config.FromJson(ConfigJson(tied, act, inverseLayerScale: inverseLayerScale, inner: inner, vocab: vocab, eos: eos)));
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.Contains("ln_")) p.add_(randn_like(p) * 0.1);
                else if (name.EndsWith(".bias")) p.add_(randn_like(p) * 0.02);
                else p.mul_(10);   // larger weights than the 0.02 init, so attention is not nearly uniform
        model.eval();
        return model;
    }

    /// <summary>
    /// Writes <paramref name="model"/> as an HF folder: keys transformer.* (or, with <paramref name="basePrefix"/> false, GPT2Model's bare keys),
    /// lm_head.weight only when untied, the old causal-mask buffers h.N.attn.bias, optionally bf16 and sharded.
    /// </summary>
    public static string Write(Gpt2LMHeadModel model, string folder, bool tied = true, bool basePrefix = true, bool bf16 = false, long? shardBytes = null,
        Func<string, string>? configEdit = null, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>>? tensorsEdit = null)
    {
        Directory.CreateDirectory(folder);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (name, t) in model.state_dict())
        {
            if (tied && name == "lm_head.weight") continue;
            var key = basePrefix ? name : name.StartsWith("transformer.") ? name["transformer.".Length..] : name;
            var value = t.detach().clone();
            tensors[key] = bf16 ? value.to(ScalarType.BFloat16) : value;
        }
        for (int i = 0; i < Layers; i++)
            tensors[(basePrefix ? "transformer." : "") + $"h.{i}.attn.bias"] = tril(ones(Positions, Positions, dtype: ScalarType.Bool)).view(1, 1, Positions, Positions);
        if (tensorsEdit is not null) tensors = tensorsEdit(tensors);
        var config = ConfigJson(tied, vocab: model.Config.VocabSize, eos: model.Info.EosTokenIds.FirstOrDefault(2)).Replace("\"torch_dtype\": \"float32\"", bf16 ? "\"torch_dtype\": \"bfloat16\"" : "\"torch_dtype\": \"float32\"");
        if (configEdit is not null) config = configEdit(config);
        if (shardBytes is { } s)
            QuantumPeft.Formats.HuggingFace.HfFolderWriter.Write(folder, config, tensors, s);
        else
        {
            SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            File.WriteAllText(Path.Combine(folder, "config.json"), config);
        }
        return folder;
    }

    public static Tensor Ids(params long[][] rows)
    {
        var flat = rows.SelectMany(r => r).ToArray();
        return tensor(flat, [rows.Length, rows[0].Length]);
    }
}
