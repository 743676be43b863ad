using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.DebertaV2;

// DeBERTa-v2 / v3 written top to bottom as transformers' modeling_deberta_v2.py computes it. Field names are the Hugging Face
// module names, so checkpoints load without a translation table: embeddings.word_embeddings,
// encoder.layer.0.attention.self.query_proj, encoder.rel_embeddings, ... Every Linear an adapter may wrap is a mutable field
// typed Module<Tensor, Tensor>: injection swaps the field and forward reads it, so an adapter on query_proj / key_proj also
// acts on the relative-position projections that share them (share_att_key), exactly as in peft.
// StableDropout is plain dropout here: its mask-reuse contexts are never switched on by transformers' models.

/// <summary>Word (+ absolute position) (+ token type) embeddings, embed_proj when narrower, LayerNorm, the mask multiply, dropout.</summary>
public sealed class DebertaV2Embeddings : nn.Module<Tensor, Tensor?, Tensor, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding? position_embeddings;
    private readonly Embedding? token_type_embeddings;
    private nn.Module<Tensor, Tensor>? embed_proj;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
    private readonly int maxPositions;

    public DebertaV2Embeddings(DebertaV2Config config) : base(nameof(DebertaV2Embeddings))
    {
        int width = config.EmbeddingWidth;
        word_embeddings = nn.Embedding(config.VocabSize, width, padding_idx: config.PadTokenId);
        if (config.PositionBiasedInput) position_embeddings = nn.Embedding(config.MaxPositionEmbeddings, width);
        if (config.TypeVocabSize > 0) token_type_embeddings = nn.Embedding(config.TypeVocabSize, width);
        if (width != config.HiddenSize) embed_proj = nn.Linear(width, config.HiddenSize, hasBias: false);
        LayerNorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        maxPositions = config.MaxPositionEmbeddings;
        RegisterComponents();
    }

    /// <summary>input ids [B, T], token type ids [B, T] (null: all 0) and the attention mask [B, T] to embeddings [B, T, H]; padded rows are zeroed.</summary>
    public override Tensor forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor mask)
    {
        var embeddings = word_embeddings.call(inputIds);
        if (position_embeddings is not null)
        {
            var length = inputIds.shape[1];
            if (length > maxPositions)
                throw new ArgumentException($"sequence length {length} exceeds max_position_embeddings {maxPositions} (position_biased_input is on).", nameof(inputIds));
            using var positions = arange(length, dtype: ScalarType.Int64, device: inputIds.device);
            embeddings = embeddings + position_embeddings.call(positions);
        }
        if (token_type_embeddings is not null)
        {
            using var zeros = tokenTypeIds is null ? zeros_like(inputIds) : null;
            embeddings = embeddings + token_type_embeddings.call(tokenTypeIds ?? zeros!);
        }
        if (embed_proj is not null) embeddings = embed_proj.call(embeddings);
        embeddings = LayerNorm.call(embeddings);
        embeddings = embeddings * mask.unsqueeze(2).to(embeddings.dtype);
        return dropout.call(embeddings);
    }
}

/// <summary>What the encoder computes once and every attention layer reads: the relative positions [1, T, T] and the relative embeddings [2 span, H].</summary>
public sealed record DebertaV2RelativeInputs(Tensor Positions, Tensor Embeddings);

/// <summary>Disentangled self-attention: content-to-content plus content-to-position (c2p) and position-to-content (p2c) scores.</summary>
public sealed class DisentangledSelfAttention : nn.Module<Tensor, Tensor, DebertaV2RelativeInputs?, Tensor>
{
    private nn.Module<Tensor, Tensor> query_proj;
    private nn.Module<Tensor, Tensor> key_proj;
    private nn.Module<Tensor, Tensor> value_proj;
    private nn.Module<Tensor, Tensor>? pos_key_proj;
    private nn.Module<Tensor, Tensor>? pos_query_proj;
    private readonly Dropout? pos_dropout;
    private readonly Dropout dropout;
    private readonly int heads;
    private readonly int headSize;
    private readonly bool relative, c2p, p2c, shareAttKey;
    private readonly int span;

    public DisentangledSelfAttention(DebertaV2Config config) : base(nameof(DisentangledSelfAttention))
    {
        heads = config.NumAttentionHeads;
        headSize = config.HeadSize;
        int all = heads * headSize;
        query_proj = nn.Linear(config.HiddenSize, all);
        key_proj = nn.Linear(config.HiddenSize, all);
        value_proj = nn.Linear(config.HiddenSize, all);
        shareAttKey = config.ShareAttKey;
        c2p = config.C2P;
        p2c = config.P2C;
        relative = config.RelativeAttention;
        span = config.AttentionSpan;
        if (relative)
        {
            pos_dropout = nn.Dropout(config.HiddenDropoutProb);
            if (!shareAttKey)
            {
                if (c2p) pos_key_proj = nn.Linear(config.HiddenSize, all);
                if (p2c) pos_query_proj = nn.Linear(config.HiddenSize, all);
            }
        }
        dropout = nn.Dropout(config.AttentionProbsDropoutProb);
        RegisterComponents();
    }

