using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>
/// The cosine-sine block split for N that is not a power of two: N = N1 + N2 with N1 the largest power of
/// two below N, U = [cos(phi) U1 ; sin(phi) U2] column by column, U1 a qubit circuit, U2 a Pauli map of N2
/// (itself a qudit circuit or a further split).
/// </summary>
/// <remarks>
/// <para>With a = min(K, N1) columns from U1 and b = min(K, N2) from U2, m = a + b - K &gt;= 1 columns mix:
/// column j &lt; m is [cos(phi_j) U1_j ; sin(phi_j) U2_j], columns m..a-1 are [U1_j ; 0], columns a..K-1
/// are [0 ; U2_(j-a+m)]. Orthonormality is exact: two mixed columns have inner product
/// cos_i cos_j &lt;U1_i, U1_j&gt; + sin_i sin_j &lt;U2_i, U2_j&gt; = delta_ij (cos^2 + sin^2) = delta_ij, and a
/// mixed column meets a pure one only in one block, where U1 (or U2) columns are orthonormal; the two kinds
/// of pure columns have disjoint supports. When N2 = 1, U2 = [1] with no parameters.</para>
/// <para>Parameters: count(U1) + count(U2) + m; state names top.theta, bottom.*, phi.</para>
/// </remarks>
public sealed class BlockSplitMap : StiefelMap
{
    readonly StiefelMap top;
    readonly StiefelMap? bottom;
    readonly TorchSharp.Modules.Parameter phi;
    readonly int n1, n2, a, b, m;

    /// <inheritdoc/>
    public override string Kind => "pauli";

    /// <inheritdoc/>
    public override long ParameterCount => top.ParameterCount + (bottom?.ParameterCount ?? 0) + m;

    internal BlockSplitMap(int n, int k, StiefelMapOptions options, StiefelInit init) : base("block_split", n, k)
    {
        (n1, n2, a, b, m) = Split(n, k);
        top = PauliMaps.Create(n1, a, options, init);
        bottom = n2 >= 2 ? PauliMaps.Create(n2, b, options, init) : null;
        phi = init.Vector(m);
        register_module("top", top);
        if (bottom is not null) register_module("bottom", bottom);
        register_parameter("phi", phi);
    }

    /// <summary>The block sizes and column split: N1 (largest power of two &lt; N), N2 = N - N1, a, b, m.</summary>
    public static (int N1, int N2, int A, int B, int M) Split(int n, int k)
    {
        int n1 = 1;
        while (n1 * 2 < n) n1 *= 2;
        int n2 = n - n1;
        int a = Math.Min(k, n1), b = Math.Min(k, n2);
        return (n1, n2, a, b, a + b - k);
    }

    /// <summary>count(U1: N1 x a) + count(U2: N2 x b, 0 when N2 = 1) + m mixing angles.</summary>
    public static long CountParameters(int n, int k, StiefelMapOptions options)
    {
        var (n1, n2, a, b, m) = Split(n, k);
        return PauliMaps.CountParameters(n1, a, options) + (n2 >= 2 ? PauliMaps.CountParameters(n2, b, options) : 0) + m;
    }

    /// <inheritdoc/>
    public override Tensor Compute()
    {
        var u1 = top.Compute();
        var u2 = bottom?.Compute() ?? ones(1, 1, dtype: phi.dtype, device: phi.device);
        var c = phi.cos();
        var s = phi.sin();
        var upper = new List<Tensor> { u1.narrow(1, 0, m) * c };
        var lower = new List<Tensor> { u2.narrow(1, 0, m) * s };
        if (a > m)
        {
            upper.Add(u1.narrow(1, m, a - m));
            lower.Add(zeros(n2, a - m, dtype: phi.dtype, device: phi.device));
        }
        if (b > m)
        {
            upper.Add(zeros(n1, b - m, dtype: phi.dtype, device: phi.device));
            lower.Add(u2.narrow(1, m, b - m));
        }
        return cat(new[] { cat(upper, 1), cat(lower, 1) }, 0);
    }
}
