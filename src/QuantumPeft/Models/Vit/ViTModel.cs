using QuantumPeft.Models.Layers;
using QuantumPeft.Models.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Vit;

// A Vision Transformer written top to bottom in the order the math goes, after transformers' modeling_vit.py. Field
// names are the Hugging Face module names (they become the state-dict names through RegisterComponents), so a checkpoint
// loads without a translation table: vit.embeddings.patch_embeddings.projection, vit.encoder.layer.0.attention.attention.query,
// vit.layernorm, classifier, ... Every layer an adapter may wrap (the linear layers, the patch projection) is a mutable
// field of type Module<Tensor, Tensor>: adapter injection swaps the field by reflection and re-registers it.

/// <summary>Cuts an image into patch_size x patch_size patches and projects each to hidden_size with one strided convolution.</summary>
public sealed class ViTPatchEmbeddings : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> projection;

    public ViTPatchEmbeddings(ViTConfig config) : base(nameof(ViTPatchEmbeddings))
    {
        projection = nn.Conv2d(config.NumChannels, config.HiddenSize, kernel_size: config.PatchSize, stride: config.PatchSize);
        RegisterComponents();
    }

    /// <summary>pixel values [B, C, H, W] to patch embeddings [B, (H / p) (W / p), hidden], patches in row-major order.</summary>
    public override Tensor forward(Tensor pixelValues) => projection.call(pixelValues).flatten(2).transpose(1, 2);
}

/// <summary>The [CLS] token, the patch embeddings and the position embeddings (interpolated for another image size), then dropout.</summary>
public sealed class ViTEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Parameter cls_token;
    private readonly ViTPatchEmbeddings patch_embeddings;
    private readonly Parameter position_embeddings;
    private readonly Dropout dropout;
    private readonly ViTConfig config;

    public ViTEmbeddings(ViTConfig config) : base(nameof(ViTEmbeddings))
    {
        this.config = config;
        cls_token = new Parameter(zeros(1, 1, config.HiddenSize));
        patch_embeddings = new ViTPatchEmbeddings(config);
        position_embeddings = new Parameter(zeros(1, (long)config.GridSize * config.GridSize + 1, config.HiddenSize));
        dropout = nn.Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <summary>pixel values [B, C, H, W] (H and W multiples of patch_size) to the token sequence [B, 1 + (H / p) (W / p), hidden].</summary>
    public override Tensor forward(Tensor pixelValues)
    {
        long batch = pixelValues.shape[0], height = pixelValues.shape[2], width = pixelValues.shape[3];
        using var scope = NewDisposeScope();
        var patches = patch_embeddings.call(pixelValues);
        var tokens = cat([cls_token.expand(batch, -1, -1), patches], 1);
        var embeddings = tokens + PositionEmbeddings(height, width);
        return dropout.call(embeddings).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The position embeddings [1, 1 + (H / p) (W / p), hidden] for an H x W image: the checkpoint's own at config.image_size,
    /// otherwise transformers' interpolate_pos_encoding: the patch grid resized bicubically (align_corners false) to
    /// (H / p, W / p), the [CLS] position kept as it is.
    /// </summary>
    public Tensor PositionEmbeddings(long height, long width)
    {
        long rows = height / config.PatchSize, cols = width / config.PatchSize, grid = config.GridSize;
        // transformers skips the resize only for a square image of the checkpoint's patch count; bicubic resizing to the same
        // size is the identity, so "same grid" is the same rule for every shape.
        if (rows == grid && cols == grid) return position_embeddings.alias();
        long dim = position_embeddings.shape[2];
        using var scope = NewDisposeScope();
        var cls = position_embeddings.narrow(1, 0, 1);
        var patchGrid = position_embeddings.narrow(1, 1, grid * grid).reshape(1, grid, grid, dim).permute(0, 3, 1, 2);
        var resized = nn.functional.interpolate(patchGrid, size: [rows, cols], mode: InterpolationMode.Bicubic, align_corners: false);
        var flat = resized.permute(0, 2, 3, 1).reshape(1, rows * cols, dim);
        return cat([cls, flat], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Multi-head self-attention: query, key, value projections and scaled dot-product attention (no mask: every patch sees every patch).</summary>
public sealed class ViTSelfAttention : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> query;
    private nn.Module<Tensor, Tensor> key;
    private nn.Module<Tensor, Tensor> value;
    private readonly int heads;
    private readonly int headSize;
    private readonly double dropoutProb;

    public ViTSelfAttention(ViTConfig config) : base(nameof(ViTSelfAttention))
    {
        query = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: config.QkvBias);
        key = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: config.QkvBias);
        value = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: config.QkvBias);
        heads = config.NumAttentionHeads;
        headSize = config.HeadSize;
        dropoutProb = config.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    /// <summary>hidden [B, T, H] to the attended context [B, T, H].</summary>
    public override Tensor forward(Tensor hidden)
    {
        long batch = hidden.shape[0], length = hidden.shape[1];
        using var scope = NewDisposeScope();
        Tensor SplitHeads(Tensor x) => x.reshape(batch, length, heads, headSize).transpose(1, 2);
        var q = SplitHeads(query.call(hidden));
        var k = SplitHeads(key.call(hidden));
        var v = SplitHeads(value.call(hidden));
        // libtorch's fused kernel: softmax(q k^T / sqrt(d)) v, with attention dropout only while training (transformers' sdpa path).
        var context = nn.functional.scaled_dot_product_attention(q, k, v, p: training ? dropoutProb : 0.0);
        return context.transpose(1, 2).reshape(batch, length, heads * headSize).MoveToOuterDisposeScope();
    }
}

/// <summary>The projection after attention: dense and dropout (the residual is added in <see cref="ViTLayer"/>, because the norm comes first).</summary>
public sealed class ViTSelfOutput : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly Dropout dropout;

    public ViTSelfOutput(ViTConfig config) : base(nameof(ViTSelfOutput))
    {
        dense = nn.Linear(config.HiddenSize, config.HiddenSize);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden) => dropout.call(dense.call(hidden));
}