    // [B, T, heads * d] to [B * heads, T, d] (transformers' transpose_for_scores).
    Tensor Split(Tensor x) => x.view(x.shape[0], x.shape[1], heads, -1).permute(0, 2, 1, 3).contiguous().view(-1, x.shape[1], headSize);

    /// <summary>hidden [B, T, H], the mask [B, 1, T, T] (true: may attend) and the relative inputs (null without relative attention) to the context [B, T, heads * d].</summary>
    public override Tensor forward(Tensor hidden, Tensor mask, DebertaV2RelativeInputs? rel)
    {
        long batch = hidden.shape[0], length = hidden.shape[1];
        var query = Split(query_proj.call(hidden));
        var key = Split(key_proj.call(hidden));
        var value = Split(value_proj.call(hidden));

        // Every term is divided by sqrt(d * (1 + number of position terms)), so the terms' sum keeps the scale of one.
        int scaleFactor = 1 + (c2p ? 1 : 0) + (p2c ? 1 : 0);
        float scale = MathF.Sqrt(headSize * scaleFactor);
        var scores = bmm(query, key.transpose(-1, -2) / scale);
        if (relative)
        {
            if (rel is null) throw new ArgumentNullException(nameof(rel), "relative_attention is on: the relative positions and embeddings are required.");
            scores = scores + DisentangledBias(query, key, rel.Positions, pos_dropout!.call(rel.Embeddings), scale);
        }
        scores = scores.view(-1, heads, length, length).masked_fill(mask.logical_not(), finfo(query.dtype).min);
        var probs = dropout.call(softmax(scores, -1));
        var context = bmm(probs.view(-1, length, length), value);
        return context.view(-1, heads, length, headSize).permute(0, 2, 1, 3).contiguous().view(batch, length, heads * headSize);
    }

    // disentangled_attention_bias: c2p[q, k] = query_q . pos_key[pos(q, k)] and p2c[q, k] = key_k . pos_query[pos(q, k)] with
    // pos(q, k) = clamp(rel(q, k) + span, 0, 2 span - 1); p2c gathers on -rel(k, q), which equals rel(q, k), then transposes.
    Tensor DisentangledBias(Tensor query, Tensor key, Tensor relativePos, Tensor relEmbeddings, float scale)
    {
        long bh = query.shape[0], lq = query.shape[1], lk = key.shape[1];
        int repeat = (int)(bh / heads);
        var rel = relEmbeddings.narrow(0, 0, Math.Min(2 * span, relEmbeddings.shape[0])).unsqueeze(0);
        Tensor? posKey = null, posQuery = null;
        if (shareAttKey)
        {
            posQuery = Split(query_proj.call(rel)).repeat(repeat, 1, 1);
            posKey = Split(key_proj.call(rel)).repeat(repeat, 1, 1);
        }
        else
        {
            if (c2p) posKey = Split(pos_key_proj!.call(rel)).repeat(repeat, 1, 1);
            if (p2c) posQuery = Split(pos_query_proj!.call(rel)).repeat(repeat, 1, 1);
        }
        relativePos = relativePos.to(ScalarType.Int64);
        Tensor? score = null;
        if (c2p)
        {
            var c2pAtt = bmm(query, posKey!.transpose(-1, -2));
            var c2pPos = (relativePos + span).clamp(0, 2 * span - 1);
            c2pAtt = c2pAtt.gather(-1, c2pPos.squeeze(0).expand(bh, lq, lk));
            score = c2pAtt / scale;
        }
        if (p2c)
        {
            var p2cPos = (-relativePos + span).clamp(0, 2 * span - 1);
            var p2cAtt = bmm(key, posQuery!.transpose(-1, -2));
            p2cAtt = p2cAtt.gather(-1, p2cPos.squeeze(0).expand(bh, lk, lk)).transpose(-1, -2);
            score = score is null ? p2cAtt / scale : score + p2cAtt / scale;
        }
        return score ?? zeros_like(query.narrow(2, 0, 1));
    }
}

/// <summary>Disentangled self-attention followed by its output block (fields self and output).</summary>
public sealed class DebertaV2Attention : nn.Module<Tensor, Tensor, DebertaV2RelativeInputs?, Tensor>
{
    private readonly DisentangledSelfAttention self;
    private readonly Bert.BertOutput output;

