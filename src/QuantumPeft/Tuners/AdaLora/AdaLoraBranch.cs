using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.AdaLora;

/// <summary>AdaLoRA (Zhang et al. 2023): delta W = B (A * E) * s / (ranknum + 1e-5), an SVD-shaped update whose triplets can be pruned.</summary>
/// <remarks>File keys (peft's, parameter dicts so no ".weight"): <c>lora_A</c> [r, in], <c>lora_B</c> [out, r], <c>lora_E</c> [r, 1];
/// ranknum is not saved (peft's state-dict filter keeps "lora_" keys only) and is init_r on load. After pruning, only the kept
/// triplets are written (peft's resize_state_dict_by_rank_pattern).</remarks>
public sealed class AdaLoraBranch : AdapterBranch
{
    /// <summary>peft's epsilon added to ranknum.</summary>
    public const double RankEpsilon = 1e-5;

    private readonly Parameter lora_A;
    private readonly Parameter lora_B;
    private readonly Parameter lora_E;
    private readonly Dropout? lora_dropout;

    /// <summary>Number of triplets held (init_r, or the kept count when built from a rank_pattern).</summary>
    public int Rank { get; }

    /// <summary>peft's ranknum: init_r (it stays so after pruning, so the scale does not change).</summary>
    public double RankNum { get; }

    /// <summary>s: lora_alpha, or init_r when lora_alpha &lt;= 0.</summary>
    public double Scaling { get; }

    /// <summary>The kept triplets set by the allocator (one bool per held rank), or null when none was pruned in this session.</summary>
    public bool[]? Mask { get; private set; }

    public override string PeftType => AdaLoraConfig.TypeName;

    /// <summary>Creates the branch; <paramref name="initWeights"/> true gives E = 0 and A, B ~ N(0, 0.02) (peft's reset_lora_parameters).</summary>
    public AdaLoraBranch(int inFeatures, int outFeatures, int rank, double rankNum, double scaling, double dropout = 0, bool initWeights = true)
        : base(nameof(AdaLoraBranch), inFeatures, outFeatures)
    {
        if (rank < 0) throw new ArgumentOutOfRangeException(nameof(rank), rank, "AdaLoRA rank must be non-negative.");
        Rank = rank;
        RankNum = rankNum;
        Scaling = scaling;
        lora_A = new Parameter(initWeights ? torch.randn(rank, inFeatures) * 0.02 : torch.randn(rank, inFeatures));
        lora_E = new Parameter(initWeights ? torch.zeros(rank, 1) : torch.randn(rank, 1));
        lora_B = new Parameter(initWeights ? torch.randn(outFeatures, rank) * 0.02 : torch.randn(outFeatures, rank));
        if (dropout > 0) lora_dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>A [r, in] (right singular vectors).</summary>
    public Parameter A => lora_A;

    /// <summary>B [out, r] (left singular vectors).</summary>
    public Parameter B => lora_B;

    /// <summary>E [r, 1] (singular values).</summary>
    public Parameter E => lora_E;

    /// <summary>Trainable numbers of an AdaLoRA layer of rank r: r (in + out + 1). The one AdaLoRA count formula.</summary>
    public static long CountParameters(int inFeatures, int outFeatures, int rank) => (long)rank * (inFeatures + outFeatures + 1);

    private double Scale => Scaling / (RankNum + RankEpsilon);

    public override Tensor Forward(Tensor x)
    {
        var h = x.to(lora_A.dtype);
        if (lora_dropout is not null) h = lora_dropout.forward(h);
        return h.matmul((lora_A * lora_E).t()).matmul(lora_B.t()) * Scale;
    }

    public override Tensor DeltaWeight() => lora_B.matmul(lora_A * lora_E) * Scale;

    /// <summary>Zeroes E where <paramref name="keep"/> is false and remembers the mask (saving then writes only the kept triplets).</summary>
    public void ApplyMask(bool[] keep)
    {
        if (keep.Length != Rank) throw new ArgumentException($"mask has {keep.Length} entries, the layer has rank {Rank}.", nameof(keep));
        Mask = keep;
        using var _ = no_grad();
        var drop = torch.tensor(keep.Select(k => !k).ToArray()).unsqueeze(1).to(lora_E.device);
        lora_E.masked_fill_(drop, 0.0);
    }

    public override Dictionary<string, Tensor> ExportState()
    {
        Tensor a = lora_A.detach(), b = lora_B.detach(), e = lora_E.detach();
        if (Mask is { } m && m.Any(k => !k))
        {
            var kept = torch.tensor(m.Select((k, i) => (k, i)).Where(p => p.k).Select(p => (long)p.i).ToArray()).to(a.device);
            (a, b, e) = (a.index_select(0, kept), b.index_select(1, kept), e.index_select(0, kept));
        }
        return new()
        {
            ["lora_A"] = a.cpu().contiguous(),
            ["lora_B"] = b.cpu().contiguous(),
            ["lora_E"] = e.cpu().contiguous(),
        };
    }

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        var a = Require(state, "lora_A", keyPrefix, Rank, InFeatures);
        var b = Require(state, "lora_B", keyPrefix, OutFeatures, Rank);
        var e = Require(state, "lora_E", keyPrefix, Rank, 1);
        using var _ = no_grad();
        lora_A.copy_(a.to(lora_A.dtype));
        lora_B.copy_(b.to(lora_B.dtype));
        lora_E.copy_(e.to(lora_E.dtype));
    }
}
