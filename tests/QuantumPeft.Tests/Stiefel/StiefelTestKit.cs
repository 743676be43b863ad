using QuantumPeft.Stiefel;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Stiefel;

/// <summary>Shared helpers for the Stiefel tests: parameter filling, orthonormality error, dense reference.</summary>
static class StiefelTestKit
{
    public static StiefelMapOptions Options(StiefelMapKind kind, int layers = 1, string nonPow2 = "auto") =>
        new() { Kind = kind, Layers = layers, NonPowerOfTwo = nonPow2 };

    public static long TrainableCount(nn.Module map) =>
        map.parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>Overwrites every parameter with uniform values in +-scale (deterministic).</summary>
    public static void Fill(nn.Module map, double scale, int seed)
    {
        var random = new Random(seed);
        using var _ = no_grad();
        foreach (var p in map.parameters())
        {
            var values = new double[p.numel()];
            for (int i = 0; i < values.Length; i++) values[i] = (2 * random.NextDouble() - 1) * scale;
            p.copy_(tensor(values, p.shape, p.dtype, p.device));
        }
    }

    /// <summary>A magnitude per map that makes the parameters far from zero but the skew matrix of moderate norm.</summary>
    public static double RandomScale(StiefelMapKind kind, int n, int k) => kind switch
    {
        StiefelMapKind.Pauli or StiefelMapKind.Givens => Math.PI,
        StiefelMapKind.Householder => 1.0,
        // ||A||_F about 2: E|x|^2 = scale^2 / 3 over about 2 N K entries.
        _ => 2.0 * Math.Sqrt(3.0 / (2.0 * n * k)),
    };

    /// <summary>max |U^T U - I_K| computed in float64.</summary>
    public static double OrthError(Tensor u)
    {
        using var scope = NewDisposeScope();
        var d = u.to(ScalarType.Float64);
        var g = d.t().matmul(d) - eye(u.shape[1], dtype: ScalarType.Float64);
        return g.abs().max().item<double>();
    }
}
