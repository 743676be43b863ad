using QuantumPeft.Stiefel;
using TorchSharp;
using static TorchSharp.torch;
using static QuantumPeft.Tests.Stiefel.StiefelTestKit;
using static QuantumPeft.Stiefel.StiefelBenchmark;

namespace QuantumPeft.Tests.Stiefel;

/// <summary>The fast block evaluation of the circuit against a dense Kronecker-product construction.</summary>
public class PauliOracleTests
{
    /// <summary>
    /// The spec's circuit built densely: every rotation layer is the N x N Kronecker product of the qudits'
    /// generalised RY matrices (most significant qudit leftmost), every CZ layer a diagonal; Q = product, first K columns.
    /// "s2d" follows PennyLane's decomposition gate by gate: per pair, its own CZ, then the RY of each of its qudits.
    /// With <paramref name="fullRotations"/>, a qudit of d &gt; 2 levels gets the product of Givens rotations over
    /// <see cref="PauliCircuitMap.GivensRounds"/> taken one pair at a time.
    /// </summary>
    internal static Tensor Dense(int[] dims, int layers, string gateOrder, string entangler, double[] theta, int k, bool fullRotations = false)
    {
        int n = dims.Length;
        long rows = dims.Aggregate(1L, (a, d) => a * d);
        var q = eye(rows, dtype: ScalarType.Float64);
        int pos = 0;

        void Rotate(int first, int count)
        {
            var mats = new Tensor[n];
            for (int p = 0; p < n; p++) mats[p] = eye(dims[p], dtype: ScalarType.Float64);
            for (int p = first; p < first + count; p++)
            {
                int angles = fullRotations ? dims[p] * (dims[p] - 1) / 2 : dims[p] - 1;
                mats[p] = fullRotations && dims[p] > 2
                    ? FullRotation(dims[p], theta.AsSpan(pos, angles))
                    : GeneralizedRy(dims[p], theta.AsSpan(pos, angles));
                pos += angles;
            }
            var full = mats[n - 1];
            for (int p = n - 2; p >= 0; p--) full = kron(full, mats[p]);
            q = full.matmul(q);
        }

        // CZ on the pairs (a, a+1) for the given first qudits a.
        void CzPairs(IEnumerable<int> firsts)
        {
            if (entangler != "cz") return;
            var pairs = firsts.ToList();
            var signs = new double[rows];
            for (long i = 0; i < rows; i++)
            {
                var digits = new int[n];
                long r = i;
                for (int p = 0; p < n; p++) { digits[p] = (int)(r % dims[p]); r /= dims[p]; }
                double sign = 1;
                foreach (var a in pairs)
                    if (digits[a] == dims[a] - 1 && digits[a + 1] == dims[a + 1] - 1) sign = -sign;
                signs[i] = sign;
            }
            q = diag(tensor(signs)).matmul(q);
        }
        void Cz(int start) => CzPairs(Enumerable.Range(0, n).Where(a => a >= start && (a - start) % 2 == 0 && a + 1 < n));

        Rotate(0, n);
        for (int l = 0; l < layers; l++)
        {
            if (gateOrder == "full") { Rotate(0, n); Cz(0); Cz(1); }
            else if (gateOrder == "s2d")
            {
                for (int a = 0; a + 1 < n; a += 2) { CzPairs([a]); Rotate(a, 1); Rotate(a + 1, 1); }
                for (int a = 1; a + 1 < n; a += 2) { CzPairs([a]); Rotate(a, 1); Rotate(a + 1, 1); }
            }
            else if (n > 1) { Rotate(0, n - 1); Cz(0); Rotate(1, n - 1); Cz(1); }
        }
        Assert.Equal(theta.Length, pos);
        return q.narrow(1, 0, k);
    }

