using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Bert;
using QuantumPeft.Tests.Data.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Roberta;

/// <summary>A tiny RoBERTa folder in the Hugging Face layout: config.json, model.safetensors (a base checkpoint with lm_head and pooler), vocab.json + merges.txt.</summary>
static class TinyRoberta
{
    /// <summary>&lt;s&gt; 0, &lt;pad&gt; 1, &lt;/s&gt; 2, &lt;unk&gt; 3 (RoBERTa's order), then the 256 byte tokens, the merged tokens, &lt;mask&gt;.</summary>
    public static Dictionary<string, int> Vocab()
    {
        var vocab = new Dictionary<string, int> { ["<s>"] = 0, ["<pad>"] = 1, ["</s>"] = 2, ["<unk>"] = 3 };
        for (int i = 0; i < 256; i++) vocab[TokenizerFileWriter.ByteToChar[TokenizerFileWriter.ByteOrder[i]].ToString()] = vocab.Count;
        foreach (var m in TokenizerFileWriter.SmallMerges) vocab[m.Replace(" ", "")] = vocab.Count;
        vocab["<mask>"] = vocab.Count;
        return vocab;
    }

    public const int Hidden = 16, Layers = 2, Heads = 4, Intermediate = 24, MaxPositions = 40;

    /// <summary>Writes the folder with weights drawn from <paramref name="seed"/> (large enough that every term of the forward pass matters).</summary>
    public static string Write(string folder, long seed = 7, string modelType = "roberta")
    {
        Directory.CreateDirectory(folder);
        var vocab = Vocab();
        TokenizerFileWriter.WriteGpt2(folder, vocab, TokenizerFileWriter.SmallMerges);
        var config = new Dictionary<string, object>
        {
            ["model_type"] = modelType, ["architectures"] = new[] { "RobertaForMaskedLM" }, ["vocab_size"] = vocab.Count,
            ["hidden_size"] = Hidden, ["num_hidden_layers"] = Layers, ["num_attention_heads"] = Heads, ["intermediate_size"] = Intermediate,
            ["hidden_act"] = "gelu", ["max_position_embeddings"] = MaxPositions, ["type_vocab_size"] = 1, ["layer_norm_eps"] = 1e-5,
            ["pad_token_id"] = 1, ["bos_token_id"] = 0, ["eos_token_id"] = 2, ["hidden_dropout_prob"] = 0.1, ["attention_probs_dropout_prob"] = 0.1,
        };
        var configJson = JsonSerializer.Serialize(config);
        var bert = BertConfig.FromJson(configJson, "tiny", BertConfig.RobertaModelTypes);
        using var model = new BertModel(bert, addPoolingLayer: true, seed: seed);
        var tensors = new Dictionary<string, Tensor>();
        using var generator = new Generator((ulong)seed + 100, CPU);
        foreach (var (name, t) in model.state_dict())
            tensors["roberta." + name] = t + 0.3 * randn(t.shape, generator: generator);
        // What roberta-base also carries: the masked-LM head, which a classifier ignores.
        tensors["lm_head.dense.weight"] = randn(Hidden, Hidden, generator: generator);
        tensors["lm_head.bias"] = randn(vocab.Count, generator: generator);
        HfFolderWriter.Write(folder, configJson, tensors);
        return folder;
    }
}