    public DebertaV2Attention(DebertaV2Config config) : base(nameof(DebertaV2Attention))
    {
        self = new DisentangledSelfAttention(config);
        output = new Bert.BertOutput(config.NumAttentionHeads * config.HeadSize, config.HiddenSize, config.LayerNormEps, config.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor mask, DebertaV2RelativeInputs? rel) => output.call(self.call(hidden, mask, rel), hidden);
}

/// <summary>The expanding half of the feed-forward block: dense to intermediate_size, then hidden_act.</summary>
public sealed class DebertaV2Intermediate : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly Func<Tensor, Tensor> activation;

    public DebertaV2Intermediate(DebertaV2Config config) : base(nameof(DebertaV2Intermediate))
    {
        dense = nn.Linear(config.HiddenSize, config.IntermediateSize);
        activation = Layers.Activations.Get(config.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden) => activation(dense.call(hidden));
}

/// <summary>One transformer block: attention, intermediate, output.</summary>
public sealed class DebertaV2Layer : nn.Module<Tensor, Tensor, DebertaV2RelativeInputs?, Tensor>
{
    private readonly DebertaV2Attention attention;
    private readonly DebertaV2Intermediate intermediate;
    private readonly Bert.BertOutput output;

    public DebertaV2Layer(DebertaV2Config config) : base(nameof(DebertaV2Layer))
    {
        attention = new DebertaV2Attention(config);
        intermediate = new DebertaV2Intermediate(config);
        output = new Bert.BertOutput(config.IntermediateSize, config.HiddenSize, config.LayerNormEps, config.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor mask, DebertaV2RelativeInputs? rel)
    {
        var attended = attention.call(hidden, mask, rel);
        return output.call(intermediate.call(attended), attended);
    }
}

/// <summary>deberta-v2-xlarge's convolution beside the first layer: conv over the encoder input, masked, conv_act, added to the layer's output, LayerNorm, masked.</summary>
public sealed class ConvLayer : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly Conv1d conv;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
    private readonly Func<Tensor, Tensor> activation;

    public ConvLayer(DebertaV2Config config) : base(nameof(ConvLayer))
    {
        int k = config.ConvKernelSize;
        conv = nn.Conv1d(config.HiddenSize, config.HiddenSize, k, padding: (k - 1) / 2, groups: config.ConvGroups);
        LayerNorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        activation = Layers.Activations.Get(config.ConvAct, "conv_act");
        RegisterComponents();
    }

    /// <summary>The encoder input [B, T, H], the first layer's output [B, T, H] and the mask [B, T] to the first layer's new output.</summary>
    public override Tensor forward(Tensor hidden, Tensor residual, Tensor inputMask)
    {
        var outputs = conv.call(hidden.permute(0, 2, 1).contiguous()).permute(0, 2, 1).contiguous();
        using var padded = inputMask.eq(0).unsqueeze(-1);
        outputs = activation(dropout.call(outputs.masked_fill(padded, 0)));
        var normed = LayerNorm.call(residual + outputs);
        return normed * inputMask.unsqueeze(2).to(normed.dtype);
    }
}

/// <summary>The stack of layers with the relative-position embeddings (encoder.rel_embeddings, encoder.LayerNorm) and the optional ConvLayer.</summary>
public sealed class DebertaV2Encoder : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly ModuleList<DebertaV2Layer> layer;
    private readonly Embedding? rel_embeddings;
    private readonly LayerNorm? LayerNorm;
    private readonly ConvLayer? conv;
    private readonly int buckets;
    private readonly int maxRelative;

    public DebertaV2Encoder(DebertaV2Config config) : base(nameof(DebertaV2Encoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new DebertaV2Layer(config)).ToArray());
        buckets = config.PositionBuckets;
        maxRelative = config.MaxRelativePositionsInEffect;
        if (config.RelativeAttention) rel_embeddings = nn.Embedding(2 * config.AttentionSpan, config.HiddenSize);
        if (config.NormalizeRelativeEmbeddings) LayerNorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        if (config.ConvKernelSize > 0) conv = new ConvLayer(config);
        RegisterComponents();
    }

    /// <summary>The relative embeddings the attention layers read (LayerNorm'd when norm_rel_ebd says so), or null without relative attention.</summary>
    public Tensor? RelativeEmbeddings()
    {
        if (rel_embeddings is null) return null;
        var weight = rel_embeddings.weight!;
        return LayerNorm is null ? weight : LayerNorm.call(weight);
    }

    /// <summary>get_attention_mask: [B, T] of 1 / 0 to [B, 1, T, T], true where both the query and the key are tokens.</summary>
    public static Tensor AttentionMask(Tensor mask)
    {
        using var keys = mask.ne(0).unsqueeze(1).unsqueeze(2);
        using var queries = keys.squeeze(-2).unsqueeze(-1);
        return keys.logical_and(queries);
    }

    /// <summary>The embeddings [B, T, H] and the attention mask [B, T] to the last hidden state [B, T, H].</summary>
    public override Tensor forward(Tensor hidden, Tensor inputMask)
    {
        using var scope = NewDisposeScope();
        var mask = AttentionMask(inputMask);
        DebertaV2RelativeInputs? rel = null;
        if (rel_embeddings is not null)
            rel = new DebertaV2RelativeInputs(
                DebertaV2RelativePositions.Build(hidden.shape[1], hidden.shape[1], buckets, maxRelative, hidden.device), RelativeEmbeddings()!);
        var output = hidden;
        for (int i = 0; i < layer.Count; i++)
        {
            output = layer[i].call(output, mask, rel);
            if (i == 0 && conv is not null) output = conv.call(hidden, output, inputMask);
        }
        return output.MoveToOuterDisposeScope();
    }
}

