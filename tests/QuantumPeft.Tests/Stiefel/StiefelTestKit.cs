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
}
