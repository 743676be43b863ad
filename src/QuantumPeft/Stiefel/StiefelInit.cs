using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>Deterministic initial values for a map's parameters ("uniform" in +-InitScale, "zeros", or "period": [-2 pi, 2 pi)).</summary>
internal sealed class StiefelInit
{
    /// <summary>Half-width of "period": every angle gate of the library repeats after 4 pi (half-angle rotations) or 2 pi.</summary>
    /// <remarks>Uniform over [-2 pi, 2 pi) is uniform over one period of a half-angle gate and over two of a full-angle one
    /// (Givens, the block split's phi), so it is uniform modulo either period: no angle starts in a preferred place.</remarks>
    public const double PeriodHalfWidth = 2 * Math.PI;

    readonly bool zeros;
    readonly double scale;
    readonly Random random;

    public StiefelInit(StiefelMapOptions options, long? seed)
    {
        zeros = options.Init == "zeros";
        scale = options.Init == "period" ? PeriodHalfWidth : options.InitScale;
        // System.Random, not torch's generator, so that a seed gives the same numbers on every device and build.
        random = seed is { } s ? new Random(unchecked((int)(s ^ (s >> 32)))) : new Random();
    }

    /// <summary>A fresh float32 CPU parameter vector of the given length.</summary>
    public TorchSharp.Modules.Parameter Vector(long count)
    {
        var values = new float[count];
        if (!zeros)
            for (long i = 0; i < count; i++) values[i] = (float)((2 * random.NextDouble() - 1) * scale);
        return new TorchSharp.Modules.Parameter(tensor(values, new long[] { count }, ScalarType.Float32), requires_grad: true);
    }
}

/// <summary>Constant tensors built once per device and dtype, outside any dispose scope.</summary>
internal sealed class DeviceCache(Func<Device, ScalarType, Tensor> build)
{
    readonly Dictionary<(DeviceType, int, ScalarType), Tensor> cache = new();

    public Tensor Get(Device device, ScalarType dtype)
    {
        var key = (device.type, device.index, dtype);
        lock (cache)
        {
            if (!cache.TryGetValue(key, out var t))
            {
                t = build(device, dtype).DetachFromDisposeScope();
                cache[key] = t;
            }
            return t;
        }
    }
}
