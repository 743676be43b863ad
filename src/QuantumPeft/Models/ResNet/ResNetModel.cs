using QuantumPeft.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.ResNet;

// Hugging Face's ResNet (transformers/models/resnet/modeling_resnet.py), top to bottom. Field names are the
// checkpoint's names (RegisterComponents turns them into state-dict names), so microsoft/resnet-18 loads as is:
// resnet.embedder.embedder.convolution.weight, resnet.encoder.stages.0.layers.0.layer.1.normalization.running_var, ...
// Every convolution is a TorchSharp Conv2d, so adapters can target them by name.

/// <summary>When BatchNorm layers update their running statistics in training mode.</summary>
public enum BatchNormStatistics
{
    /// <summary>
    /// Our default: a BatchNorm whose own weight is frozen (a frozen backbone, with or without adapters on its
    /// convolutions) normalises with its stored statistics even in training mode; one whose weight trains updates them.
    /// Fine-tuning on small batches of a new domain would otherwise overwrite the ImageNet statistics the frozen
    /// weights were trained with.
    /// </summary>
    FollowParameters,

    /// <summary>PyTorch's behaviour: training mode always uses batch statistics and updates the running ones.</summary>
    Update,

    /// <summary>Always normalise with the stored statistics (eval-mode BatchNorm), also when the BatchNorm weights train.</summary>
    Freeze,
}

/// <summary>The model-wide BatchNorm setting, shared by reference with every conv layer so it can change after construction.</summary>
internal sealed class BatchNormPolicy
{
    public BatchNormStatistics Mode { get; set; } = BatchNormStatistics.FollowParameters;

    public Tensor Normalize(BatchNorm2d norm, Tensor x)
    {
        bool frozen = Mode switch
        {
            BatchNormStatistics.Freeze => true,
            BatchNormStatistics.Update => false,
            _ => norm.weight is { requires_grad: false },
        };
        if (!norm.training || !frozen) return norm.call(x);
        return nn.functional.batch_norm(x, norm.running_mean!, norm.running_var!, norm.weight, norm.bias, training: false, eps: norm.eps);
    }
}

/// <summary>Convolution (no bias, padding kernel / 2), BatchNorm, then the activation (none for the last layer of a residual block).</summary>
public sealed class ResNetConvLayer : nn.Module<Tensor, Tensor>
{
    // Typed as Module, not Conv2d, so an adapter can take the convolution's place (ModuleTree.Replace sets this field).
    private nn.Module<Tensor, Tensor> convolution;
    private readonly BatchNorm2d normalization;
    private readonly Func<Tensor, Tensor>? activation;
    private readonly BatchNormPolicy policy;

    internal ResNetConvLayer(long inChannels, long outChannels, BatchNormPolicy policy, long kernelSize = 3, long stride = 1, string? activation = "relu")
        : base(nameof(ResNetConvLayer))
    {
        convolution = nn.Conv2d(inChannels, outChannels, kernelSize, stride: stride, padding: kernelSize / 2, bias: false);
        normalization = nn.BatchNorm2d(outChannels);
        this.activation = activation is null ? null : Activations.Get(activation);
        this.policy = policy;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var hidden = policy.Normalize(normalization, convolution.call(input));
        return (activation is null ? hidden : activation(hidden)).MoveToOuterDisposeScope();
    }
}

/// <summary>The projection of the residual (1x1 convolution with the block's stride, then BatchNorm) where the shape changes.</summary>
public sealed class ResNetShortCut : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> convolution;
    private readonly BatchNorm2d normalization;
    private readonly BatchNormPolicy policy;

    internal ResNetShortCut(long inChannels, long outChannels, long stride, BatchNormPolicy policy) : base(nameof(ResNetShortCut))
    {
        convolution = nn.Conv2d(inChannels, outChannels, 1, stride: stride, bias: false);
        normalization = nn.BatchNorm2d(outChannels);
        this.policy = policy;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var conv = convolution.call(input);
        return policy.Normalize(normalization, conv);
    }
}