/// <summary>Self-attention followed by its output projection (transformers' ViTAttention: fields attention and output).</summary>
public sealed class ViTAttention : nn.Module<Tensor, Tensor>
{
    private readonly ViTSelfAttention attention;
    private readonly ViTSelfOutput output;

    public ViTAttention(ViTConfig config) : base(nameof(ViTAttention))
    {
        attention = new ViTSelfAttention(config);
        output = new ViTSelfOutput(config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var context = attention.call(hidden);
        return output.call(context);
    }
}

/// <summary>The expanding half of the feed-forward block: dense to intermediate_size, then hidden_act.</summary>
public sealed class ViTIntermediate : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly Func<Tensor, Tensor> activation;

    public ViTIntermediate(ViTConfig config) : base(nameof(ViTIntermediate))
    {
        dense = nn.Linear(config.HiddenSize, config.IntermediateSize);
        activation = Activations.Get(config.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var projected = dense.call(hidden);
        return activation(projected);
    }
}

/// <summary>The contracting half of the feed-forward block: dense back to hidden_size, dropout, plus the residual.</summary>
public sealed class ViTOutput : nn.Module<Tensor, Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly Dropout dropout;

    public ViTOutput(ViTConfig config) : base(nameof(ViTOutput))
    {
        dense = nn.Linear(config.IntermediateSize, config.HiddenSize);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <summary>dropout(dense(hidden)) + residual.</summary>
    public override Tensor forward(Tensor hidden, Tensor residual)
    {
        using var projected = dense.call(hidden);
        using var dropped = dropout.call(projected);
        return dropped + residual;
    }
}

/// <summary>One pre-norm transformer block: x + attention(LN(x)), then h + MLP(LN(h)).</summary>
public sealed class ViTLayer : nn.Module<Tensor, Tensor>
{
    private readonly ViTAttention attention;
    private readonly ViTIntermediate intermediate;
    private readonly ViTOutput output;
    private readonly LayerNorm layernorm_before;
    private readonly LayerNorm layernorm_after;

    public ViTLayer(ViTConfig config) : base(nameof(ViTLayer))
    {
        attention = new ViTAttention(config);
        intermediate = new ViTIntermediate(config);
        output = new ViTOutput(config);
        layernorm_before = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        layernorm_after = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var attended = attention.call(layernorm_before.call(hidden)) + hidden;
        return output.call(intermediate.call(layernorm_after.call(attended)), attended).MoveToOuterDisposeScope();
    }
}

/// <summary>The stack of transformer blocks (state-dict names encoder.layer.N.*).</summary>
public sealed class ViTEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ViTLayer> layer;

