using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>
/// A product of Givens rotations in neighbouring planes applied to I[:, :K]: exact, O(N K) rotations.
/// </summary>
/// <remarks>
/// <para>Layout: U = G_0 G_1 ... G_(K-1) I[:, :K] with G_j = R(j; t_(j,j)) R(j+1; t_(j,j+1)) ... R(N-2; t_(j,N-2)),
/// R(i; t) the rotation by t in rows (i, i+1): [x_i; x_(i+1)] -&gt; [[cos t, -sin t], [sin t, cos t]] [x_i; x_(i+1)].
/// Parameter "theta" holds t_(j,i) sweep by sweep (j = 0..K-1, i = j..N-2): N K - K (K + 1) / 2 angles,
/// the dimension of the Stiefel manifold. All-zero angles give I[:, :K].</para>
/// <para>The rotations are inherently sequential; rotations on disjoint rows commute, so they are applied in
/// the wavefront order of parallel Givens QR: rotation (j, i) at step (N-2-i) + 2(K-1-j), each step a
/// vectorised rotation of up to K disjoint row pairs: about N + 2K steps.</para>
/// </remarks>
public sealed class GivensMap : StiefelMap
{
    readonly TorchSharp.Modules.Parameter theta;
    readonly (int FirstRow, int Pairs)[] waves;
    readonly DeviceCache order;

    /// <summary>N K - K (K + 1) / 2: sweep j has N - 1 - j rotations.</summary>
    public static long CountParameters(int n, int k) => (long)n * k - (long)k * (k + 1) / 2;

    internal GivensMap(int n, int k, StiefelInit init) : base("givens", n, k)
    {
        theta = init.Vector(CountParameters(n, k));
        register_parameter("theta", theta);
        var offset = new long[k];
        for (int j = 1; j < k; j++) offset[j] = offset[j - 1] + (n - j);
        var waveList = new List<(int, int)>();
        var angleOrder = new List<long>();
        int steps = (n - 2) + 2 * (k - 1) + 1;
        for (int t = 0; t < steps; t++)
        {
            // At step t, sweep j rotates rows (i, i+1) with i = N-2-t+2(K-1-j); listing j downward gives rising rows.
            int first = -1, pairs = 0;
            for (int j = k - 1; j >= 0; j--)
            {
                int i = n - 2 - t + 2 * (k - 1 - j);
                if (i < j || i > n - 2) continue;
                if (first < 0) first = i;
                pairs++;
                angleOrder.Add(offset[j] + (i - j));
            }
            if (pairs > 0) waveList.Add((first, pairs));
        }
        waves = waveList.ToArray();
        var idx = angleOrder.ToArray();
        order = new DeviceCache((device, _) => tensor(idx, new long[] { idx.Length }, ScalarType.Int64, device));
    }

    /// <inheritdoc/>
    public override string Kind => "givens";

    /// <inheritdoc/>
    public override long ParameterCount => CountParameters(N, K);

    /// <inheritdoc/>
    public override Tensor Compute()
    {
        var angles = theta.index_select(0, order.Get(theta.device, ScalarType.Int64));
        var cos = angles.cos();
        var sin = angles.sin();
        var rows = eye(N, K, dtype: theta.dtype, device: theta.device).unbind(0);
        long used = 0;
        foreach (var (first, pairs) in waves)
        {
            var window = stack(rows.Skip(first).Take(2 * pairs)).view(pairs, 2, K);
            var x = window.select(1, 0);
            var y = window.select(1, 1);
            var c = cos.narrow(0, used, pairs).unsqueeze(1);
            var s = sin.narrow(0, used, pairs).unsqueeze(1);
            used += pairs;
            var rotated = stack(new[] { c * x - s * y, s * x + c * y }, 1).view(2 * pairs, K).unbind(0);
            for (int r = 0; r < rotated.Length; r++) rows[first + r] = rotated[r];
        }
        return stack(rows);
    }
}
