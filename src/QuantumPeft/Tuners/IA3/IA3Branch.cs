using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.IA3;

/// <summary>(IA)^3 (Liu et al. 2022): a learned vector l scales a layer's input (feed-forward targets) or its output, bias included.</summary>
/// <remarks>File key (peft's): <c>ia3_l</c>, [1, in] for a feed-forward target, [out, 1] otherwise. Not additive: the branch wraps
/// the base layer (<see cref="Compose"/>); merging multiplies the weight (and, on the output side, the bias) by l, and unmerging divides
/// by l + 1e-8 as peft does, so it is exact only up to that tolerance.
/// On a Conv2d (peft's IA3 Conv2d) l is [1, in, 1, 1] (feed-forward: scales the input channels) or [1, out, 1, 1] (scales the output
/// channels); merged, it scales the kernel's input-channel columns (each kh * kw wide) or its output rows.</remarks>
public sealed class IA3Branch : AdapterBranch
{
    /// <summary>peft's tolerance when unmerging (division by l + 1e-8).</summary>
    public const double UnmergeEpsilon = 1e-8;

    private readonly Parameter ia3_l;

    /// <summary>True when l scales the input (a feed-forward target), false when it scales the output.</summary>
    public bool IsFeedforward { get; }

    public override string PeftType => IA3Config.TypeName;

    public override bool IsAdditive => false;

    /// <summary>Creates the branch; l = 1 when <paramref name="initOnes"/> (peft's default), else standard normal.</summary>
    public IA3Branch(int inFeatures, int outFeatures, bool isFeedforward, bool initOnes = true) : this(inFeatures, outFeatures, null, isFeedforward, initOnes) { }

    /// <summary>The branch for a Conv2d of geometry <paramref name="conv"/>; l = 1 when <paramref name="initOnes"/>, else standard normal.</summary>
    public IA3Branch(Conv2dShape conv, bool isFeedforward, bool initOnes = true) : this(conv.MatrixIn, conv.OutChannels, conv, isFeedforward, initOnes) { }

    private IA3Branch(int inFeatures, int outFeatures, Conv2dShape? conv, bool isFeedforward, bool initOnes) : base(nameof(IA3Branch), inFeatures, outFeatures, conv)
    {
        IsFeedforward = isFeedforward;
        var shape = StoredShape(isFeedforward);
        ia3_l = new Parameter(initOnes ? torch.ones(shape) : torch.randn(shape));
        RegisterComponents();
    }

    // peft's layouts: [1, in] / [out, 1] on a Linear, [1, in, 1, 1] / [1, out, 1, 1] on a Conv2d.
    private long[] StoredShape(bool feedforward) => Conv is { } c
        ? (feedforward ? [1, c.InChannels, 1, 1] : [1, c.OutChannels, 1, 1])
        : (feedforward ? [1, InFeatures] : [OutFeatures, 1]);

    // l laid out against the weight seen as [out, in] ([out, in * kh * kw] for a Conv2d, whose input channel c owns kh * kw columns).
    private Tensor WeightScale() => Conv is { } c
        ? (IsFeedforward ? ia3_l.detach().flatten().repeat_interleave(c.KernelH * c.KernelW).view(1, -1) : ia3_l.detach().flatten().view(-1, 1))
        : ia3_l.detach();

    /// <summary>The learned vector as stored ([1, in] or [out, 1]).</summary>
    public Parameter L => ia3_l;

    /// <summary>Trainable numbers of an (IA)^3 layer: in for a feed-forward target, out otherwise. The one IA3 count formula;
    /// on a Conv2d, in is the input channels (not in * kh * kw: l scales whole channels).</summary>
    public static long CountParameters(int inFeatures, int outFeatures, bool isFeedforward) => isFeedforward ? inFeatures : outFeatures;

    public override Tensor Compose(Tensor x, Func<Tensor, Tensor> baseForward)
    {
        var l = Conv is null ? ia3_l.flatten() : ia3_l; // [1, C, 1, 1] broadcasts over [N, C, H, W]
        if (IsFeedforward) return baseForward((x.to(l.dtype) * l).to(x.dtype));
        var y = baseForward(x);
        return (y.to(l.dtype) * l).to(y.dtype);
    }

    /// <summary>The additive equivalent Compose(x) - base(x) (needs the attached layer).</summary>
    public override Tensor Forward(Tensor x)
    {
        var layer = AttachedLayer ?? throw new InvalidOperationException("An (IA)^3 branch needs its base layer; add it to an AdaptedLinear first.");
        return Compose(x, layer.forward) - layer.forward(x);
    }

    /// <summary>The weight part of the update, W * (l - 1) by rows or columns; the output-side bias scaling is not in it.</summary>
    public override Tensor DeltaWeight()
    {
        var layer = AttachedLayer ?? throw new InvalidOperationException("An (IA)^3 branch needs its base layer; add it to an AdaptedLinear first.");
        var w = LinearLayers.WeightOutIn(layer).detach().to(ScalarType.Float32);
        return w * (WeightScale().to(w.device) - 1);
    }

    // peft's merge: weight *= l (columns for feed-forward, rows otherwise); bias *= l on the output side.
    public override void MergeInto(Tensor weightOutIn, Tensor? bias)
    {
        weightOutIn.mul_(WeightScale().to(weightOutIn.dtype).to(weightOutIn.device));
        if (!IsFeedforward && bias is not null) bias.mul_(ia3_l.detach().flatten().to(bias.dtype).to(bias.device));
    }

    // peft's unmerge: divide by l + 1e-8.
    public override void UnmergeFrom(Tensor weightOutIn, Tensor? bias)
    {
        weightOutIn.div_((WeightScale() + UnmergeEpsilon).to(weightOutIn.dtype).to(weightOutIn.device));
        if (!IsFeedforward && bias is not null) bias.div_((ia3_l.detach().flatten() + UnmergeEpsilon).to(bias.dtype).to(bias.device));
    }

    public override Dictionary<string, Tensor> ExportState() => new() { ["ia3_l"] = ia3_l.detach().cpu().contiguous() };

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        var otherSide = StoredShape(!IsFeedforward);
        if (state.TryGetValue("ia3_l", out var t) && !t.shape.SequenceEqual(ia3_l.shape) && t.shape.SequenceEqual(otherSide))
            throw new InvalidDataException($"Adapter key '{keyPrefix}ia3_l' has shape [{string.Join(", ", t.shape)}] but this layer expects [{string.Join(", ", ia3_l.shape)}]: " +
                $"the file treats it as {(IsFeedforward ? "not " : "")}a feed-forward module; check feedforward_modules.");
        var l = Require(state, "ia3_l", keyPrefix, ia3_l.shape);
        using var _ = no_grad();
        ia3_l.copy_(l.to(ia3_l.dtype));
    }
}
