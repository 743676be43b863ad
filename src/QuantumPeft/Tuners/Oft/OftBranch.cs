using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.Oft;

/// <summary>How a block's skew-symmetric Q becomes the rotation.</summary>
public enum OftRotationFormula
{
    /// <summary>Exactly (I - Q)(I + Q)^-1 (peft: torch.linalg.solve(I + Q, I - Q, left=False)).</summary>
    Cayley,

    /// <summary>peft before 0.18: I + 2 (Q + Q^2 + ... + Q^(n-1)).</summary>
    NeumannBefore018,

    /// <summary>peft 0.18: I + 2 (Q + ... + Q^(n-2)) + Q^(n-1).</summary>
    Neumann018,
}

/// <summary>OFT (Qiu et al. 2023, peft's OFTRotationModule): the input is rotated blockwise, x -> x R, before the frozen layer.</summary>
/// <remarks>File key (peft's): <c>oft_R.weight</c> [blocks (1 with block_share), b (b - 1) / 2], the upper triangles (row-major,
/// torch.triu_indices(b, b, 1)) of the skew matrices Q = U - U^T.</remarks>
public sealed class OftBranch : AdapterBranch
{
    private readonly Parameter oft_R;
    private readonly System.Runtime.CompilerServices.StrongBox<(Tensor Rows, Tensor Cols)> triangle;
    private readonly bool coft;
    private readonly double eps;

    /// <summary>Number of blocks r (in_features / block size).</summary>
    public int Blocks { get; }

    /// <summary>Block size b.</summary>
    public int BlockSize { get; }

    /// <summary>True when one block is shared by all.</summary>
    public bool BlockShare { get; }

    /// <summary>The rotation formula.</summary>
    public OftRotationFormula Formula { get; }

    /// <summary>Terms of the Cayley-Neumann series.</summary>
    public int NeumannTerms { get; }

    public override string PeftType => OftConfig.TypeName;

    public override bool IsAdditive => false;

    /// <summary>Creates the branch for <paramref name="blocks"/> blocks of <paramref name="blockSize"/> (their product must be in_features).</summary>
    public OftBranch(int inFeatures, int outFeatures, int blocks, int blockSize, OftRotationFormula formula = OftRotationFormula.Neumann018,
        int neumannTerms = 5, bool blockShare = false, bool coft = false, double eps = 6e-5, bool initIdentity = true)
        : base(nameof(OftBranch), inFeatures, outFeatures)
    {
        if (blocks < 1 || blockSize < 1 || blocks * blockSize != inFeatures)
            throw new ArgumentException($"OFT needs r x oft_block_size = in_features; got {blocks} x {blockSize} for in_features {inFeatures}.", nameof(blocks));
        Blocks = blocks;
        BlockSize = blockSize;
        BlockShare = blockShare;
        Formula = formula;
        NeumannTerms = neumannTerms;
        this.coft = coft;
        this.eps = eps;
        var tri = torch.triu_indices(blockSize, blockSize, 1);
        triangle = new((tri[0].clone(), tri[1].clone()));
        // peft's reset_oft_parameters: zeros (R = I), or N(0, 0.1) when init_weights is false.
        var n = CountElements(blockSize);
        oft_R = new Parameter(initIdentity ? torch.zeros(blockShare ? 1 : blocks, n) : torch.randn(blockShare ? 1 : blocks, n) * 0.1);
        RegisterComponents();
    }

    /// <summary>b (b - 1) / 2 numbers per block.</summary>
    public static long CountElements(int blockSize) => (long)blockSize * (blockSize - 1) / 2;

    /// <summary>Trainable numbers of an OFT layer: (1 with block_share, else r) x b (b - 1) / 2. The one OFT count formula.</summary>
    public static long CountParameters(int blocks, int blockSize, bool blockShare) => (blockShare ? 1 : blocks) * CountElements(blockSize);

    /// <summary>The stored parameters [blocks or 1, b (b - 1) / 2].</summary>
    public Parameter Weight => oft_R;

    /// <summary>peft's <c>adjust_oft_parameters</c>: the divisor of <paramref name="inFeatures"/> nearest to <paramref name="value"/> (ties to the lower).</summary>
    public static int Adjust(int inFeatures, int value)
    {
        if (value >= inFeatures) return inFeatures;
        int higher = value;
        while (higher <= inFeatures && inFeatures % higher != 0) higher++;
        int lower = value;
        while (lower > 1 && inFeatures % lower != 0) lower--;
        return value - lower <= higher - value ? lower : higher;
    }

    /// <summary>The skew-symmetric matrices Q [k, b, b] from the parameters [k, n].</summary>
    public Tensor Skew(Tensor vec)
    {
        var (rows, cols) = triangle.Value;
        var flat = (rows * BlockSize + cols).to(vec.device).unsqueeze(0).expand(vec.shape[0], -1);
        var m = torch.zeros(vec.shape[0], (long)BlockSize * BlockSize, dtype: vec.dtype, device: vec.device)
            .scatter(1, flat, vec).view(vec.shape[0], BlockSize, BlockSize);
        return m - m.transpose(-2, -1);
    }

