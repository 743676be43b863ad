using QuantumPeft.Models.Decoder;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Llama;

// A LLaMA-family decoder (llama, mistral, qwen2) written top to bottom in the order the math goes. Field names are the
// Hugging Face module names, so the state dict reads model.layers.0.self_attn.q_proj.weight, lm_head.weight, ... and a
// checkpoint loads without a translation table. Every linear layer an adapter may wrap is a mutable field of type
// Module<Tensor, Tensor> holding a Linear: adapter injection swaps the field by reflection, and forward reads the field.

/// <summary>RMSNorm as transformers computes it: x * rsqrt(mean(x^2) + eps) in float32, cast back, then times the weight.</summary>
public sealed class LlamaRMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public LlamaRMSNorm(int size, double eps) : base(nameof(LlamaRMSNorm))
    {
        weight = new Parameter(ones(size));
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var dtype = x.dtype;
        using var scope = NewDisposeScope();
        var h = x.to(ScalarType.Float32);
        var normed = h * (h.pow(2).mean([-1], keepdim: true) + eps).rsqrt();
        return (weight * normed.to(dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>The SwiGLU feed-forward block: down_proj(silu(gate_proj(x)) * up_proj(x)).</summary>
public sealed class LlamaMLP : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> gate_proj;
    private nn.Module<Tensor, Tensor> up_proj;
    private nn.Module<Tensor, Tensor> down_proj;

    public LlamaMLP(LlamaConfig config) : base(nameof(LlamaMLP))
    {
        bool bias = config.MlpBiases;
        gate_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: bias);
        up_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: bias);
        down_proj = nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: bias);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.call(nn.functional.silu(gate_proj.call(x)) * up_proj.call(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>Grouped-query self-attention with rotary positions; past keys and values come from and go to a <see cref="KvCache"/>.</summary>
public sealed class LlamaAttention : nn.Module
{
    private nn.Module<Tensor, Tensor> q_proj;
    private nn.Module<Tensor, Tensor> k_proj;
    private nn.Module<Tensor, Tensor> v_proj;
    private nn.Module<Tensor, Tensor> o_proj;
    private readonly int heads, kvHeads, headDim, layerIndex;
    private readonly double dropout;

    public LlamaAttention(LlamaConfig config, int layerIndex) : base(nameof(LlamaAttention))
    {
        heads = config.NumAttentionHeads;
        kvHeads = config.KeyValueHeads;
        headDim = config.HeadSize;
        dropout = config.AttentionDropout;
        this.layerIndex = layerIndex;
        q_proj = nn.Linear(config.HiddenSize, heads * headDim, hasBias: config.QkvBias);
        k_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: config.QkvBias);
        v_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: config.QkvBias);
        o_proj = nn.Linear(heads * headDim, config.HiddenSize, hasBias: config.OutputBias);
        RegisterComponents();
    }

    /// <summary>
    /// hidden [B, T, H], rotary tables [B or 1, T, head_dim], an additive mask [B, 1, T, past + T] (null: none needed)
    /// and an optional cache to the attended output [B, T, H].
    /// </summary>
    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache)
    {
        long batch = hidden.shape[0], length = hidden.shape[1];
        using var scope = NewDisposeScope();
        Tensor Heads(Tensor x, int n) => x.view(batch, length, n, headDim).transpose(1, 2);
        var q = LlamaRotaryEmbedding.Apply(Heads(q_proj.call(hidden), heads), cos, sin);
        var k = LlamaRotaryEmbedding.Apply(Heads(k_proj.call(hidden), kvHeads), cos, sin);
        var v = Heads(v_proj.call(hidden), kvHeads);
        // The cache holds keys after rotation and before the groups are repeated, as transformers' DynamicCache does.
        if (cache is not null) (k, v) = cache.Append(layerIndex, k, v);
        k = RepeatKv(k);
        v = RepeatKv(v);
        // libtorch's kernel: softmax(q k^T / sqrt(head_dim) + mask) v, with attention dropout only while training.
        var context = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask, p: training ? dropout : 0.0);
        var output = o_proj.call(context.transpose(1, 2).reshape(batch, length, heads * headDim));
        return output.MoveToOuterDisposeScope();
    }

    // [B, kv, S, D] to [B, heads, S, D]: query head h reads key/value head h / (heads / kv).
    Tensor RepeatKv(Tensor x)
    {
        int groups = heads / kvHeads;
        if (groups == 1) return x;
        long s = x.shape[2];
        return x.unsqueeze(2).expand(x.shape[0], kvHeads, groups, s, headDim).reshape(x.shape[0], heads, s, headDim);
    }
}

