using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Bert;

// A BERT encoder written top to bottom in the order the math goes. Field names are the Hugging Face module
// names (they become the state-dict names through RegisterComponents), so a checkpoint loads without a
// translation table: embeddings.word_embeddings, encoder.layer.0.attention.self.query, pooler.dense, ...
// Every linear layer an adapter may wrap is a mutable field of type Module<Tensor, Tensor> holding a Linear:
// adapter injection swaps the field by reflection and re-registers it, and forward reads the field.

/// <summary>Word + position + token-type embeddings, then LayerNorm and dropout.</summary>
/// <remarks>Position ids are BERT's 0, 1, 2, ... or, for RoBERTa configs (<see cref="BertConfig.PositionsFromPadding"/>), counted over the non-padding tokens after the padding index.</remarks>
public sealed class BertEmbeddings : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
    private readonly int maxPositions;
    private readonly long? positionPadding;

    public BertEmbeddings(BertConfig config) : base(nameof(BertEmbeddings))
    {
        word_embeddings = nn.Embedding(config.VocabSize, config.HiddenSize, padding_idx: config.PadTokenId);
        position_embeddings = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        token_type_embeddings = nn.Embedding(config.TypeVocabSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        maxPositions = config.MaxPositionEmbeddings;
        positionPadding = config.PositionsFromPadding ? config.PadTokenId : null;
        RegisterComponents();
    }

    /// <summary>input ids [B, T] and token type ids [B, T] (int64) to embeddings [B, T, H].</summary>
    public override Tensor forward(Tensor inputIds, Tensor tokenTypeIds)
    {
        var length = inputIds.shape[1];
        // RoBERTa's positions run from padding_idx + 1, so a sequence gets padding_idx + 1 fewer of them.
        long reserved = positionPadding is { } p ? p + 1 : 0;
        if (length + reserved > maxPositions)
            throw new ArgumentException($"sequence length {length} exceeds max_position_embeddings {maxPositions}" +
                (reserved > 0 ? $" less the {reserved} positions up to the padding index ({maxPositions - reserved} tokens at most)." : "."), nameof(inputIds));
        using var positions = positionPadding is { } pad ? PositionsAfterPadding(inputIds, pad) : arange(length, dtype: ScalarType.Int64, device: inputIds.device);
        var x = word_embeddings.call(inputIds) + token_type_embeddings.call(tokenTypeIds) + position_embeddings.call(positions);
        return dropout.call(LayerNorm.call(x));
    }

    // transformers' create_position_ids_from_input_ids: pad + cumulative count of non-pad tokens, pad itself at padding.
    static Tensor PositionsAfterPadding(Tensor inputIds, long pad)
    {
        using var scope = NewDisposeScope();
        var real = inputIds.ne(pad).to(ScalarType.Int64);
        return (real.cumsum(1) * real + pad).MoveToOuterDisposeScope();
    }
}

/// <summary>Multi-head self-attention: query, key, value projections and scaled dot-product attention.</summary>
public sealed class BertSelfAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private nn.Module<Tensor, Tensor> query;
    private nn.Module<Tensor, Tensor> key;
    private nn.Module<Tensor, Tensor> value;
    private readonly int heads;
    private readonly int headSize;
    private readonly double dropoutProb;

    public BertSelfAttention(BertConfig config) : base(nameof(BertSelfAttention))
    {
        query = nn.Linear(config.HiddenSize, config.HiddenSize);
        key = nn.Linear(config.HiddenSize, config.HiddenSize);
        value = nn.Linear(config.HiddenSize, config.HiddenSize);
        heads = config.NumAttentionHeads;
        headSize = config.HeadSize;
        dropoutProb = config.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    /// <summary>hidden [B, T, H] and an additive mask broadcastable to [B, heads, T, T] (or null) to the attended context [B, T, H].</summary>
    public override Tensor forward(Tensor hidden, Tensor? additiveMask)
    {
        long batch = hidden.shape[0], length = hidden.shape[1];
        Tensor SplitHeads(Tensor x) => x.reshape(batch, length, heads, headSize).transpose(1, 2);
        var q = SplitHeads(query.call(hidden));
        var k = SplitHeads(key.call(hidden));
        var v = SplitHeads(value.call(hidden));
        // libtorch's fused kernel: softmax(q k^T / sqrt(d) + mask) v, with attention dropout only while training.
        var context = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: additiveMask, p: training ? dropoutProb : 0.0);
        return context.transpose(1, 2).reshape(batch, length, heads * headSize);
    }
}