    /// <summary>G_last ... G_first over the level pairs of <see cref="PauliCircuitMap.GivensRounds"/>, each a rotation by t / 2.</summary>
    static Tensor FullRotation(int d, ReadOnlySpan<double> t)
    {
        var pairs = PauliCircuitMap.GivensRounds(d).SelectMany(r => r).ToArray();
        Assert.Equal(t.Length, pairs.Length);
        var r = new double[d, d];
        for (int i = 0; i < d; i++) r[i, i] = 1;
        for (int j = 0; j < pairs.Length; j++)
        {
            var (x, y) = pairs[j];
            double c = Math.Cos(t[j] / 2), s = Math.Sin(t[j] / 2);
            for (int col = 0; col < d; col++)
            {
                double a = r[x, col], b = r[y, col];
                r[x, col] = c * a - s * b;
                r[y, col] = s * a + c * b;
            }
        }
        var flat = new double[d * d];
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) flat[i * d + j] = r[i, j];
        return tensor(flat, new long[] { d, d }, ScalarType.Float64);
    }

    /// <summary>G_(d-2) ... G_0 with G_j the rotation by t_j / 2 between levels j and j+1 (d = 2: RY).</summary>
    static Tensor GeneralizedRy(int d, ReadOnlySpan<double> t)
    {
        var r = new double[d, d];
        for (int i = 0; i < d; i++) r[i, i] = 1;
        for (int j = 0; j < d - 1; j++)
        {
            double c = Math.Cos(t[j] / 2), s = Math.Sin(t[j] / 2);
            for (int col = 0; col < d; col++)
            {
                double a = r[j, col], b = r[j + 1, col];
                r[j, col] = c * a - s * b;
                r[j + 1, col] = s * a + c * b;
            }
        }
        var flat = new double[d * d];
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) flat[i * d + j] = r[i, j];
        return tensor(flat, new long[] { d, d }, ScalarType.Float64);
    }

    public static IEnumerable<object[]> Cases()
    {
        foreach (var n in new[] { 2, 8, 32, 256, 1024 })
        foreach (var layers in new[] { 0, 1, 2, 3 })
            yield return new object[] { n, Math.Min(4, n), layers, "alternating", "cz" };
        foreach (var n in new[] { 3, 12, 20, 56, 96, 384 })   // qudits: 3, 2*2*3, 2*2*5, 2*2*2*7, 2^5*3, 2^7*3
        foreach (var layers in new[] { 0, 1, 3 })
            yield return new object[] { n, Math.Min(4, n), layers, "alternating", "cz" };
        // K against the low qudits that the first layer's product state is built from: K = 1, K = N, K between
        // products of the low dimensions (6 of 8), and the main job's K = 8 at MiniLM's widths.
        foreach (var (n, k) in new[] { (8, 1), (12, 12), (96, 6), (384, 8), (1536, 8), (20, 5) })
            yield return new object[] { n, k, 1, "alternating", "cz" };
        yield return new object[] { 64, 5, 2, "full", "cz" };
        yield return new object[] { 64, 3, 2, "alternating", "none" };
        yield return new object[] { 48, 3, 2, "full", "none" };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fast_circuit_equals_dense_oracle(int n, int k, int layers, string gateOrder, string entangler)
    {
        using var scope = NewDisposeScope();
        var options = new StiefelMapOptions { Layers = layers, GateOrder = gateOrder, Entangler = entangler };
        using var map = (PauliCircuitMap)StiefelMaps.Create(n, k, options, seed: 1);
        Fill(map, Math.PI, seed: n * 10 + layers);
        map.to(ScalarType.Float64);
        var theta = map.parameters().Single().data<double>().ToArray();
        using var _ = no_grad();
        var fast = map.Compute();
        var dense = Dense(map.Dimensions.ToArray(), layers, gateOrder, entangler, theta, k);
        double diff = (fast - dense).abs().max().item<double>();
        Assert.True(diff <= 1e-6, $"N={n} L={layers}: max |fast - dense| = {diff:E2}");
        Assert.True(OrthError(fast) <= 1e-12);
    }

    [Fact]
    public void Qubit_zero_with_theta_pi_flips_the_first_basis_vector_onto_bit_zero()
    {
        // RY(pi) on qubit 0 maps |0> to |1>: row 1 (bit 0 set), as the row-index convention says.
        using var scope = NewDisposeScope();
        using var map = StiefelMaps.Create(8, 1, new StiefelMapOptions { Layers = 0, Init = "zeros" });
        using (no_grad()) map.parameters().Single()[0] = Math.PI;
        var u = map.Compute();
        Assert.Equal(1f, u[1, 0].item<float>(), 5);
        Assert.Equal(0f, u[0, 0].item<float>(), 5);
    }
}