/// <summary>A residual layer: basic (3x3, 3x3) or bottleneck (1x1 down to a quarter, 3x3, 1x1 up), plus the shortcut, then the activation.</summary>
public sealed class ResNetResidualLayer : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> shortcut;
    private readonly Sequential layer;
    private readonly Func<Tensor, Tensor> activation;

    internal ResNetResidualLayer(ResNetConfig config, long inChannels, long outChannels, long stride, BatchNormPolicy policy)
        : base(config.LayerType == "basic" ? "ResNetBasicLayer" : "ResNetBottleNeckLayer")
    {
        shortcut = inChannels != outChannels || stride != 1 ? new ResNetShortCut(inChannels, outChannels, stride, policy) : nn.Identity();
        if (config.LayerType == "basic")
            layer = nn.Sequential(
                new ResNetConvLayer(inChannels, outChannels, policy, stride: stride, activation: config.HiddenAct),
                new ResNetConvLayer(outChannels, outChannels, policy, activation: null));
        else
        {
            long reduced = outChannels / ResNetConfig.BottleneckReduction;
            // downsample_in_bottleneck puts the stride on the first 1x1 convolution (the original paper), else on the 3x3 (torchvision's "v1.5").
            layer = nn.Sequential(
                new ResNetConvLayer(inChannels, reduced, policy, kernelSize: 1, stride: config.DownsampleInBottleneck ? stride : 1, activation: config.HiddenAct),
                new ResNetConvLayer(reduced, reduced, policy, stride: config.DownsampleInBottleneck ? 1 : stride, activation: config.HiddenAct),
                new ResNetConvLayer(reduced, outChannels, policy, kernelSize: 1, activation: null));
        }
        activation = Activations.Get(config.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var hidden = layer.call(input) + shortcut.call(input);
        return activation(hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>A stage: residual layers of one width, the first of which changes the width and / or downsamples.</summary>
public sealed class ResNetStage : nn.Module<Tensor, Tensor>
{
    private readonly Sequential layers;

    internal ResNetStage(ResNetConfig config, long inChannels, long outChannels, long stride, int depth, BatchNormPolicy policy) : base(nameof(ResNetStage))
    {
        layers = nn.Sequential(Enumerable.Range(0, depth).Select(i =>
            (nn.Module<Tensor, Tensor>)new ResNetResidualLayer(config, i == 0 ? inChannels : outChannels, outChannels, i == 0 ? stride : 1, policy)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => layers.call(input);
}

/// <summary>The stages in order; the first downsamples only with downsample_in_first_stage, the others always (stride 2).</summary>
public sealed class ResNetEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResNetStage> stages;

    internal ResNetEncoder(ResNetConfig config, BatchNormPolicy policy) : base(nameof(ResNetEncoder))
    {
        var sizes = config.HiddenSizes;
        stages = nn.ModuleList(Enumerable.Range(0, sizes.Count).Select(i => new ResNetStage(config,
            i == 0 ? config.EmbeddingSize : sizes[i - 1], sizes[i], i == 0 && !config.DownsampleInFirstStage ? 1 : 2, config.Depths[i], policy)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var hidden = input;
        foreach (var stage in stages) hidden = stage.call(hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>The stem: a 7x7 stride-2 convolution layer and a 3x3 stride-2 max pool.</summary>
public sealed class ResNetEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly ResNetConvLayer embedder;
    private readonly MaxPool2d pooler;
    private readonly int numChannels;

    internal ResNetEmbeddings(ResNetConfig config, BatchNormPolicy policy) : base(nameof(ResNetEmbeddings))
    {
        embedder = new ResNetConvLayer(config.NumChannels, config.EmbeddingSize, policy, kernelSize: 7, stride: 2, activation: config.HiddenAct);
        pooler = nn.MaxPool2d(3, stride: 2, padding: 1);
        numChannels = config.NumChannels;
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixelValues)
    {
        if (pixelValues.dim() != 4)
            throw new ArgumentException($"pixel values must be [batch, channels, height, width], got [{string.Join(", ", pixelValues.shape)}].", nameof(pixelValues));
        if (pixelValues.shape[1] != numChannels)
            throw new ArgumentException(
                $"pixel values have {pixelValues.shape[1]} channels but the model's config.json says num_channels {numChannels} (shape [{string.Join(", ", pixelValues.shape)}]).",
                nameof(pixelValues));
        using var embedded = embedder.call(pixelValues);
        return pooler.call(embedded);
    }
}

/// <summary>The ResNet backbone (Hugging Face's ResNetModel): stem, stages, global average pool.</summary>
public sealed class ResNetModel : nn.Module<Tensor, Tensor>
{
    private readonly ResNetEmbeddings embedder;
    private readonly ResNetEncoder encoder;
    private readonly AdaptiveAvgPool2d pooler;

    /// <summary>The architecture.</summary>
    public ResNetConfig Config { get; }

    internal BatchNormPolicy Policy { get; }

    /// <summary>Builds a randomly initialised backbone (Hugging Face's initialisation, from <paramref name="seed"/>).</summary>
    public ResNetModel(ResNetConfig config, long seed = 0) : this(config, new BatchNormPolicy(), seed) { }

    internal ResNetModel(ResNetConfig config, BatchNormPolicy policy, long seed) : base(nameof(ResNetModel))
    {
        config.Validate("config");
        Config = config;
        Policy = policy;
        embedder = new ResNetEmbeddings(config, policy);
        encoder = new ResNetEncoder(config, policy);
        pooler = nn.AdaptiveAvgPool2d(1);
        RegisterComponents();
        ResNetInit.Apply(this, seed);
    }

    /// <summary>When BatchNorm layers update their running statistics in training mode (<see cref="BatchNormStatistics.FollowParameters"/> by default).</summary>
    public BatchNormStatistics BatchNormStatistics { get => Policy.Mode; set => Policy.Mode = value; }

    /// <summary>Pixel values [B, C, H, W] to the last stage's feature map [B, hidden_sizes[-1], H / 32, W / 32] (last_hidden_state).</summary>
    public override Tensor forward(Tensor pixelValues)
    {
        using var embedded = embedder.call(pixelValues);
        return encoder.call(embedded);
    }

    /// <summary>The pooled features [B, hidden_sizes[-1], 1, 1] of a feature map (Hugging Face's pooler_output).</summary>
    public Tensor Pool(Tensor lastHiddenState) => pooler.call(lastHiddenState);

    /// <summary>Pixel values to the pooled features, flattened: [B, hidden_sizes[-1]].</summary>
    public Tensor Features(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        return Pool(call(pixelValues)).flatten(1).MoveToOuterDisposeScope();
    }
}

/// <summary>A ResNet with a linear classifier on the pooled features (Hugging Face's ResNetForImageClassification).</summary>
/// <remarks>State-dict names: resnet.* and classifier.1.* (the classifier is Sequential(Flatten, Linear)).</remarks>
public sealed class ResNetForImageClassification : nn.Module<Tensor, Tensor>
{
    private readonly ResNetModel resnet;
    private nn.Module<Tensor, Tensor> classifier;

    /// <summary>The backbone (state-dict prefix "resnet.").</summary>
    public ResNetModel ResNet => resnet;

    /// <summary>The architecture.</summary>
    public ResNetConfig Config => resnet.Config;

    /// <summary>Number of classes.</summary>
    public int NumLabels { get; }

    /// <summary>Builds a randomly initialised model; the head is drawn from its own stream (<paramref name="seed"/> + 1), so it does not depend on the backbone's size.</summary>
    public ResNetForImageClassification(ResNetConfig config, int numLabels, long seed = 0) : base(nameof(ResNetForImageClassification))
    {
        if (numLabels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), numLabels, "num_labels must be at least 1.");
        NumLabels = numLabels;
        resnet = new ResNetModel(config, new BatchNormPolicy(), seed);
        classifier = nn.Sequential(("0", nn.Flatten()), ("1", nn.Linear(config.FeatureSize, numLabels)));
        RegisterComponents();
        ResNetInit.Apply(classifier, seed + 1);
    }

    /// <summary>When BatchNorm layers update their running statistics in training mode (<see cref="BatchNormStatistics.FollowParameters"/> by default).</summary>
    public BatchNormStatistics BatchNormStatistics { get => resnet.BatchNormStatistics; set => resnet.BatchNormStatistics = value; }

    /// <summary>Pixel values [B, C, H, W] (processed: resized, rescaled, normalised) to logits [B, num_labels].</summary>
    public override Tensor forward(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        return classifier.call(resnet.Pool(resnet.call(pixelValues))).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' ResNet initialisation: Kaiming-normal convolutions (fan_out, ReLU gain), BatchNorm 1 / 0, PyTorch's default Linear.</summary>
internal static class ResNetInit
{
    public static void Apply(nn.Module root, long seed)
    {
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed, CPU);
        // named_modules() leaves out the root itself.
        foreach (var (_, module) in root.named_modules().Prepend(("", root)))
        {
            switch (module)
            {
                case Conv2d conv:
                    {
                        var w = conv.weight!;
                        long fanOut = w.shape[0] * w.shape[2] * w.shape[3];
                        Draw(w, t => t.normal_(0.0, Math.Sqrt(2.0 / fanOut), generator));
                        break;
                    }
                case BatchNorm2d norm:
                    norm.weight?.fill_(1.0);
                    norm.bias?.zero_();
                    break;
                case Linear linear:
                    {
                        // kaiming_uniform_(a = sqrt 5) and the bias rule both come to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
                        double bound = 1.0 / Math.Sqrt(linear.weight!.shape[1]);
                        Draw(linear.weight!, t => t.uniform_(-bound, bound, generator));
                        if (linear.bias is { } b) Draw(b, t => t.uniform_(-bound, bound, generator));
                        break;
                    }
            }
        }
    }

    // Drawn on the CPU (where the generator lives) and copied: the same seed gives the same model on every device.
    static void Draw(Tensor target, Action<Tensor> fill)
    {
        using var cpu = empty(target.shape, target.dtype, CPU);
        fill(cpu);
        target.copy_(cpu);
    }
}
