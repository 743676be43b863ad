using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.LoKr;

/// <summary>LoKr (LyCORIS): delta W = kron(w1, w2) * alpha / r, each factor full or a rank-r product.</summary>
/// <remarks>File keys (peft's): <c>lokr_w1</c> [out_l, in_m] or <c>lokr_w1_a</c> [out_l, r] + <c>lokr_w1_b</c> [r, in_m];
/// <c>lokr_w2</c> [out_k, in_n] or <c>lokr_w2_a</c> [out_k, r] + <c>lokr_w2_b</c> [r, in_n].
/// On a Conv2d (peft's LoKr Conv2d with use_effective_conv2d = false) the channels are factorised, in = in_m in_n, and the kernel
/// goes into w2: <c>lokr_w2</c> [out_k, in_n, kh, kw] or <c>lokr_w2_b</c> [r, in_n * kh * kw]; peft's kron(w1[:, :, None, None], w2)
/// is kron(w1, w2 as [out_k, in_n * kh * kw]) on the kernel seen as [out, in * kh * kw], and forward convolves with it.</remarks>
public sealed class LoKrBranch : AdapterBranch
{
    private readonly Parameter? lokr_w1;
    private readonly Parameter? lokr_w1_a;
    private readonly Parameter? lokr_w1_b;
    private readonly Parameter? lokr_w2;
    private readonly Parameter? lokr_w2_a;
    private readonly Parameter? lokr_w2_b;
    private readonly double rankDropout, moduleDropout;
    private readonly bool rankDropoutScale;

    /// <summary>Rank r.</summary>
    public int Rank { get; }

    /// <summary>alpha / r.</summary>
    public double Scaling { get; }

    /// <summary>The factor shapes ((out_l, out_k), (in_m, in_n)), out = out_l out_k, in = in_m in_n.</summary>
    public ((int L, int K) Out, (int M, int N) In) Shape { get; }

    /// <summary>True when w1 is a full matrix, false when it is w1_a w1_b.</summary>
    public bool FullW1 { get; }

    /// <summary>True when w2 is a full matrix, false when it is w2_a w2_b.</summary>
    public bool FullW2 { get; }

    public override string PeftType => LoKrConfig.TypeName;

    /// <summary>Creates the branch; <paramref name="init"/> is "default" (w1 = 0), "lycoris" (w2 = 0) or "random".</summary>
    public LoKrBranch(int inFeatures, int outFeatures, int rank, double alpha, bool decomposeBoth = false, int decomposeFactor = -1,
        string init = "default", double rankDropout = 0, double moduleDropout = 0, bool rankDropoutScale = false)
        : this(inFeatures, outFeatures, null, rank, alpha, decomposeBoth, decomposeFactor, init, rankDropout, moduleDropout, rankDropoutScale) { }

    /// <summary>The branch for a Conv2d of geometry <paramref name="conv"/> (its channels factorised, its kernel in w2).</summary>
    public LoKrBranch(Conv2dShape conv, int rank, double alpha, bool decomposeBoth = false, int decomposeFactor = -1,
        string init = "default", double rankDropout = 0, double moduleDropout = 0, bool rankDropoutScale = false)
        : this(conv.MatrixIn, conv.OutChannels, conv, rank, alpha, decomposeBoth, decomposeFactor, init, rankDropout, moduleDropout, rankDropoutScale) { }

