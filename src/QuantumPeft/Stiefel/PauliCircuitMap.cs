using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>
/// The Pauli-rotation circuit on qubits (N = 2^n) or mixed-radix qudits (N = d_0 * d_1 * ...), evaluated on
/// the N x K block I[:, :K] without ever forming an N x N matrix.
/// </summary>
/// <remarks>
/// <para>Row index i = digit_0 + d_0 * (digit_1 + d_1 * (...)): qudit q owns digit q (for qubits, bit q).
/// A qudit of dimension d gets a generalised RY: R = G_{d-2}(t_{d-2}) ... G_0(t_0), G_j a rotation by t_j/2
/// between levels j and j+1 (d - 1 angles; for d = 2 exactly RY(t)). The entangler CZ on qudits (a, b)
/// flips the sign of rows where both digits are at their top level.</para>
/// <para>Layout ("alternating", the paper's): rotations on every qudit; then L times: rotations on qudits
/// 0..n-2, CZ on (0,1),(2,3)...; rotations on qudits 1..n-1, CZ on (1,2),(3,4)... Angles are consumed in
/// exactly that order, qudit by qudit, level by level. For qubits this is (2L+1) n - 2L angles.
/// "full": rotations on every qudit, then both CZ patterns, per repeat ((L+1) n angles for qubits).</para>
/// <para>Cost: each rotation layer is applied as a few small Kronecker factors (up to
/// <see cref="GroupDimension"/> rows each) contracted along their qudits' axes, each CZ layer as a
/// multiply by a cached +-1 vector: O((2L+1) N K log N) in all.</para>
/// </remarks>
public sealed class PauliCircuitMap : StiefelMap
{
    /// <summary>Largest Kronecker factor (product of neighbouring qudit dimensions) applied in one pass.</summary>
    public static int GroupDimension { get; set; } = 16;

    readonly TorchSharp.Modules.Parameter theta;
    readonly int[] dims;
    readonly Step[] steps;
    readonly long count;

    /// <summary>One step of the circuit: rotations on a contiguous range of qudits, or a CZ sign pattern.</summary>
    internal sealed record Step(int FirstQudit, int QuditCount, DeviceCache? Signs);

    /// <inheritdoc/>
    public override string Kind => "pauli";

    /// <inheritdoc/>
    public override long ParameterCount => count;

    /// <summary>Qudit dimensions, least significant first.</summary>
    public IReadOnlyList<int> Dimensions => dims;

    internal PauliCircuitMap(int n, int k, int[] dims, StiefelMapOptions options, StiefelInit init) : base("pauli_circuit", n, k)
    {
        if (dims.Aggregate(1L, (a, d) => a * d) != n)
            throw new ArgumentException($"Qudit dimensions [{string.Join(", ", dims)}] do not multiply to N = {n}.", nameof(dims));
        this.dims = dims;
        steps = Plan(dims, options.Layers, options.GateOrder, options.Entangler);
        count = CountParameters(dims, options.Layers, options.GateOrder);
        theta = init.Vector(count);
        register_parameter("theta", theta);
    }

    /// <summary>
    /// Angles of the circuit: sum over rotation layers of sum (d_q - 1) over their qudits. For n qubits and
    /// "alternating" this is n + 2L(n - 1) = (2L + 1) log2 N - 2L.
    /// </summary>
    public static long CountParameters(IReadOnlyList<int> dims, int layers, string gateOrder)
    {
        long all = dims.Sum(d => d - 1L);
        if (dims.Count <= 1 && gateOrder == "alternating") return all;
        long repeat = gateOrder == "full" ? all : 2 * all - (dims[0] - 1) - (dims[^1] - 1);
        return all + layers * repeat;
    }

