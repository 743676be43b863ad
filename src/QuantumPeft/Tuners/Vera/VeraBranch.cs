using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.Vera;

/// <summary>The frozen projections one VeRA adapter shares across its layers: A [r, max_in], B [max_out, r].</summary>
public sealed class VeraProjections
{
    /// <summary>A [r, max_in].</summary>
    public Tensor A { get; private set; }

    /// <summary>B [max_out, r].</summary>
    public Tensor B { get; private set; }

    private VeraProjections(Tensor a, Tensor b) { A = a; B = b; }

    /// <summary>peft's <c>_init_vera_A_vera_B</c>: one CPU generator seeded with projection_prng_key draws A then B, each
    /// U(-sqrt(6 / fan_in), +sqrt(6 / fan_in)) (kaiming-uniform with gain sqrt(2); fan_in = max_in for A, r for B).</summary>
    public static VeraProjections Generate(int rank, int maxIn, int maxOut, long prngKey)
    {
        using var generator = new Generator((ulong)prngKey);
        var a = torch.empty(rank, maxIn);
        var b = torch.empty(maxOut, rank);
        using (no_grad())
        {
            a.uniform_(-Math.Sqrt(6.0 / maxIn), Math.Sqrt(6.0 / maxIn), generator);
            b.uniform_(-Math.Sqrt(6.0 / rank), Math.Sqrt(6.0 / rank), generator);
        }
        return new VeraProjections(a, b);
    }

    /// <summary>Replaces both (e.g. with the file's copies).</summary>
    public void Set(Tensor a, Tensor b)
    {
        using var _ = no_grad();
        A.copy_(a.to(A.dtype));
        B.copy_(b.to(B.dtype));
    }
}

/// <summary>VeRA (Kopiczko et al. 2024): delta y = lambda_b * (B_s (lambda_d * (A_s x))), A_s = A[:, :in], B_s = B[:out, :] shared and frozen.</summary>
/// <remarks>File keys (peft's): <c>vera_lambda_b</c> [out], <c>vera_lambda_d</c> [r]; the shared A and B are saved once per adapter
/// as <c>base_model.vera_A</c> and <c>base_model.vera_B</c> (see <see cref="VeraMethod"/>).</remarks>
public sealed class VeraBranch : AdapterBranch
{
    private readonly Parameter vera_lambda_b;
    private readonly Parameter vera_lambda_d;
    private readonly Dropout? vera_dropout;
    private VeraProjections? projections;

    /// <summary>Rank r.</summary>
    public int Rank { get; }

    public override string PeftType => VeraConfig.TypeName;

    /// <summary>Creates the branch; <paramref name="initWeights"/> true gives lambda_b = 0, lambda_d = d_initial (peft's default).</summary>
    public VeraBranch(int inFeatures, int outFeatures, int rank, double dInitial = 0.1, bool initWeights = true, double dropout = 0)
        : base(nameof(VeraBranch), inFeatures, outFeatures)
    {
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "VeRA r must be at least 1.");
        Rank = rank;
        // peft's update_layer: lambda_b = ones, lambda_d = randn; reset_vera_parameters (init_weights) sets lambda_d = d_initial, lambda_b = 0.
        vera_lambda_b = new Parameter(initWeights ? torch.zeros(outFeatures) : torch.ones(outFeatures));
        vera_lambda_d = new Parameter(initWeights ? torch.full(rank, dInitial) : torch.randn(rank));
        if (dropout > 0) vera_dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>The shared projections (set by <see cref="VeraMethod"/> when the adapter is created).</summary>
    public VeraProjections Projections
    {
        get => projections ?? throw new InvalidOperationException("This VeRA branch has no shared projections yet (create it through PeftModel).");
        set
        {
            if (value.A.shape[0] != Rank || value.A.shape[1] < InFeatures || value.B.shape[0] < OutFeatures || value.B.shape[1] != Rank)
                throw new ArgumentException($"VeRA projections A [{string.Join(", ", value.A.shape)}], B [{string.Join(", ", value.B.shape)}] do not cover a {OutFeatures}x{InFeatures} layer of rank {Rank}.", nameof(value));
            projections = value;
        }
    }

    /// <summary>lambda_b [out].</summary>
    public Parameter LambdaB => vera_lambda_b;

    /// <summary>lambda_d [r].</summary>
    public Parameter LambdaD => vera_lambda_d;

    /// <summary>Trainable numbers of a VeRA layer: out + r (A and B are frozen and shared). The one VeRA count formula.</summary>
    public static long CountParameters(int inFeatures, int outFeatures, int rank) => outFeatures + rank;

    private (Tensor A, Tensor B) Sliced(Device device) =>
        (Projections.A[.., ..InFeatures].to(device), Projections.B[..OutFeatures, ..].to(device));

    public override Tensor Forward(Tensor x)
    {
        var (a, b) = Sliced(vera_lambda_d.device);
        var h = x.to(vera_lambda_d.dtype);
        if (vera_dropout is not null) h = vera_dropout.forward(h);
        return vera_lambda_b * nn.functional.linear(vera_lambda_d * nn.functional.linear(h, a), b);
    }

    // peft's get_delta_weight: (lambda_b B_s) @ (lambda_d A_s).
    public override Tensor DeltaWeight()
    {
        var (a, b) = Sliced(vera_lambda_d.device);
        return (vera_lambda_b.unsqueeze(-1) * b).matmul(vera_lambda_d.unsqueeze(-1) * a);
    }

    public override Dictionary<string, Tensor> ExportState() => new()
    {
        ["vera_lambda_b"] = vera_lambda_b.detach().cpu().contiguous(),
        ["vera_lambda_d"] = vera_lambda_d.detach().cpu().contiguous(),
    };

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        var b = Require(state, "vera_lambda_b", keyPrefix, OutFeatures);
        var d = Require(state, "vera_lambda_d", keyPrefix, Rank);
        using var _ = no_grad();
        vera_lambda_b.copy_(b.to(vera_lambda_b.dtype));
        vera_lambda_d.copy_(d.to(vera_lambda_d.dtype));
    }
}
