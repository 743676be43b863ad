using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.IA3;

/// <summary>(IA)^3 (Liu et al. 2022): a learned vector l scales a layer's input (feed-forward targets) or its output, bias included.</summary>
/// <remarks>File key (peft's): <c>ia3_l</c>, [1, in] for a feed-forward target, [out, 1] otherwise. Not additive: the branch wraps
/// the base layer (<see cref="Compose"/>); merging multiplies the weight (and, on the output side, the bias) by l, and unmerging divides
/// by l + 1e-8 as peft does, so it is exact only up to that tolerance.</remarks>
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
    public IA3Branch(int inFeatures, int outFeatures, bool isFeedforward, bool initOnes = true) : base(nameof(IA3Branch), inFeatures, outFeatures)
    {
        IsFeedforward = isFeedforward;
        long[] shape = isFeedforward ? [1, inFeatures] : [outFeatures, 1];
        ia3_l = new Parameter(initOnes ? torch.ones(shape) : torch.randn(shape));
        RegisterComponents();
    }

    /// <summary>The learned vector as stored ([1, in] or [out, 1]).</summary>
    public Parameter L => ia3_l;

    /// <summary>Trainable numbers of an (IA)^3 layer: in for a feed-forward target, out otherwise. The one IA3 count formula.</summary>
    public static long CountParameters(int inFeatures, int outFeatures, bool isFeedforward) => isFeedforward ? inFeatures : outFeatures;

    public override Tensor Compose(Tensor x, Func<Tensor, Tensor> baseForward)
    {
        var l = ia3_l.flatten();
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
        return w * (ia3_l.to(w.device) - 1);
    }

    // peft's merge: weight *= l (columns for feed-forward, rows otherwise); bias *= l on the output side.
    public override void MergeInto(Tensor weightOutIn, Tensor? bias)
    {
        weightOutIn.mul_(ia3_l.detach().to(weightOutIn.dtype).to(weightOutIn.device));
        if (!IsFeedforward && bias is not null) bias.mul_(ia3_l.detach().flatten().to(bias.dtype).to(bias.device));
    }

    // peft's unmerge: divide by l + 1e-8.
    public override void UnmergeFrom(Tensor weightOutIn, Tensor? bias)
    {
        weightOutIn.div_((ia3_l.detach() + UnmergeEpsilon).to(weightOutIn.dtype).to(weightOutIn.device));
        if (!IsFeedforward && bias is not null) bias.div_((ia3_l.detach().flatten() + UnmergeEpsilon).to(bias.dtype).to(bias.device));
    }

    public override Dictionary<string, Tensor> ExportState() => new() { ["ia3_l"] = ia3_l.detach().cpu().contiguous() };

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        long[] otherSide = IsFeedforward ? [OutFeatures, 1] : [1, InFeatures];
        if (state.TryGetValue("ia3_l", out var t) && !t.shape.SequenceEqual(ia3_l.shape) && t.shape.SequenceEqual(otherSide))
            throw new InvalidDataException($"Adapter key '{keyPrefix}ia3_l' has shape [{string.Join(", ", t.shape)}] but this layer expects [{string.Join(", ", ia3_l.shape)}]: " +
                $"the file treats it as {(IsFeedforward ? "not " : "")}a feed-forward module; check feedforward_modules.");
        var l = Require(state, "ia3_l", keyPrefix, ia3_l.shape);
        using var _ = no_grad();
        ia3_l.copy_(l.to(ia3_l.dtype));
    }
}