/// <summary>One decoder block: x + attention(norm(x)), then + mlp(norm(.)).</summary>
public sealed class LlamaDecoderLayer : nn.Module
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMLP mlp;
    private readonly LlamaRMSNorm input_layernorm;
    private readonly LlamaRMSNorm post_attention_layernorm;

    /// <summary>This layer's sliding window, or null when it attends to every earlier token.</summary>
    public int? SlidingWindow { get; }

    public LlamaDecoderLayer(LlamaConfig config, int layerIndex) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(config, layerIndex);
        mlp = new LlamaMLP(config);
        input_layernorm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps);
        post_attention_layernorm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps);
        SlidingWindow = config.WindowOf(layerIndex);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = hidden + self_attn.Forward(input_layernorm.call(hidden), cos, sin, mask, cache);
        return (h + mlp.call(post_attention_layernorm.call(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>The decoder stack without the LM head (transformers' LlamaModel: embed_tokens, layers, norm).</summary>
public sealed class LlamaModel : nn.Module
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly LlamaRMSNorm norm;

    /// <summary>The rotary tables every layer shares.</summary>
    public LlamaRotaryEmbedding Rotary { get; }

    public LlamaModel(LlamaConfig config) : base(nameof(LlamaModel))
    {
        long? padding = config.PadTokenId is { } pad && pad >= 0 && pad < config.VocabSize ? pad : null;
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize, padding_idx: padding);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new LlamaDecoderLayer(config, i)).ToArray());
        norm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps);
        Rotary = new LlamaRotaryEmbedding(config);
        RegisterComponents();
    }

    /// <summary>The token embedding (its weight is lm_head's when the embeddings are tied).</summary>
    public Embedding EmbedTokens => embed_tokens;

    /// <summary>The normed last hidden states [B, T, H] (see <see cref="ICausalLM.Forward"/> for the arguments).</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache)
    {
        if (inputIds.dim() != 2) throw new ArgumentException($"input ids must be [batch, length], got [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));
        if (cache is not null && cache.Layers != layers.Count)
            throw new ArgumentException($"the cache has {cache.Layers} layers; this model has {layers.Count}.", nameof(cache));
        long batch = inputIds.shape[0], length = inputIds.shape[1];
        long past = cache?.Length ?? 0;
        using var scope = NewDisposeScope();
        var hidden = embed_tokens.call(inputIds);
        var positions = positionIds ?? arange(past, past + length, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        if (positions.ndim != 2 || positions.shape[^1] != length)
            throw new ArgumentException($"position ids have shape [{string.Join(", ", positions.shape)}]; expected [batch {batch}, new tokens {length}].", nameof(positionIds));
        var (cos, sin) = Rotary.Tables(positions, hidden.dtype);
        // One mask per distinct window (qwen2 mixes full and sliding layers).
        var masks = new Dictionary<int, Tensor?>();
        foreach (var layer in layers)
        {
            int key = layer.SlidingWindow ?? -1;
            if (!masks.TryGetValue(key, out var mask))
                masks[key] = mask = CausalMask.Build(attentionMask, batch, length, past, layer.SlidingWindow, hidden.dtype, hidden.device);
            hidden = layer.Forward(hidden, cos, sin, mask, cache);
        }
        return norm.call(hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>A LLaMA, Mistral or Qwen2 causal language model: <see cref="LlamaModel"/> and the LM head (lm_head).</summary>
public sealed class LlamaForCausalLM : nn.Module<Tensor, Tensor>, ICausalLM
{
    private readonly LlamaModel model;
    private nn.Module<Tensor, Tensor> lm_head;
    // Re-points lm_head's weight at the embedding after a dtype or device move, which gives every module new parameters.
    // Kept out of the fields RegisterComponents and adapter injection look at: a closure, not a module.
    private readonly Action? retie;

    /// <summary>The architecture this model was built from.</summary>
    public LlamaConfig Config { get; }

    /// <inheritdoc/>
    public CausalLMInfo Info { get; internal set; }

    /// <inheritdoc/>
    public nn.Module Module => this;

    /// <summary>The decoder stack.</summary>
    public LlamaModel Model => model;

    /// <summary>Builds a model with transformers' initialisation (normal(0, initializer_range), zero biases, unit norms) from <paramref name="seed"/>.</summary>
    public LlamaForCausalLM(LlamaConfig config, long seed = 0) : base(config.ArchitectureName)
    {
        config.Validate("config");
        Config = config;
        Info = config.Info();
        model = new LlamaModel(config);
        var head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        lm_head = head;
        RegisterComponents();
        LlamaInit.Apply(this, config, seed);
        if (config.TieWordEmbeddings)
        {
            var embedding = model.EmbedTokens;
            retie = () => head.weight = embedding.weight!;
            retie();
        }
    }

    /// <inheritdoc/>
    public Tensor HiddenStates(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null) =>
        model.Forward(inputIds, attentionMask, positionIds, cache);

    /// <inheritdoc/>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        var logits = lm_head.call(HiddenStates(inputIds, attentionMask, positionIds, cache));
        if (logits.dtype != ScalarType.Float32) logits = logits.to(ScalarType.Float32);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>An empty cache with one entry per decoder layer.</summary>
    public KvCache NewCache() => new(Config.NumHiddenLayers);

    /// <inheritdoc/>
    public Tensor? OutputWeight => lm_head is Linear { bias: null } head ? head.weight : null;

    /// <summary>Logits [B, T, vocab] for input ids [B, T] without padding or cache.</summary>
    public override Tensor forward(Tensor inputIds) => Forward(inputIds);

    protected override nn.Module _to(ScalarType dtype, bool non_blocking = false)
    {
        var result = base._to(dtype, non_blocking);
        retie?.Invoke();
        return result;
    }

    protected override nn.Module _to(DeviceType deviceType, int deviceIndex = -1, bool non_blocking = false)
    {
        var result = base._to(deviceType, deviceIndex, non_blocking);
        retie?.Invoke();
        return result;
    }

    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking = false)
    {
        var result = base._to(device, dtype, non_blocking);
        retie?.Invoke();
        return result;
    }
}

/// <summary>transformers' LlamaPreTrainedModel._init_weights, made deterministic by a seeded generator.</summary>
internal static class LlamaInit
{
    /// <summary>transformers' initializer_range default.</summary>
    public const double InitializerRange = 0.02;

    public static void Apply(nn.Module root, LlamaConfig config, long seed)
    {
        double std = config.Extra is { } extra && extra.TryGetValue("initializer_range", out var r) && r.ValueKind == System.Text.Json.JsonValueKind.Number
            ? r.GetDouble() : InitializerRange;
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed, CPU);
        foreach (var (_, module) in root.named_modules())
        {
            switch (module)
            {
                case Linear linear:
                    Normal(linear.weight!, std, generator);
                    linear.bias?.zero_();
                    break;
                case Embedding embedding:
                    Normal(embedding.weight!, std, generator);
                    if (config.PadTokenId is { } pad && pad >= 0 && pad < config.VocabSize) embedding.weight!.narrow(0, pad, 1).zero_();
                    break;
            }
        }
    }

    // Drawn on the CPU and copied, so the same seed gives the same model on every device.
    static void Normal(Tensor weight, double std, Generator generator)
    {
        using var cpu = empty(weight.shape, weight.dtype, CPU);
        cpu.normal_(0.0, std, generator);
        weight.copy_(cpu);
    }
}
