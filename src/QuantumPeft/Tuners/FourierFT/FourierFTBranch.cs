using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.FourierFT;

/// <summary>FourierFT (Gao et al. 2024): delta W = Re(ifft2(S)) * scaling, S sparse with n trained coefficients at seeded positions.</summary>
/// <remarks>File key (peft's): <c>fourierft_spectrum</c> [n_frequency]. The positions are not saved: peft regenerates them from
/// random_loc_seed with <c>torch.randperm</c> on a CPU generator, and so does this branch through the same LibTorch kernel.</remarks>
public sealed class FourierFTBranch : AdapterBranch
{
    private readonly Parameter fourierft_spectrum;
    // Flat positions i * in + j; held in a box so that they stay out of the state dict (peft does not save them).
    private readonly System.Runtime.CompilerServices.StrongBox<Tensor> indices;
    private readonly FFTNormType norm;

    /// <summary>Number of trained coefficients.</summary>
    public int NFrequency { get; }

    /// <summary>The scale applied to Re(ifft2(S)).</summary>
    public double Scaling { get; }

    public override string PeftType => FourierFTConfig.TypeName;

    /// <summary>Creates the branch; the spectrum is zero when <paramref name="zeroInit"/>, else standard normal (peft's default).</summary>
    public FourierFTBranch(int inFeatures, int outFeatures, int nFrequency, double scaling, long randomLocSeed,
        string ifft2Norm = "backward", bool zeroInit = false, long? seed = null)
        : base(nameof(FourierFTBranch), inFeatures, outFeatures)
    {
        // peft: n_frequency must be positive and below in * out.
        if (nFrequency < 1 || (long)nFrequency >= (long)inFeatures * outFeatures)
            throw new ArgumentOutOfRangeException(nameof(nFrequency), nFrequency,
                $"n_frequency must be at least 1 and below in * out = {(long)inFeatures * outFeatures} for a {outFeatures}x{inFeatures} layer.");
        NFrequency = nFrequency;
        Scaling = scaling;
        norm = ifft2Norm switch
        {
            "backward" => FFTNormType.Backward,
            "forward" => FFTNormType.Forward,
            "ortho" => FFTNormType.Ortho,
            _ => throw new ArgumentException($"ifft2_norm must be \"backward\", \"forward\" or \"ortho\", got \"{ifft2Norm}\".", nameof(ifft2Norm)),
        };
        indices = new(Positions(inFeatures, outFeatures, nFrequency, randomLocSeed));
        var generator = seed is { } s ? new Generator((ulong)s) : null;
        fourierft_spectrum = new Parameter(zeroInit ? torch.zeros(nFrequency) : torch.randn(nFrequency, generator: generator));
        RegisterComponents();
    }

    /// <summary>peft's <c>set_indices</c>: the first n of randperm(out * in) from a CPU generator seeded with random_loc_seed
    /// (flat row-major positions of [out, in]: row = p / in, column = p % in).</summary>
    public static Tensor Positions(int inFeatures, int outFeatures, int nFrequency, long randomLocSeed)
    {
        using var generator = new Generator((ulong)randomLocSeed);
        using var perm = torch.randperm((long)outFeatures * inFeatures, generator: generator);
        return perm[..nFrequency].clone();
    }

    /// <summary>The trained coefficients [n_frequency].</summary>
    public Parameter Spectrum => fourierft_spectrum;

    /// <summary>The flat positions [n_frequency] of the coefficients in the out x in spectrum.</summary>
    public Tensor Indices => indices.Value!;

    /// <summary>Trainable numbers of a FourierFT layer: n_frequency (independent of the layer's size).</summary>
    public static long CountParameters(int nFrequency) => nFrequency;

    public override Tensor Forward(Tensor x) => nn.functional.linear(x.to(ScalarType.Float32), DeltaWeight());

    public override Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        var dense = torch.zeros((long)OutFeatures * InFeatures, dtype: ScalarType.Float32, device: fourierft_spectrum.device)
            .scatter(0, indices.Value!.to(fourierft_spectrum.device), fourierft_spectrum.to(ScalarType.Float32))
            .view(OutFeatures, InFeatures);
        return (torch.fft.ifft2(dense, norm: norm).real * Scaling).MoveToOuterDisposeScope();
    }

    public override Dictionary<string, Tensor> ExportState() => new()
    {
        ["fourierft_spectrum"] = fourierft_spectrum.detach().cpu().contiguous(),
    };

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        var s = Require(state, "fourierft_spectrum", keyPrefix, NFrequency);
        using var _ = no_grad();
        fourierft_spectrum.copy_(s.to(fourierft_spectrum.dtype));
    }
}
