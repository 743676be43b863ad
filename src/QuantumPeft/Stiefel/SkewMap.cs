using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>
/// Base of the maps that start from the skew matrix A = [[B, -C^T], [C, 0]] (B skew K x K, C (N-K) x K):
/// Taylor, matrix exponential and Cayley. Parameters: "b" (the K(K-1)/2 entries of B below its diagonal,
/// row by row) and "c" (C row-major): N K - K (K + 1) / 2 in all.
/// </summary>
public abstract class SkewMap : StiefelMap
{
    readonly TorchSharp.Modules.Parameter b;
    readonly TorchSharp.Modules.Parameter c;
    readonly DeviceCache lowerIndex;

    /// <summary>N K - K (K + 1) / 2 = K (K - 1) / 2 (B) + (N - K) K (C).</summary>
    public static long CountParameters(int n, int k) => (long)n * k - (long)k * (k + 1) / 2;

    private protected SkewMap(string name, int n, int k, StiefelInit init) : base(name, n, k)
    {
        b = init.Vector((long)k * (k - 1) / 2);
        c = init.Vector((long)(n - k) * k);
        register_parameter("b", b);
        register_parameter("c", c);
        var flat = new List<long>();
        for (int i = 0; i < k; i++) for (int j = 0; j < i; j++) flat.Add(i * k + j);
        var idx = flat.ToArray();
        lowerIndex = new DeviceCache((device, _) => tensor(idx, new long[] { idx.Length }, ScalarType.Int64, device));
    }

    /// <inheritdoc/>
    public override long ParameterCount => CountParameters(N, K);

    /// <summary>The skew K x K block B.</summary>
    protected Tensor SkewB()
    {
        var lower = zeros(K * K, dtype: b.dtype, device: b.device)
            .scatter(0, lowerIndex.Get(b.device, ScalarType.Int64), b).view(K, K);
        return lower - lower.t();
    }

    /// <summary>The (N-K) x K block C.</summary>
    protected Tensor BlockC() => c.view(N - K, K);

    /// <summary>The dense N x N skew matrix A (for the O(N^3) maps).</summary>
    protected Tensor DenseA()
    {
        var bm = SkewB();
        var cm = BlockC();
        var upper = cat(new[] { bm, -cm.t() }, 1);
        var lower = cat(new[] { cm, zeros(N - K, N - K, dtype: b.dtype, device: b.device) }, 1);
        return cat(new[] { upper, lower }, 0);
    }
}

/// <summary>exp(A) I[:, :K] by torch.linalg.matrix_exp of the dense N x N skew matrix: exact, O(N^3).</summary>
public sealed class MatrixExpMap : SkewMap
{
    internal MatrixExpMap(int n, int k, StiefelInit init) : base("matrix_exp", n, k, init) { }

    /// <inheritdoc/>
    public override string Kind => "matrix_exp";

    /// <inheritdoc/>
    public override Tensor Compute() => linalg.matrix_exp(DenseA()).narrow(1, 0, K);
}

/// <summary>The Cayley transform (I - A/2)^-1 (I + A/2) I[:, :K] by one dense solve: exact, O(N^3).</summary>
public sealed class CayleyMap : SkewMap
{
    internal CayleyMap(int n, int k, StiefelInit init) : base("cayley", n, k, init) { }

    /// <inheritdoc/>
    public override string Kind => "cayley";

    /// <inheritdoc/>
    public override Tensor Compute()
    {
        var a = DenseA() * 0.5;
        var identity = eye(N, dtype: a.dtype, device: a.device);
        // Only the first K columns of (I + A/2) are needed on the right-hand side.
        return linalg.solve(identity - a, (identity + a).narrow(1, 0, K));
    }
}