/// <summary>The residual block after attention and after the feed-forward layer: dense, dropout, add, LayerNorm.</summary>
/// <remarks>Hugging Face has two identical classes for this (BertSelfOutput and BertOutput); one serves both here.</remarks>
public sealed class BertOutput : nn.Module<Tensor, Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public BertOutput(int inputSize, BertConfig config) : this(inputSize, config.HiddenSize, config.LayerNormEps, config.HiddenDropoutProb) { }

    /// <summary>The same block from its sizes, for encoders with their own config (DeBERTa-v2's SelfOutput and Output are this block too).</summary>
    public BertOutput(int inputSize, int hiddenSize, double layerNormEps, double dropoutProb) : base(nameof(BertOutput))
    {
        dense = nn.Linear(inputSize, hiddenSize);
        LayerNorm = nn.LayerNorm(hiddenSize, eps: layerNormEps);
        dropout = nn.Dropout(dropoutProb);
        RegisterComponents();
    }

    /// <summary>LayerNorm(dropout(dense(hidden)) + residual).</summary>
    public override Tensor forward(Tensor hidden, Tensor residual) =>
        LayerNorm.call(dropout.call(dense.call(hidden)) + residual);
}

/// <summary>Self-attention followed by its output block (Hugging Face's BertAttention: fields self and output).</summary>
public sealed class BertAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertOutput output;

    public BertAttention(BertConfig config) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(config);
        output = new BertOutput(config.HiddenSize, config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? additiveMask) => output.call(self.call(hidden, additiveMask), hidden);
}

/// <summary>The expanding half of the feed-forward block: dense to intermediate_size, then the activation.</summary>
public sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly Func<Tensor, Tensor> activation;

    public BertIntermediate(BertConfig config) : base(nameof(BertIntermediate))
    {
        dense = nn.Linear(config.HiddenSize, config.IntermediateSize);
        activation = Activation(config.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden) => activation(dense.call(hidden));

    /// <summary>Hugging Face's ACT2FN for the names BERT configs use; "gelu" is the exact (erf) GELU.</summary>
    public static Func<Tensor, Tensor> Activation(string name) => Layers.Activations.Get(name);
}

/// <summary>One transformer block: attention, intermediate, output.</summary>
public sealed class BertLayer : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertOutput output;

    public BertLayer(BertConfig config) : base(nameof(BertLayer))
    {
        attention = new BertAttention(config);
        intermediate = new BertIntermediate(config);
        output = new BertOutput(config.IntermediateSize, config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? additiveMask)
    {
        var attended = attention.call(hidden, additiveMask);
        return output.call(intermediate.call(attended), attended);
    }
}

/// <summary>The stack of transformer blocks (state-dict names encoder.layer.N.*).</summary>
public sealed class BertEncoder : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig config) : base(nameof(BertEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? additiveMask)
    {
        foreach (var block in layer) hidden = block.call(hidden, additiveMask);
        return hidden;
    }
}

/// <summary>dense + tanh on the first ([CLS]) token: the pooled output of the original BERT.</summary>
public sealed class BertPooler : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;

    public BertPooler(BertConfig config) : base(nameof(BertPooler))
    {
        dense = nn.Linear(config.HiddenSize, config.HiddenSize);
        RegisterComponents();
    }

    /// <summary>last hidden state [B, T, H] to pooled output [B, H].</summary>
    public override Tensor forward(Tensor lastHidden) => dense.call(lastHidden[.., 0]).tanh();
}

