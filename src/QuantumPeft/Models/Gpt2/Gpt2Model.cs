using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Gpt2;

// GPT-2 written top to bottom in the order the math goes. Field names are the Hugging Face module names, so a
// checkpoint loads without a translation table: transformer.wte, transformer.h.0.attn.c_attn, transformer.ln_f, lm_head.
// Every projection an adapter may wrap is a mutable field of type Module<Tensor, Tensor> (a Conv1D, weight [in, out]);
// adapter injection swaps the field by reflection and re-registers it, and forward reads the field.

/// <summary>Causal self-attention with the fused q, k, v projection <c>c_attn</c> and the output projection <c>c_proj</c>.</summary>
public sealed class Gpt2Attention : nn.Module
{
    private nn.Module<Tensor, Tensor> c_attn;
    private nn.Module<Tensor, Tensor> c_proj;
    private readonly Dropout attn_dropout;
    private readonly Dropout resid_dropout;
    private readonly int heads, headSize, embed;
    private readonly double scale;

    public Gpt2Attention(Gpt2Config config, int layerIndex) : base(nameof(Gpt2Attention))
    {
        embed = config.NEmbd;
        heads = config.NHead;
        headSize = config.HeadSize;
        c_attn = new Conv1D(embed, 3 * embed);
        c_proj = new Conv1D(embed, embed);
        attn_dropout = nn.Dropout(config.AttnPdrop);
        resid_dropout = nn.Dropout(config.ResidPdrop);
        // transformers: scores / sqrt(head_dim) when scale_attn_weights, and / (layer_idx + 1) when scale_attn_by_inverse_layer_idx.
        scale = (config.ScaleAttnWeights ? 1.0 / Math.Sqrt(headSize) : 1.0) / (config.ScaleAttnByInverseLayerIdx ? layerIndex + 1 : 1);
        RegisterComponents();
    }

    /// <summary>hidden [B, T, E] to the attended output [B, T, E]; <paramref name="mask"/> is additive [B, 1, T, S] or null.</summary>
    public Tensor Forward(Tensor hidden, Tensor? mask, KvCache? cache, int layerIndex)
    {
        long batch = hidden.shape[0], length = hidden.shape[1];
        var qkv = c_attn.call(hidden).split(embed, dim: 2);
        Tensor Heads(Tensor x) => x.reshape(batch, length, heads, headSize).transpose(1, 2);
        var q = Heads(qkv[0]);
        var k = Heads(qkv[1]);
        var v = Heads(qkv[2]);
        if (cache is not null) (k, v) = cache.Append(layerIndex, k, v);
        // Scores and softmax in float32 (transformers' eager path; reorder_and_upcast_attn computes the same in float32).
        var scores = q.to(ScalarType.Float32).matmul(k.to(ScalarType.Float32).transpose(-1, -2)) * scale;
        if (mask is not null) scores = scores + mask.to(ScalarType.Float32);
        var weights = attn_dropout.call(scores.softmax(-1)).to(v.dtype);
        var context = weights.matmul(v).transpose(1, 2).reshape(batch, length, embed);
        return resid_dropout.call(c_proj.call(context));
    }
}

/// <summary>The feed-forward block: c_fc to n_inner, the activation, c_proj back, dropout.</summary>
public sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> c_fc;
    private nn.Module<Tensor, Tensor> c_proj;
    private readonly Dropout dropout;
    private readonly Func<Tensor, Tensor> act;

    public Gpt2Mlp(Gpt2Config config) : base(nameof(Gpt2Mlp))
    {
        c_fc = new Conv1D(config.NEmbd, config.InnerSize);
        c_proj = new Conv1D(config.InnerSize, config.NEmbd);
        dropout = nn.Dropout(config.ResidPdrop);
        act = Activations.Get(config.ActivationFunction, "activation_function");
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden) => dropout.call(c_proj.call(act(c_fc.call(hidden))));
}

/// <summary>One pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>
public sealed class Gpt2Block : nn.Module
{
    private readonly LayerNorm ln_1;
    private readonly Gpt2Attention attn;
    private readonly LayerNorm ln_2;
    private readonly Gpt2Mlp mlp;
    private readonly int index;

    public Gpt2Block(Gpt2Config config, int layerIndex) : base(nameof(Gpt2Block))
    {
        index = layerIndex;
        ln_1 = nn.LayerNorm(config.NEmbd, eps: config.LayerNormEpsilon);
        attn = new Gpt2Attention(config, layerIndex);
        ln_2 = nn.LayerNorm(config.NEmbd, eps: config.LayerNormEpsilon);
        mlp = new Gpt2Mlp(config);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor? mask, KvCache? cache)
    {
        hidden = hidden + attn.Forward(ln_1.call(hidden), mask, cache, index);
        return hidden + mlp.call(ln_2.call(hidden));
    }
}