    internal static Step[] Plan(int[] dims, int layers, string gateOrder, string entangler)
    {
        int n = dims.Length;
        bool cz = entangler == "cz" && n > 1;
        var steps = new List<Step> { new(0, n, null) };
        for (int l = 0; l < layers; l++)
        {
            if (gateOrder == "full")
            {
                steps.Add(new(0, n, null));
                if (cz) steps.Add(new(0, 0, SignCache(dims, 0, 1)));
            }
            else
            {
                if (n > 1) steps.Add(new(0, n - 1, null));
                if (cz) steps.Add(new(0, 0, SignCache(dims, 0)));
                if (n > 1) steps.Add(new(1, n - 1, null));
                if (cz && n > 2) steps.Add(new(0, 0, SignCache(dims, 1)));
            }
        }
        return steps.ToArray();
    }

    /// <summary>The +-1 row pattern of CZ gates on pairs (s, s+1), (s+2, s+3), ... for each start s given.</summary>
    internal static float[] Signs(int[] dims, params int[] starts)
    {
        long rows = dims.Aggregate(1L, (a, d) => a * d);
        var signs = new float[rows];
        var digit = new int[dims.Length];
        for (long i = 0; i < rows; i++)
        {
            long r = i;
            for (int q = 0; q < dims.Length; q++) { digit[q] = (int)(r % dims[q]); r /= dims[q]; }
            int flips = 0;
            foreach (var s in starts)
                for (int a = s; a + 1 < dims.Length; a += 2)
                    if (digit[a] == dims[a] - 1 && digit[a + 1] == dims[a + 1] - 1) flips++;
            signs[i] = flips % 2 == 0 ? 1f : -1f;
        }
        return signs;
    }

    static DeviceCache SignCache(int[] dims, params int[] starts)
    {
        var signs = Signs(dims, starts);
        return new DeviceCache((device, dtype) => tensor(signs, new long[] { signs.Length, 1 }, dtype, device));
    }

    /// <inheritdoc/>
    public override Tensor Compute()
    {
        var x = eye(N, K, dtype: theta.dtype, device: theta.device);
        var half = theta * 0.5;
        var cos = half.cos();
        var sin = half.sin();
        long offset = 0;
        foreach (var step in steps)
        {
            if (step.Signs is { } signs) { x = x * signs.Get(theta.device, theta.dtype); continue; }
            var mats = new Tensor[step.QuditCount];
            for (int j = 0; j < step.QuditCount; j++)
            {
                int d = dims[step.FirstQudit + j];
                mats[j] = Rotation(d, cos.narrow(0, offset, d - 1), sin.narrow(0, offset, d - 1));
                offset += d - 1;
            }
            x = ApplyRotations(x, step.FirstQudit, mats);
        }
        return x;
    }

    /// <summary>Applies one rotation per qudit (starting at qudit <paramref name="first"/>), grouped into Kronecker factors.</summary>
    Tensor ApplyRotations(Tensor x, int first, Tensor[] mats)
    {
        int j = 0;
        while (j < mats.Length)
        {
            int q = first + j;
            long inner = 1;
            for (int p = 0; p < q; p++) inner *= dims[p];
            // Most significant qudit is the left Kronecker factor.
            var group = mats[j];
            long size = dims[q];
            j++;
            while (j < mats.Length && size * dims[first + j] <= GroupDimension)
            {
                group = kron(mats[j], group);
                size *= dims[first + j];
                j++;
            }
            long outer = N / (inner * size);
            x = matmul(group, x.view(outer, size, inner * K)).view(N, K);
        }
        return x;
    }

    /// <summary>The generalised RY of a qudit of dimension d from the cosines and sines of its half-angles.</summary>
    internal static Tensor Rotation(int d, Tensor cos, Tensor sin)
    {
        if (d == 2) return stack(new[] { cos, -sin, sin, cos }).view(2, 2);
        // R = G_(d-2) ... G_0 I, built row pair by row pair: O(d^2), not d matrix products of O(d^3).
        var rows = eye(d, dtype: cos.dtype, device: cos.device).unbind(0);
        for (int j = 0; j < d - 1; j++)
        {
            var (c, s) = (cos[j], sin[j]);
            (rows[j], rows[j + 1]) = (c * rows[j] - s * rows[j + 1], s * rows[j] + c * rows[j + 1]);
        }
        return stack(rows);
    }
}