/// <summary>The BERT encoder: embeddings, transformer blocks and an optional pooler (Hugging Face's BertModel).</summary>
public sealed class BertModel : nn.Module<Tensor, Tensor?, Tensor?, Tensor>
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private readonly BertPooler? pooler;

    /// <summary>The architecture this encoder was built from.</summary>
    public BertConfig Config { get; }

    /// <summary>Whether the pooler (pooler.dense) exists; sentence encoders and mean-pooling heads go without.</summary>
    public bool HasPooler => pooler is not null;

    /// <summary>Builds a model with Hugging Face's initialisation (normal(0, initializer_range), zero biases) from <paramref name="seed"/>.</summary>
    public BertModel(BertConfig config, bool addPoolingLayer = true, long seed = 0) : base(nameof(BertModel))
    {
        config.Validate("config", [.. BertConfig.SupportedModelTypes, .. BertConfig.RobertaModelTypes]);
        Config = config;
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        if (addPoolingLayer) pooler = new BertPooler(config);
        RegisterComponents();
        BertInit.Apply(this, config, seed);
    }

    /// <summary>
    /// input ids [B, T] (int64), attention mask [B, T] (1 = token, 0 = padding; null = all tokens) and token
    /// type ids [B, T] (null = all 0) to the last hidden state [B, T, H].
    /// </summary>
    public override Tensor forward(Tensor inputIds, Tensor? attentionMask, Tensor? tokenTypeIds)
    {
        if (inputIds.dim() != 2) throw new ArgumentException($"input ids must be [batch, length], got [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));
        using var zeros = tokenTypeIds is null ? zeros_like(inputIds) : null;
        var hidden = embeddings.call(inputIds, tokenTypeIds ?? zeros!);
        using var mask = attentionMask is null ? null : AdditiveMask(attentionMask, hidden.dtype);
        return encoder.call(hidden, mask);
    }

    /// <summary>The last hidden state without a mask or token types: every position is a token of segment 0.</summary>
    public Tensor forward(Tensor inputIds) => forward(inputIds, null, null);

    /// <summary>The pooled output [B, H] of a last hidden state; throws when the model has no pooler.</summary>
    public Tensor Pool(Tensor lastHidden) =>
        pooler is null ? throw new InvalidOperationException("this BertModel was built without a pooler (pooler.dense).") : pooler.call(lastHidden);

    // [B, T] of 1/0 to [B, 1, 1, T] of 0 / most-negative: padded keys get no attention weight. The most negative
    // finite value (not -inf) keeps a fully padded row finite, as Hugging Face does.
    static Tensor AdditiveMask(Tensor attentionMask, ScalarType dtype)
    {
        using var padded = attentionMask.eq(0).unsqueeze(1).unsqueeze(2);
        return zeros(padded.shape, dtype, attentionMask.device).masked_fill_(padded, finfo(dtype).min);
    }
}

/// <summary>Hugging Face's BertPreTrainedModel._init_weights, made deterministic by a seeded generator.</summary>
internal static class BertInit
{
    public static void Apply(nn.Module root, BertConfig config, long seed)
    {
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed, CPU);
        // named_modules() leaves out the root itself, which may be the very layer to initialise (a classifier head).
        foreach (var (name, module) in root.named_modules().Prepend(("", root)))
        {
            switch (module)
            {
                case Linear linear:
                    Normal(linear.weight!, config.InitializerRange, generator);
                    if (linear.bias is { } b) b.zero_();
                    break;
                case Embedding embedding:
                    Normal(embedding.weight!, config.InitializerRange, generator);
                    if (name.EndsWith("word_embeddings", StringComparison.Ordinal) && config.PadTokenId is { } pad) embedding.weight!.narrow(0, pad, 1).zero_();
                    break;
                case LayerNorm norm:
                    norm.weight?.fill_(1.0);
                    norm.bias?.zero_();
                    break;
            }
        }
    }

    // The generator lives on the CPU, so the numbers are drawn there and copied: the same seed gives the same
    // model on every device. (nn.init.normal_ of TorchSharp 0.107 ignores its generator; Tensor.normal_ honours it.)
    static void Normal(Tensor weight, double std, Generator generator)
    {
        using var cpu = empty(weight.shape, weight.dtype, CPU);
        cpu.normal_(0.0, std, generator);
        weight.copy_(cpu);
    }
}