/// <summary>transformers' <c>GPT2Model</c>: token and learned position embeddings, the blocks, the final LayerNorm.</summary>
public sealed class Gpt2Model : nn.Module
{
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly Dropout drop;
    private readonly ModuleList<Gpt2Block> h;
    private readonly LayerNorm ln_f;

    /// <summary>The architecture.</summary>
    public Gpt2Config Config { get; }

    public Gpt2Model(Gpt2Config config) : base(nameof(Gpt2Model))
    {
        config.Validate("config");
        Config = config;
        wte = nn.Embedding(config.VocabSize, config.NEmbd);
        wpe = nn.Embedding(config.NPositions, config.NEmbd);
        using (no_grad())
        {
            wte.weight!.normal_(0, config.InitializerRange);
            wpe.weight!.normal_(0, config.InitializerRange);
        }
        drop = nn.Dropout(config.EmbdPdrop);
        h = new ModuleList<Gpt2Block>(Enumerable.Range(0, config.NLayer).Select(i => new Gpt2Block(config, i)).ToArray());
        ln_f = nn.LayerNorm(config.NEmbd, eps: config.LayerNormEpsilon);
        RegisterComponents();
    }

    /// <summary>The token embedding (the tied LM head shares its weight).</summary>
    public Embedding TokenEmbedding => wte;

    /// <summary>The final hidden states [B, T, E]; arguments as <see cref="ICausalLM.Forward"/>.</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache)
    {
        if (inputIds.ndim != 2) throw new ArgumentException($"input_ids must be [batch, length], got [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));
        long batch = inputIds.shape[0], length = inputIds.shape[1];
        long past = cache?.Length ?? 0;
        if (past + length > Config.NPositions)
            throw new ArgumentException($"sequence length {past + length} exceeds n_positions {Config.NPositions} of this GPT-2.", nameof(inputIds));
        using var ids = inputIds.to(ScalarType.Int64);
        var positions = positionIds ?? arange(past, past + length, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0).expand(batch, length);
        var hidden = drop.call(wte.call(ids) + wpe.call(positions));
        var mask = CausalMask.Build(attentionMask, batch, length, past, null, hidden.dtype, hidden.device);
        foreach (var block in h) hidden = block.Forward(hidden, mask, cache);
        return ln_f.call(hidden);
    }
}

/// <summary>transformers' <c>GPT2LMHeadModel</c>: <see cref="Gpt2Model"/> under <c>transformer.</c>, and <c>lm_head</c> (tied to wte by default).</summary>
public sealed class Gpt2LMHeadModel : nn.Module<Tensor, Tensor>, ICausalLM
{
    private readonly Gpt2Model transformer;
    private nn.Module<Tensor, Tensor> lm_head;

    /// <summary>The architecture.</summary>
    public Gpt2Config Config => transformer.Config;

    /// <inheritdoc/>
    public CausalLMInfo Info { get; }

    /// <inheritdoc/>
    public nn.Module Module => this;

    /// <summary>The backbone.</summary>
    public Gpt2Model Transformer => transformer;

    /// <summary>True when lm_head's weight is wte's (tie_word_embeddings).</summary>
    public bool TiedHead => Config.TieWordEmbeddings;

    /// <summary>Builds a randomly initialised model (N(0, initializer_range), as transformers does); <paramref name="folder"/> supplies generation_config.json's special tokens.</summary>
    public Gpt2LMHeadModel(Gpt2Config config, string? folder = null) : base(nameof(Gpt2LMHeadModel))
    {
        transformer = new Gpt2Model(config);
        var head = nn.Linear(config.NEmbd, config.VocabSize, hasBias: false);
        if (config.TieWordEmbeddings) head.weight = transformer.TokenEmbedding.weight!;
        else using (no_grad()) head.weight!.normal_(0, config.InitializerRange);
        lm_head = head;
        var json = System.Text.Json.JsonSerializer.SerializeToElement(config, Gpt2Config.JsonOptions);
        var (bos, eos, pad) = SpecialTokenIds.Read(json, folder);
        Info = new CausalLMInfo("gpt2", config.VocabSize, config.NLayer, config.NPositions, bos, eos, pad);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public Tensor HiddenStates(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null) =>
        transformer.Forward(inputIds, attentionMask, positionIds, cache);

    /// <inheritdoc/>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null) =>
        lm_head.call(HiddenStates(inputIds, attentionMask, positionIds, cache)).to(ScalarType.Float32);

    /// <inheritdoc/>
    public Tensor? OutputWeight => lm_head is TorchSharp.Modules.Linear { bias: null } head ? head.weight : null;

    /// <summary>Logits [B, T, vocab] for input ids [B, T] (no mask, no cache).</summary>
    public override Tensor forward(Tensor inputIds) => Forward(inputIds);
}
