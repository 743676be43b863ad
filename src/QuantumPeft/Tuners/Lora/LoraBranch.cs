using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.Lora;

/// <summary>LoRA: delta y = s * B A dropout(x), A (r x in) kaiming-uniform, B (out x r) zero at start, s = alpha / r.</summary>
/// <remarks>File keys (peft's): <c>lora_A.weight</c> (r x in) and <c>lora_B.weight</c> (out x r).</remarks>
public sealed class LoraBranch : AdapterBranch
{
    private readonly Linear lora_A;
    private readonly Linear lora_B;
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
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "LoRA rank must be at least 1.");
        Rank = rank;
        Scaling = scaling;
        var generator = seed is { } s ? new Generator((ulong)s) : null;
        lora_A = nn.Linear(inFeatures, rank, hasBias: false);
        lora_B = nn.Linear(rank, outFeatures, hasBias: false);
        using (no_grad())
        {
            // peft: kaiming_uniform_(A, a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0 so the model starts unchanged.
            var boundA = 1.0 / Math.Sqrt(inFeatures);
            lora_A.weight!.uniform_(-boundA, boundA, generator);
            if (zeroInitB) lora_B.weight!.zero_();
            else lora_B.weight!.uniform_(-1.0 / Math.Sqrt(rank), 1.0 / Math.Sqrt(rank), generator);
        }
        if (dropout > 0) lora_dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>A (r x in).</summary>
    public Parameter A => lora_A.weight!;

    /// <summary>B (out x r).</summary>
    public Parameter B => lora_B.weight!;

    /// <summary>Trainable numbers of a LoRA adapter on one out x in matrix: r * (in + out). The one LoRA count formula.</summary>
    public static long CountParameters(long inFeatures, long outFeatures, int rank) => rank * (inFeatures + outFeatures);

    public override Tensor Forward(Tensor x)
    {
        var h = x.to(A.dtype);
        if (lora_dropout is not null) h = lora_dropout.forward(h);
        return lora_B.forward(lora_A.forward(h)) * Scaling;
    }

    public override Tensor DeltaWeight() => B.matmul(A) * Scaling;

    public override Dictionary<string, Tensor> ExportState() => new()
    {
        ["lora_A.weight"] = A.detach().cpu().contiguous(),
        ["lora_B.weight"] = B.detach().cpu().contiguous(),
    };

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        var a = Require(state, "lora_A.weight", keyPrefix, Rank, InFeatures);
        var b = Require(state, "lora_B.weight", keyPrefix, OutFeatures, Rank);
        using var _ = no_grad();
        A.copy_(a.to(A.dtype));
        B.copy_(b.to(B.dtype));
    }
}
