using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.Lora;

/// <summary>LoRA: delta y = s * B A dropout(x), A (r x in) kaiming-uniform, B (out x r) zero at start, s = alpha / r.</summary>
/// <remarks>
/// File keys (peft's): <c>lora_A.weight</c> (r x in) and <c>lora_B.weight</c> (out x r).
/// On a Conv2d (peft's layout): lora_A is a Conv2d(in, r) with the base layer's kernel, stride, padding and dilation, lora_B a
/// 1 x 1 Conv2d(r, out), both without bias: <c>lora_A.weight</c> [r, in, kh, kw], <c>lora_B.weight</c> [out, r, 1, 1].
/// (peft does not pass the base layer's dilation to lora_A; with dilation 1, all peft supports, the two are the same.)
/// The merged update is B A with both flattened, [out, r] x [r, in * kh * kw], which is peft's formula for 1 x 1 and k x k kernels alike
/// (its k x k form, conv2d(A^T, B)^T, sums the same products).
/// </remarks>
public sealed class LoraBranch : AdapterBranch
{
    private readonly nn.Module<Tensor, Tensor> lora_A;
    private readonly nn.Module<Tensor, Tensor> lora_B;
    private readonly Dropout? lora_dropout;

    /// <summary>Rank r.</summary>
    public int Rank { get; }

    /// <summary>The scaling s applied to B A.</summary>
    public double Scaling { get; }

    public override string PeftType => LoraConfig.TypeName;

    /// <summary>Creates the branch in float32 on CPU; <paramref name="zeroInitB"/> false leaves B random (tests, peft's init_lora_weights=false).</summary>
    public LoraBranch(int inFeatures, int outFeatures, int rank, double scaling, double dropout = 0, bool zeroInitB = true, long? seed = null)
        : base(nameof(LoraBranch), inFeatures, outFeatures)
    {
        CheckRank(rank);
        Rank = rank;
        Scaling = scaling;
        lora_A = nn.Linear(inFeatures, rank, hasBias: false);
        lora_B = nn.Linear(rank, outFeatures, hasBias: false);
        if (dropout > 0) lora_dropout = nn.Dropout(dropout);
        Initialize(zeroInitB, seed);
        RegisterComponents();
    }

    /// <summary>Creates the branch for a Conv2d of geometry <paramref name="conv"/> (peft's lora.Conv2d), float32 on CPU.</summary>
    public LoraBranch(Conv2dShape conv, int rank, double scaling, double dropout = 0, bool zeroInitB = true, long? seed = null)
        : base(nameof(LoraBranch), conv)
    {
        CheckRank(rank);
        Rank = rank;
        Scaling = scaling;
        lora_A = nn.Conv2d(conv.InChannels, rank, (conv.KernelH, conv.KernelW), stride: (conv.StrideH, conv.StrideW),
            padding: (conv.PaddingH, conv.PaddingW), dilation: (conv.DilationH, conv.DilationW), bias: false);
        lora_B = nn.Conv2d(rank, conv.OutChannels, (1, 1), bias: false);
        if (dropout > 0) lora_dropout = nn.Dropout(dropout);
        Initialize(zeroInitB, seed);
        RegisterComponents();
    }

    private static void CheckRank(int rank)
    {
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "LoRA rank must be at least 1.");
    }

    private void Initialize(bool zeroInitB, long? seed)
    {
        var generator = seed is { } s ? new Generator((ulong)s) : null;
        using var _ = no_grad();
        // peft: kaiming_uniform_(A, a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in (in * kh * kw for a
        // convolution); B = 0 so the model starts unchanged.
        var boundA = 1.0 / Math.Sqrt(InFeatures);
        A.uniform_(-boundA, boundA, generator);
        if (zeroInitB) B.zero_();
        else B.uniform_(-1.0 / Math.Sqrt(Rank), 1.0 / Math.Sqrt(Rank), generator);
    }

    /// <summary>A (r x in; [r, in, kh, kw] on a Conv2d).</summary>
    public Parameter A => Weight(lora_A);

    /// <summary>B (out x r; [out, r, 1, 1] on a Conv2d).</summary>
    public Parameter B => Weight(lora_B);

    private static Parameter Weight(nn.Module<Tensor, Tensor> m) => m switch
    {
        Linear l => l.weight!,
        Conv2d c => c.weight!,
        _ => throw new InvalidOperationException($"unexpected LoRA factor {m.GetType().Name}."),
    };

    /// <summary>Trainable numbers of a LoRA adapter on one out x in matrix: r * (in + out). The one LoRA count formula;
    /// on a Conv2d, in = in_channels * kh * kw (A holds r x in x kh x kw numbers, the 1 x 1 B out x r).</summary>
    public static long CountParameters(long inFeatures, long outFeatures, int rank) => rank * (inFeatures + outFeatures);

    public override Tensor Forward(Tensor x)
    {
        var h = x.to(A.dtype);
        if (lora_dropout is not null) h = lora_dropout.forward(h);
        return lora_B.forward(lora_A.forward(h)) * Scaling;
    }

    public override Tensor DeltaWeight() => B.flatten(1).matmul(A.flatten(1)) * Scaling;

    public override Dictionary<string, Tensor> ExportState() => new()
    {
        ["lora_A.weight"] = A.detach().cpu().contiguous(),
        ["lora_B.weight"] = B.detach().cpu().contiguous(),
    };

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        var a = Require(state, "lora_A.weight", keyPrefix, A.shape);
        var b = Require(state, "lora_B.weight", keyPrefix, B.shape);
        using var _ = no_grad();
        A.copy_(a.to(A.dtype));
        B.copy_(b.to(B.dtype));
    }
}