    /// <summary>The rotation blocks [k, b, b] (k = 1 with block_share) by the branch's formula.</summary>
    public Tensor Rotations()
    {
        if (coft) Project();
        var q = Skew(oft_R);
        var k = q.shape[0];
        var eye = torch.eye(BlockSize, dtype: q.dtype, device: q.device).expand(k, BlockSize, BlockSize);
        switch (Formula)
        {
            case OftRotationFormula.Cayley:
                // X (I + Q) = I - Q; with Q skew, (I + Q)^T = I - Q, so X^T = solve(I - Q, I + Q).
                return torch.linalg.solve(eye - q, eye + q).transpose(-2, -1);
            default:
                var r = eye.clone();
                if (NeumannTerms > 1) r = r + 2 * q;
                if (NeumannTerms > 2)
                {
                    var power = q;
                    for (int t = 2; t < NeumannTerms; t++)
                    {
                        power = torch.bmm(power, q);
                        bool last = t == NeumannTerms - 1;
                        r = r + (last && Formula == OftRotationFormula.Neumann018 ? 1.0 : 2.0) * power;
                    }
                }
                return r;
        }
    }

    // peft's _project_batch (COFT): clip each block's skew matrix to Frobenius norm eps / sqrt(blocks), in place, without gradient.
    private void Project()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var q = Skew(oft_R);
        var radius = eps / Math.Sqrt(q.shape[0]);
        var norm = q.flatten(1).norm(1, keepdim: true);
        var scaled = torch.where(norm <= radius, oft_R, oft_R * (radius / norm));
        oft_R.copy_(scaled);
    }

    /// <summary>The full block-diagonal R [in, in].</summary>
    public Tensor Matrix()
    {
        var blocks = Rotations();
        var list = Enumerable.Range(0, Blocks).Select(i => blocks[BlockShare ? 0 : i]).ToArray();
        return torch.block_diag(list);
    }

    /// <summary>x -> x R blockwise (peft: einsum("...rk,rkc->...rc")).</summary>
    public Tensor Rotate(Tensor x)
    {
        var blocks = Rotations();
        if (BlockShare) blocks = blocks.expand(Blocks, BlockSize, BlockSize);
        var h = x.to(oft_R.dtype);
        var shape = h.shape;
        var rotated = torch.einsum("...rk,rkc->...rc", h.reshape([.. shape[..^1], Blocks, BlockSize]), blocks);
        return rotated.reshape(shape).to(x.dtype);
    }

    public override Tensor Compose(Tensor x, Func<Tensor, Tensor> baseForward) => baseForward(Rotate(x));

    /// <summary>The additive equivalent base(x R) - base(x) (needs the attached layer).</summary>
    public override Tensor Forward(Tensor x)
    {
        var layer = AttachedLayer ?? throw new InvalidOperationException("An OFT branch needs its base layer; add it to an AdaptedLinear first.");
        return layer.forward(Rotate(x)) - layer.forward(x);
    }

    /// <summary>W R^T - W (needs the attached layer).</summary>
    public override Tensor DeltaWeight()
    {
        var layer = AttachedLayer ?? throw new InvalidOperationException("An OFT branch needs its base layer; add it to an AdaptedLinear first.");
        var w = LinearLayers.WeightOutIn(layer).detach().to(ScalarType.Float32);
        return w.matmul(Matrix().t()) - w;
    }

    // peft's merge: W <- (R W^T)^T = W R^T; unmerge: W <- W (R^-1)^T (the inverse, since the series is only nearly orthogonal).
    public override void MergeInto(Tensor weightOutIn, Tensor? bias)
    {
        var r = Matrix().to(ScalarType.Float32).to(weightOutIn.device);
        weightOutIn.copy_(weightOutIn.to(ScalarType.Float32).matmul(r.t()).to(weightOutIn.dtype));
    }

    public override void UnmergeFrom(Tensor weightOutIn, Tensor? bias)
    {
        var inv = torch.linalg.inv(Matrix().to(ScalarType.Float32)).to(weightOutIn.device);
        weightOutIn.copy_(weightOutIn.to(ScalarType.Float32).matmul(inv.t()).to(weightOutIn.dtype));
    }

    public override Dictionary<string, Tensor> ExportState() => new() { ["oft_R.weight"] = oft_R.detach().cpu().contiguous() };

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        if (state.ContainsKey("oft_r") && !state.ContainsKey("oft_R.weight"))
            throw new InvalidDataException($"Adapter key '{keyPrefix}oft_r' is peft's OFT before 0.14, which peft itself no longer reads; retrain with a current peft.");
        var w = Require(state, "oft_R.weight", keyPrefix, oft_R.shape);
        using var _ = no_grad();
        oft_R.copy_(w.to(oft_R.dtype));
    }
}