    public ViTEncoder(ViTConfig config) : base(nameof(ViTEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new ViTLayer(config)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        foreach (var block in layer) hidden = block.call(hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>dense + pooler_act (tanh) on the [CLS] token: ViTModel's pooled output (ViTForImageClassification has none).</summary>
public sealed class ViTPooler : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly Func<Tensor, Tensor> activation;

    public ViTPooler(ViTConfig config) : base(nameof(ViTPooler))
    {
        dense = nn.Linear(config.HiddenSize, config.PoolerOutputSize ?? config.HiddenSize);
        activation = Activations.Get(config.PoolerAct, "pooler_act");
        RegisterComponents();
    }

    /// <summary>last hidden state [B, T, H] to pooled output [B, pooler_output_size].</summary>
    public override Tensor forward(Tensor lastHidden)
    {
        using var scope = NewDisposeScope();
        return activation(dense.call(lastHidden.select(1, 0))).MoveToOuterDisposeScope();
    }
}

/// <summary>The Vision Transformer: embeddings, pre-norm blocks, a final LayerNorm and an optional pooler (transformers' ViTModel).</summary>
/// <remarks>
/// An image of another size than config.image_size is accepted as long as its sides are multiples of patch_size: the
/// position embeddings are then interpolated, as transformers does with interpolate_pos_encoding=True (transformers'
/// default, False, raises on such an image instead). Fine-tuning a 224 checkpoint on 32 x 32 CIFAR images resized to
/// 224 needs no interpolation; feeding them at another multiple of the patch does.
/// </remarks>
public sealed class ViTModel : nn.Module<Tensor, Tensor>
{
    private readonly ViTEmbeddings embeddings;
    private readonly ViTEncoder encoder;
    private readonly LayerNorm layernorm;
    private readonly ViTPooler? pooler;

    /// <summary>The architecture this model was built from.</summary>
    public ViTConfig Config { get; }

    /// <summary>Whether the pooler (pooler.dense) exists.</summary>
    public bool HasPooler => pooler is not null;

    /// <summary>The embeddings (for their <see cref="ViTEmbeddings.PositionEmbeddings"/>).</summary>
    public ViTEmbeddings Embeddings => embeddings;

    /// <summary>Builds a model with transformers' initialisation (truncated normal(0, initializer_range), zero biases, unit norms) from <paramref name="seed"/>.</summary>
    public ViTModel(ViTConfig config, bool addPoolingLayer = true, long seed = 0) : base(nameof(ViTModel))
    {
        config.Validate("config");
        Config = config;
        embeddings = new ViTEmbeddings(config);
        encoder = new ViTEncoder(config);
        layernorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        if (addPoolingLayer) pooler = new ViTPooler(config);
        RegisterComponents();
        ViTInit.Apply(this, config, seed);
    }

    /// <summary>pixel values [B, C, H, W] (processed; any float dtype) to the last hidden state [B, 1 + patches, hidden] after the final LayerNorm.</summary>
    /// <exception cref="ArgumentException">Not 4-D, the wrong channel count, or a side that is not a multiple of patch_size.</exception>
    public override Tensor forward(Tensor pixelValues)
    {
        CheckPixels(pixelValues);
        using var scope = NewDisposeScope();
        // As transformers: the input takes the weights' dtype (a bf16 model, float32 pixels).
        var dtype = layernorm.weight!.dtype;
        var pixels = pixelValues.dtype == dtype ? pixelValues : pixelValues.to(dtype);
        var hidden = encoder.call(embeddings.call(pixels));
        return layernorm.call(hidden).MoveToOuterDisposeScope();
    }

    /// <summary>The pooled output [B, pooler_output_size] of a last hidden state; throws when the model has no pooler.</summary>
    public Tensor Pool(Tensor lastHidden) =>
        pooler is null ? throw new InvalidOperationException("this ViTModel was built without a pooler (pooler.dense).") : pooler.call(lastHidden);

    void CheckPixels(Tensor pixels)
    {
        if (pixels.dim() != 4)
            throw new ArgumentException($"pixel values must be [batch, channels, height, width], got [{string.Join(", ", pixels.shape)}].", nameof(pixels));
        long channels = pixels.shape[1], height = pixels.shape[2], width = pixels.shape[3];
        if (channels != Config.NumChannels)
            throw new ArgumentException($"pixel values have {channels} channels but this ViT expects num_channels {Config.NumChannels} (config.json).", nameof(pixels));
        int p = Config.PatchSize;
        if (height < p || width < p || height % p != 0 || width % p != 0)
            throw new ArgumentException(
                $"image size {height} x {width} is not a multiple of this ViT's patch_size {p} (its image_size is {Config.ImageSize}): resize or crop the images to a multiple of {p}.",
                nameof(pixels));
        if (!pixels.is_floating_point())
            throw new ArgumentException($"pixel values must be floating point (processed: rescaled and normalised), got {pixels.dtype}.", nameof(pixels));
    }
}

/// <summary>ViT with a linear classifier on the final [CLS] token: transformers' ViTForImageClassification (names vit.*, classifier.*).</summary>
public sealed class ViTForImageClassification : nn.Module<Tensor, Tensor>, IImageClassifier
{
    private readonly ViTModel vit;
    private nn.Module<Tensor, Tensor> classifier;
    private IReadOnlyList<string> labels;

    /// <summary>The architecture this model was built from.</summary>
    public ViTConfig Config => vit.Config;

    /// <summary>The backbone (no pooler).</summary>
    public ViTModel Vit => vit;

    /// <inheritdoc/>
    public string ModelType => "vit";

    /// <inheritdoc/>
    public nn.Module Module => this;

    /// <inheritdoc/>
    public int NumLabels { get; }

    /// <inheritdoc/>
    public int NumChannels => Config.NumChannels;

    /// <inheritdoc/>
    public int? ImageSize => Config.ImageSize;

    /// <inheritdoc/>
    public IReadOnlyList<string> HeadModules { get; } = ["classifier"];

    /// <summary>The class names in id order (config.json's id2label when it has <see cref="NumLabels"/> of them, else LABEL_i); saved as id2label / label2id.</summary>
    public IReadOnlyList<string> Labels
    {
        get => labels;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (value.Count != NumLabels)
                throw new ArgumentException($"expected {NumLabels} class names for this {NumLabels}-class ViT classifier, got {value.Count}.", nameof(value));
            labels = value.ToList();
        }
    }

    /// <summary>Builds the model with transformers' initialisation from <paramref name="seed"/> (the backbone usually then loads a checkpoint).</summary>
    public ViTForImageClassification(ViTConfig config, int numLabels, IReadOnlyList<string>? labels = null, long seed = 0) : base(nameof(ViTForImageClassification))
    {
        if (numLabels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), numLabels, "a ViT classifier needs at least one class.");
        NumLabels = numLabels;
        this.labels = Enumerable.Range(0, numLabels).Select(i => $"LABEL_{i}").ToList();
        vit = new ViTModel(config, addPoolingLayer: false, seed: seed);
        classifier = nn.Linear(config.HiddenSize, numLabels);
        RegisterComponents();
        // The head gets its own stream (seed + 1), so the same seed gives the same head whatever the backbone's size.
        ViTInit.Apply(classifier, config, seed + 1);
        if (labels is not null) Labels = labels;
    }

    /// <summary>pixel values [B, C, H, W] to logits [B, num_labels] from the final LayerNorm's [CLS] token.</summary>
    public override Tensor forward(Tensor pixelValues)
    {
        using var lastHidden = vit.call(pixelValues);
        using var cls = lastHidden.select(1, 0);
        return classifier.call(cls);
    }

    /// <inheritdoc/>
    public Tensor Logits(Tensor pixelValues)
    {
        var logits = forward(pixelValues);
        if (logits.dtype == ScalarType.Float32) return logits;
        using (logits) return logits.to(ScalarType.Float32);
    }

    /// <inheritdoc/>
    public void Save(string folder, string? copyFilesFrom = null) => HfViTLoader.Save(folder, this, copyFilesFrom);
}

/// <summary>transformers' ViTPreTrainedModel._init_weights, made deterministic by a seeded generator.</summary>
internal static class ViTInit
{
    public static void Apply(nn.Module root, ViTConfig config, long seed)
    {
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed, CPU);
        double std = config.InitializerRange;
        // named_modules() leaves out the root itself, which may be the very layer to initialise (a classifier head).
        foreach (var (_, module) in root.named_modules().Prepend(("", root)))
        {
            switch (module)
            {
                case Linear linear:
                    TruncatedNormal(linear.weight!, std, generator);
                    linear.bias?.zero_();
                    break;
                case Conv2d conv:
                    TruncatedNormal(conv.weight!, std, generator);
                    conv.bias?.zero_();
                    break;
                case LayerNorm norm:
                    norm.weight?.fill_(1.0);
                    norm.bias?.zero_();
                    break;
                case ViTEmbeddings embeddings:
                    foreach (var (name, p) in embeddings.named_parameters(recurse: false))
                        TruncatedNormal(p, std, generator);
                    break;
            }
        }
    }

    // torch.nn.init.trunc_normal_(mean 0, std, a = -2, b = 2), its inverse-CDF method: uniform in [2 Phi(a / std) - 1,
    // 2 Phi(b / std) - 1], erfinv, scale by std sqrt(2), clamp. The bounds are absolute (not in units of std), as in
    // transformers. Drawn on the CPU and copied, so the same seed gives the same model on every device.
    static void TruncatedNormal(Tensor weight, double std, Generator generator)
    {
        if (std == 0) { weight.zero_(); return; }
        const double a = -2, b = 2;
        double lower = 2 * NormalCdf(a / std) - 1, upper = 2 * NormalCdf(b / std) - 1;
        using var cpu = empty(weight.shape, ScalarType.Float32, CPU);
        cpu.uniform_(lower, upper, generator).erfinv_().mul_(std * Math.Sqrt(2)).clamp_(a, b);
        weight.copy_(cpu);
    }

    static double NormalCdf(double x)
    {
        using var t = tensor(x / Math.Sqrt(2), ScalarType.Float64);
        using var e = t.erf();
        return 0.5 * (1 + e.item<double>());
    }
}
