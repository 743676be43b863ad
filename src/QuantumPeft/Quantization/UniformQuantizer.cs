using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Quantization;

/// <summary>Integer codes and the scale that turns them back into values: value = code * scale.</summary>
public sealed record QuantizedTensor(Tensor Codes, double Scale, int Bits)
{
    /// <summary>code * scale in float32.</summary>
    public Tensor Dequantize() => Codes.to(ScalarType.Float32) * torch.tensor((float)Scale, device: Codes.device);
}

/// <summary>b-bit uniform quantizers: periodic (angles, over a 4 pi period) and symmetric (lambda, other map parameters).</summary>
public static class UniformQuantizer
{
    /// <summary>The period over which angles are quantized: RY(t + 4 pi) = RY(t), while RY(t + 2 pi) = -RY(t).</summary>
    public const double AnglePeriod = 4 * Math.PI;

    /// <summary>The smallest integer type that holds signed b-bit codes.</summary>
    public static ScalarType CodeType(int bits) => bits <= 8 ? ScalarType.Int8 : bits <= 16 ? ScalarType.Int16 : ScalarType.Int32;

    /// <summary>Angles to codes in [-2^(b-1), 2^(b-1)), step 4 pi / 2^b, after wrapping into [-2 pi, 2 pi).</summary>
    public static QuantizedTensor QuantizeAngles(Tensor angles, int bits)
    {
        if (bits is < 1 or > 16) throw new ArgumentOutOfRangeException(nameof(bits), bits, "Angle bits must be in 1..16.");
        using var _ = no_grad();
        var levels = 1L << bits;
        var step = AnglePeriod / levels;
        var t = angles.detach().to(ScalarType.Float64);
        var idx = (t / step).round();                               // grid index, unbounded
        var wrapped = torch.remainder(idx + levels / 2, levels) - levels / 2; // same angle modulo 4 pi
        return new QuantizedTensor(wrapped.to(CodeType(bits)), (float)step, bits);
    }

    /// <summary>Symmetric per-tensor quantization: scale = max |x| / (2^(b-1) - 1), codes clamped to +-(2^(b-1) - 1).</summary>
    public static QuantizedTensor QuantizeSymmetric(Tensor x, int bits, double? scale = null)
    {
        if (bits is < 2 or > 16) throw new ArgumentOutOfRangeException(nameof(bits), bits, "Symmetric quantization needs 2..16 bits.");
        using var _ = no_grad();
        var qmax = (1L << (bits - 1)) - 1;
        var t = x.detach().to(ScalarType.Float64);
        var s = scale ?? t.abs().max().item<double>() / qmax;
        if (!(s > 0) || double.IsInfinity(s)) s = 1.0; // all zeros: any scale reproduces them
        s = (float)s; // the file stores the scale in float32; quantize with exactly that value
        var codes = (t / s).round().clamp(-qmax, qmax);
        return new QuantizedTensor(codes.to(CodeType(bits)), s, bits);
    }

    /// <summary>Quantize-dequantize with a straight-through estimator: forward sees the grid value, gradients pass unchanged.</summary>
    public static Tensor FakeQuantizeAngles(Tensor angles, int bits)
    {
        var q = QuantizeAngles(angles, bits).Dequantize().to(angles.dtype).to(angles.device);
        return angles + (q - angles).detach();
    }

    /// <summary>Symmetric quantize-dequantize with a straight-through estimator.</summary>
    public static Tensor FakeQuantizeSymmetric(Tensor x, int bits)
    {
        var q = QuantizeSymmetric(x, bits).Dequantize().to(x.dtype).to(x.device);
        return x + (q - x).detach();
    }
}