/// <summary>The bare DeBERTa-v2 / v3 encoder (Hugging Face's DebertaV2Model): embeddings and encoder, outputting the last hidden state.</summary>
public sealed class DebertaV2Model : nn.Module<Tensor, Tensor?, Tensor?, Tensor>
{
    private readonly DebertaV2Embeddings embeddings;
    private readonly DebertaV2Encoder encoder;

    /// <summary>The architecture this encoder was built from.</summary>
    public DebertaV2Config Config { get; }

    /// <summary>Builds a model with Hugging Face's initialisation (normal(0, initializer_range), zero biases, zero padding row) from <paramref name="seed"/>.</summary>
    public DebertaV2Model(DebertaV2Config config, long seed = 0) : base(nameof(DebertaV2Model))
    {
        config.Validate("config");
        Config = config;
        embeddings = new DebertaV2Embeddings(config);
        encoder = new DebertaV2Encoder(config);
        RegisterComponents();
        DebertaV2Init.Apply(this, config, seed);
    }

    /// <summary>
    /// input ids [B, T] (int64), attention mask [B, T] (1 = token, 0 = padding; null = all tokens) and token type ids [B, T]
    /// (null = all 0; ignored when type_vocab_size is 0, as in DeBERTa-v3) to the last hidden state [B, T, H].
    /// </summary>
    public override Tensor forward(Tensor inputIds, Tensor? attentionMask, Tensor? tokenTypeIds)
    {
        if (inputIds.dim() != 2) throw new ArgumentException($"input ids must be [batch, length], got [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));
        if (attentionMask is not null && !attentionMask.shape.SequenceEqual(inputIds.shape))
            throw new ArgumentException($"attention mask [{string.Join(", ", attentionMask.shape)}] must have the shape of the input ids [{string.Join(", ", inputIds.shape)}].", nameof(attentionMask));
        using var ones = attentionMask is null ? ones_like(inputIds) : null;
        var mask = attentionMask ?? ones!;
        using var embedded = embeddings.call(inputIds, tokenTypeIds, mask);
        return encoder.call(embedded, mask);
    }

    /// <summary>The last hidden state without a mask or token types.</summary>
    public Tensor forward(Tensor inputIds) => forward(inputIds, null, null);
}

/// <summary>DebertaV2PreTrainedModel._init_weights, made deterministic by a seeded generator.</summary>
internal static class DebertaV2Init
{
    public static void Apply(nn.Module root, DebertaV2Config config, long seed)
    {
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed, CPU);
        foreach (var (name, module) in root.named_modules().Prepend(("", root)))
        {
            switch (module)
            {
                case Linear linear:
                    Normal(linear.weight!, config.InitializerRange, generator);
                    linear.bias?.zero_();
                    break;
                case Embedding embedding:
                    Normal(embedding.weight!, config.InitializerRange, generator);
                    if (name.EndsWith("word_embeddings", StringComparison.Ordinal) && config.PadTokenId is { } pad) embedding.weight!.narrow(0, pad, 1).zero_();
                    break;
                case LayerNorm norm:
                    norm.weight?.fill_(1.0);
                    norm.bias?.zero_();
                    break;
                // transformers leaves the ConvLayer's Conv1d at PyTorch's default; a seeded normal keeps the model a function of the seed.
                case Conv1d conv:
                    Normal(conv.weight!, config.InitializerRange, generator);
                    conv.bias?.zero_();
                    break;
            }
        }
    }

    // Drawn on the CPU and copied, so one seed gives one model on every device (TorchSharp's nn.init.normal_ ignores its generator).
    static void Normal(Tensor weight, double std, Generator generator)
    {
        using var cpu = empty(weight.shape, weight.dtype, CPU);
        cpu.normal_(0.0, std, generator);
        weight.copy_(cpu);
    }
}
