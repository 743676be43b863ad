using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;

namespace QuantumPeft.Models.Shapes;

/// <summary>The adaptable matrices of any model folder this library loads, computed from its config.json alone (no weights are read).</summary>
public static class FolderShapes
{
    /// <summary>The target sets: the paper's (encoders: the six matrices of every layer; decoders: query and value) or every linear layer of a block.</summary>
    public static readonly IReadOnlyList<string> TargetSets = ["paper", "all-linear"];

    /// <summary>
    /// The shapes of one block of the folder's model, repeated in every layer. <paramref name="targets"/> "paper" takes query and
    /// value (GPT-2: the q and v thirds of c_attn, as the LoRA paper; LLaMA family: q_proj and v_proj), for encoders (BERT, RoBERTa, DeBERTa-v2)
    /// the six matrices of the paper's DeBERTaV3 experiment (query, key, value, attention output, intermediate, output); "all-linear" every
    /// projection of a block (the LM or classifier head excluded).
    /// </summary>
    /// <exception cref="NotSupportedException">The model_type is not one this library loads.</exception>
    public static ModelShape FromFolder(string folder, string targets = "paper")
    {
        if (!TargetSets.Contains(targets)) throw new ArgumentException($"--targets '{targets}' is not a target set; choose {string.Join(" or ", TargetSets)}.", nameof(targets));
        var path = HfCheckpoint.ConfigPath(folder);
        JsonElement c;
        try { c = JsonDocument.Parse(File.ReadAllText(path)).RootElement.Clone(); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
        int Get(string key, int? fallback = null) =>
            c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32()
            : fallback ?? throw new InvalidDataException($"{path}: {key} is missing (needed to compute the layer shapes).");
        var type = c.TryGetProperty("model_type", out var t) ? t.GetString() : null;
        var id = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        bool all = targets == "all-linear";
        switch (type)
        {
            case "gpt2":
            {
                int e = Get("n_embd", 768), layers = Get("n_layer", 12);
                int inner = c.TryGetProperty("n_inner", out var n) && n.ValueKind == JsonValueKind.Number ? n.GetInt32() : 4 * e;
                List<LinearShape> shapes = all
                    ? [new("attn.c_attn", e, 3 * e), new("attn.c_proj", e, e), new("mlp.c_fc", e, inner), new("mlp.c_proj", inner, e)]
                    : [new("attn.c_attn[q]", e, e), new("attn.c_attn[v]", e, e)];
                return new(id, folder, layers, e, shapes, all ? "all-linear" : "query+value",
                    all ? "Every Conv1D of a block; lm_head excluded." : "The q and v thirds of the fused c_attn, each its own matrix (target c_attn[q,v]).");
            }
            case "llama" or "mistral" or "qwen2":
            {
                int h = Get("hidden_size"), heads = Get("num_attention_heads"), kv = Get("num_key_value_heads", heads);
                int headDim = c.TryGetProperty("head_dim", out var hd) && hd.ValueKind == JsonValueKind.Number ? hd.GetInt32() : h / heads;
                int inter = Get("intermediate_size"), layers = Get("num_hidden_layers");
                List<LinearShape> shapes = all
                    ? [new("self_attn.q_proj", h, heads * headDim), new("self_attn.k_proj", h, kv * headDim), new("self_attn.v_proj", h, kv * headDim),
                       new("self_attn.o_proj", heads * headDim, h), new("mlp.gate_proj", h, inter), new("mlp.up_proj", h, inter), new("mlp.down_proj", inter, h)]
                    : [new("self_attn.q_proj", h, heads * headDim), new("self_attn.v_proj", h, kv * headDim)];
                return new(id, folder, layers, h, shapes, all ? "all-linear" : "query+value",
                    all ? "Every projection of a block; lm_head excluded." : $"q_proj and v_proj ({kv} key/value heads of {headDim}).");
            }
            case "bert" or "roberta" or "xlm-roberta":
            {
                // Encoders: "paper" is the paper's encoder set (DeBERTaV3, as AdaLoRA): all six matrices, the same as --targets paper trains.
                int h = Get("hidden_size", 768), inter = Get("intermediate_size", 3072), layers = Get("num_hidden_layers", 12);
                List<LinearShape> shapes =
                    [new("attention.self.query", h, h), new("attention.self.key", h, h), new("attention.self.value", h, h),
                     new("attention.output.dense", h, h), new("intermediate.dense", h, inter), new("output.dense", inter, h)];
                return new(id, folder, layers, h, shapes, all ? "all-linear" : "query+key+value+attention_output+intermediate+output",
                    all ? "Every linear layer of a block; the pooler and head excluded." : "All six matrices of every layer, as AdaLoRA (and the paper's LoRA baseline).");
            }
            case "deberta-v2":
            {
                // DeBERTa-v2 / v3 (transformers' DebertaV2Config defaults); "paper" is AdaLoRA's six matrices, as for the other encoders.
                // all-linear adds the position projections of layers that do not share the content keys (share_att_key false, v2).
                int h = Get("hidden_size", 1536), inter = Get("intermediate_size", 6144), layers = Get("num_hidden_layers", 24);
                List<LinearShape> shapes =
                    [new("attention.self.query_proj", h, h), new("attention.self.key_proj", h, h), new("attention.self.value_proj", h, h),
                     new("attention.output.dense", h, h), new("intermediate.dense", h, inter), new("output.dense", inter, h)];
                bool shared = c.TryGetProperty("share_att_key", out var sk) && sk.ValueKind == JsonValueKind.True;
                var posTypes = !c.TryGetProperty("pos_att_type", out var pt) ? []
                    : pt.ValueKind == JsonValueKind.Array ? pt.EnumerateArray().Select(x => x.GetString() ?? "").ToList()
                    : pt.ValueKind == JsonValueKind.String ? pt.GetString()!.ToLowerInvariant().Split('|').ToList() : [];
                if (all && !shared && posTypes.Contains("c2p")) shapes.Add(new("attention.self.pos_key_proj", h, h));
                if (all && !shared && posTypes.Contains("p2c")) shapes.Add(new("attention.self.pos_query_proj", h, h));
                return new(id, folder, layers, h, shapes, all ? "all-linear" : "query+key+value+attention_output+intermediate+output",
                    all ? "The six linear layers of every block; the pooler and classifier excluded." : "All six matrices of every layer, as AdaLoRA (and the paper's LoRA baseline).");
            }
            case "vit":
            {
                // transformers' ViTConfig defaults (ViT-B/16); the patch projection is a Conv2d, not a linear layer.
                int h = Get("hidden_size", 768), inter = Get("intermediate_size", 3072), layers = Get("num_hidden_layers", 12);
                List<LinearShape> shapes = all
                    ? [new("attention.attention.query", h, h), new("attention.attention.key", h, h), new("attention.attention.value", h, h),
                       new("attention.output.dense", h, h), new("intermediate.dense", h, inter), new("output.dense", inter, h)]
                    : [new("attention.attention.query", h, h), new("attention.attention.value", h, h)];
                return new(id, folder, layers, h, shapes, all ? "all-linear" : "query+value",
                    all ? "Every linear layer of a block; the patch projection (Conv2d), pooler and classifier excluded." : "Query and value of every layer.");
            }
            default:
                throw new NotSupportedException($"{path}: model_type '{type ?? "(none)"}' is not one this library loads (bert, roberta, xlm-roberta, deberta-v2, gpt2, llama, mistral, qwen2, vit).");
        }
    }
}
