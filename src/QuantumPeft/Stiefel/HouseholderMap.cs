using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>
/// Product of K Householder reflectors, H_0 H_1 ... H_(K-1) I[:, :K], by torch.linalg.householder_product:
/// exact, O(N K^2).
/// </summary>
/// <remarks>
/// Reflector j is v_j = e_j + w_j with w_j free below row j (LAPACK's unit-diagonal convention) and
/// tau_j = 2 / ||v_j||^2, so each H_j = I - tau_j v_j v_j^T is an exact reflection. Parameter "w" holds the
/// strictly-lower N x K entries reflector by reflector (column j: rows j+1..N-1): N K - K (K + 1) / 2.
/// All-zero parameters give -I[:, :K].
/// </remarks>
public sealed class HouseholderMap : StiefelMap
{
    readonly TorchSharp.Modules.Parameter w;
    readonly DeviceCache index;

    /// <summary>N K - K (K + 1) / 2: column j of the reflector matrix has N - 1 - j free entries.</summary>
    public static long CountParameters(int n, int k) => (long)n * k - (long)k * (k + 1) / 2;

    internal HouseholderMap(int n, int k, StiefelInit init) : base("householder", n, k)
    {
        w = init.Vector(CountParameters(n, k));
        register_parameter("w", w);
        var flat = new long[CountParameters(n, k)];
        long t = 0;
        for (int j = 0; j < k; j++) for (int i = j + 1; i < n; i++) flat[t++] = (long)i * k + j;
        index = new DeviceCache((device, _) => tensor(flat, new long[] { flat.Length }, ScalarType.Int64, device));
    }

    /// <inheritdoc/>
    public override string Kind => "householder";

    /// <inheritdoc/>
    public override long ParameterCount => CountParameters(N, K);

    /// <inheritdoc/>
    public override Tensor Compute()
    {
        var v = zeros((long)N * K, dtype: w.dtype, device: w.device).scatter(0, index.Get(w.device, ScalarType.Int64), w).view(N, K);
        var tau = 2.0 / (v.square().sum(dim: 0) + 1.0);
        return linalg.householder_product(v, tau);
    }
}