    private LoKrBranch(int inFeatures, int outFeatures, Conv2dShape? conv, int rank, double alpha, bool decomposeBoth, int decomposeFactor,
        string init, double rankDropout, double moduleDropout, bool rankDropoutScale)
        : base(nameof(LoKrBranch), inFeatures, outFeatures, conv)
    {
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "LoKr r must be at least 1.");
        Rank = rank;
        Scaling = alpha / rank;
        this.rankDropout = rankDropout;
        this.moduleDropout = moduleDropout;
        this.rankDropoutScale = rankDropoutScale;
        Shape = (Factorization(outFeatures, decomposeFactor), Factorization(conv?.InChannels ?? inFeatures, decomposeFactor));
        (FullW1, FullW2) = UsesFullFactors(Shape, rank, decomposeBoth);
        var ((l, k), (m, n)) = Shape;
        int area = conv is null ? 1 : conv.KernelH * conv.KernelW;
        if (FullW1) lokr_w1 = new Parameter(torch.empty(l, m));
        else { lokr_w1_a = new Parameter(torch.empty(l, rank)); lokr_w1_b = new Parameter(torch.empty(rank, m)); }
        if (FullW2) lokr_w2 = new Parameter(conv is null ? torch.empty(k, n) : torch.empty(k, n, conv.KernelH, conv.KernelW));
        else { lokr_w2_a = new Parameter(torch.empty(k, rank)); lokr_w2_b = new Parameter(torch.empty(rank, (long)n * area)); }
        RegisterComponents();
        using (no_grad())
        {
            // peft's reset_adapter_parameters (default), _lycoris_way and _random: kaiming_uniform(a = sqrt(5)) = U(+-1/sqrt(fan_in)).
            foreach (var p in parameters()) Kaiming(p);
            switch (init)
            {
                case "default": (lokr_w1 ?? lokr_w1_a)!.zero_(); break;
                case "lycoris": (lokr_w2 ?? lokr_w2_b)!.zero_(); break;
                case "random": break;
                default: throw new ArgumentException($"init must be default, lycoris or random, got \"{init}\".", nameof(init));
            }
        }
    }

    private static void Kaiming(Tensor p)
    {
        var bound = 1.0 / Math.Sqrt(p.numel() / p.shape[0]); // fan_in: every dimension but the first
        p.uniform_(-bound, bound);
    }

    /// <summary>peft's (LyCORIS's) <c>factorization(dimension, factor)</c>: two numbers m &lt;= n with m n = dimension, m as close to the
    /// square root as allowed (at most <paramref name="factor"/> when it is positive); a positive factor that divides is taken as is.</summary>
    public static (int, int) Factorization(int dimension, int factor = -1)
    {
        if (factor > 0 && dimension % factor == 0) return (factor, dimension / factor);
        if (factor == -1) factor = dimension;
        int m = 1, n = dimension, length = m + n;
        while (m < n)
        {
            int newM = m + 1;
            while (dimension % newM != 0) newM++;
            int newN = dimension / newM;
            if (newM + newN > length || newM > factor) break;
            (m, n) = (newM, newN);
        }
        return m > n ? (n, m) : (m, n);
    }

    // peft's update_layer for Linear: use_w1 = not (decompose_both and r < max(out_l, in_m) / 2); use_w2 = not (r < max(out_k, in_n) / 2).
    private static (bool, bool) UsesFullFactors(((int L, int K) Out, (int M, int N) In) s, int r, bool decomposeBoth) =>
        (!(decomposeBoth && r < Math.Max(s.Out.L, s.In.M) / 2.0), !(r < Math.Max(s.Out.K, s.In.N) / 2.0));

    /// <summary>Trainable numbers of a LoKr layer of <paramref name="inFeatures"/> -> <paramref name="outFeatures"/>: w1 (full l m or r (l + m))
    /// plus w2 (full k n or r (k + n)). The one LoKr count formula.</summary>
    public static long CountParameters(int inFeatures, int outFeatures, int rank, bool decomposeBoth = false, int decomposeFactor = -1)
    {
        var s = (Factorization(outFeatures, decomposeFactor), Factorization(inFeatures, decomposeFactor));
        var (w1, w2) = UsesFullFactors(s, rank, decomposeBoth);
        var ((l, k), (m, n)) = s;
        return (w1 ? (long)l * m : (long)rank * (l + m)) + (w2 ? (long)k * n : (long)rank * (k + n));
    }

    /// <summary>The left factor w1 [out_l, in_m].</summary>
    public Tensor W1() => lokr_w1 is not null ? lokr_w1 : lokr_w1_a!.matmul(lokr_w1_b!);

    /// <summary>Trainable numbers of a LoKr layer on a Conv2d: w1 as for a Linear on the channels, w2 full k n kh kw or r (k + n kh kw).</summary>
    public static long CountParameters(Conv2dShape conv, int rank, bool decomposeBoth = false, int decomposeFactor = -1)
    {
        var s = (Factorization(conv.OutChannels, decomposeFactor), Factorization(conv.InChannels, decomposeFactor));
        var (w1, w2) = UsesFullFactors(s, rank, decomposeBoth);
        var ((l, k), (m, n)) = s;
        long area = conv.KernelH * conv.KernelW;
        return (w1 ? (long)l * m : (long)rank * (l + m)) + (w2 ? k * n * area : rank * (k + n * area));
    }

    /// <summary>The right factor w2 [out_k, in_n] ([out_k, in_n * kh * kw] on a Conv2d).</summary>
    public Tensor W2() => lokr_w2 is not null ? lokr_w2.flatten(1) : lokr_w2_a!.matmul(lokr_w2_b!);

    public override Tensor DeltaWeight() => torch.kron(W1(), W2().contiguous()) * Scaling;

    public override Tensor Forward(Tensor x)
    {
        // peft: in training the whole adapter is skipped with probability module_dropout, and rows of the update with rank_dropout.
        if (training && moduleDropout > 0 && torch.rand(1).item<float>() <= moduleDropout)
        {
            if (Conv is { } c0) using (no_grad()) return c0.Apply(x.to(ScalarType.Float32), torch.zeros(OutFeatures, c0.InChannels, c0.KernelH, c0.KernelW, device: x.device));
            return torch.zeros([.. x.shape[..^1], OutFeatures], dtype: ScalarType.Float32, device: x.device);
        }
        var w = DeltaWeight();
        if (training && rankDropout > 0)
        {
            var drop = (torch.rand(w.shape[0], device: w.device) > rankDropout).to(w.dtype);
            if (rankDropoutScale) drop = drop / drop.mean();
            w = w * drop.unsqueeze(1);
        }
        if (Conv is { } c) return c.Apply(x.to(w.dtype), w.view(OutFeatures, c.InChannels, c.KernelH, c.KernelW));
        return nn.functional.linear(x.to(w.dtype), w);
    }

    private IEnumerable<(string Key, Parameter P)> Stored() =>
        new (string, Parameter?)[] { ("lokr_w1", lokr_w1), ("lokr_w1_a", lokr_w1_a), ("lokr_w1_b", lokr_w1_b), ("lokr_w2", lokr_w2), ("lokr_w2_a", lokr_w2_a), ("lokr_w2_b", lokr_w2_b) }
            .Where(p => p.Item2 is not null).Select(p => (p.Item1, p.Item2!));

    public override Dictionary<string, Tensor> ExportState() => Stored().ToDictionary(p => p.Key, p => p.P.detach().cpu().contiguous());

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        foreach (var (key, p) in Stored())
        {
            if (!state.ContainsKey(key))
            {
                var other = state.Keys.FirstOrDefault(k => k.StartsWith(key[..7], StringComparison.Ordinal));
                throw new InvalidDataException($"Adapter key '{keyPrefix}{key}' is missing from the file" + (other is null ? "." :
                    $" (it has '{keyPrefix}{other}': was it written with another r, decompose_both or decompose_factor?)."));
            }
            var t = Require(state, key, keyPrefix, p.shape);
            using var _ = no_grad();
            p.copy_(t.to(p.dtype));
        }
    }
}
