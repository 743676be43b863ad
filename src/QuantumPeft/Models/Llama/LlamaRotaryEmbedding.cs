using static TorchSharp.torch;

namespace QuantumPeft.Models.Llama;

/// <summary>Rotary position embeddings as transformers computes them: inverse frequencies from rope_theta and the head size,
/// scaled by rope_scaling, and the rotate_half convention (dimension i pairs with i + head_dim / 2, not with i + 1).</summary>
/// <remarks>
/// Not a module: transformers keeps inv_freq as a non-persistent buffer, so it is in no checkpoint and never changes dtype;
/// here it is a float32 constant made into a tensor on the device of each call.
/// </remarks>
public sealed class LlamaRotaryEmbedding
{
    private readonly float[] inverseFrequencies;

    /// <summary>The rotary tables of <paramref name="config"/>.</summary>
    public LlamaRotaryEmbedding(LlamaConfig config) => inverseFrequencies = InverseFrequencies(config);

    /// <summary>inv_freq [head_dim / 2], float32, as transformers' ROPE_INIT_FUNCTIONS compute it for the config's rope type.</summary>
    public static float[] InverseFrequencies(LlamaConfig config)
    {
        using var scope = NewDisposeScope();
        int dim = config.HeadSize;
        // 1 / base^(2i / dim), in float32 as transformers does it (int64 arange cast to float).
        var exponent = arange(0, dim, 2, dtype: ScalarType.Int64).to(ScalarType.Float32) / dim;
        var invFreq = full(exponent.shape, config.RopeBase, dtype: ScalarType.Float32).pow(exponent).reciprocal();
        var rope = config.Rope;
        switch (rope?.Kind ?? "default")
        {
            case "default":
                break;
            case "linear":
                invFreq = invFreq / rope!.Factor!.Value;
                break;
            case "llama3":
                invFreq = Llama3(invFreq, rope!);
                break;
            default:
                throw new NotSupportedException(
                    $"rope_scaling type '{rope!.Kind}' is not supported (supported: {string.Join(", ", LlamaConfig.SupportedRopeTypes)}).");
        }
        return invFreq.data<float>().ToArray();
    }

    // Llama 3.1: wavelengths shorter than original / high_freq_factor keep their frequency, longer than original /
    // low_freq_factor are divided by factor, and the band between interpolates smoothly between the two.
    static Tensor Llama3(Tensor invFreq, RopeScalingConfig rope)
    {
        double factor = rope.Factor!.Value, low = rope.LowFreqFactor!.Value, high = rope.HighFreqFactor!.Value;
        double original = rope.OriginalMaxPositionEmbeddings!.Value;
        double lowFreqWavelength = original / low, highFreqWavelength = original / high;
        var wavelength = 2 * Math.PI / invFreq;
        var scaled = where(wavelength.gt(lowFreqWavelength), invFreq / factor, invFreq);
        var smooth = (original / wavelength - low) / (high - low);
        var smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
        var medium = wavelength.lt(highFreqWavelength).logical_not().logical_and(wavelength.gt(lowFreqWavelength).logical_not());
        return where(medium, smoothed, scaled);
    }

    /// <summary>The inverse frequencies in use.</summary>
    public IReadOnlyList<float> InvFreq => inverseFrequencies;

    /// <summary>cos and sin [B or 1, T, head_dim] for positions [B or 1, T], computed in float32 and returned in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Tables(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var invFreq = tensor(inverseFrequencies, dtype: ScalarType.Float32, device: positionIds.device);
        var freqs = positionIds.to(ScalarType.Float32).unsqueeze(-1) * invFreq;    // [B, T, D/2]
        var emb = cat([freqs, freqs], -1);
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>x * cos + rotate_half(x) * sin for x [B, heads, T, head_dim] and tables [B, T, head_dim].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
    }
}
