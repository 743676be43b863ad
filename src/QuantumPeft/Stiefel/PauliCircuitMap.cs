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
/// "full": rotations on every qudit, then both CZ patterns, per repeat ((L+1) n angles for qubits).
/// "s2d" (PennyLane's SimplifiedTwoDesign, wire q = qudit q): rotations on every qudit; then L times: CZ on
/// (0,1),(2,3)..., rotations on both qudits of each of those pairs; CZ on (1,2),(3,4)..., rotations on both
/// qudits of each of those ((2L+1) n - 2L angles for qubits, the paper's count, in PennyLane's weight order).
/// CZs on disjoint pairs commute, so each pattern is one sign multiply and its rotations one step.</para>
/// <para>Local rotations (LocalQubits g &gt; 1, "full rotations"): every qudit of dimension d &gt; 2 gets a full
/// SO(d) element instead of the d - 1 neighbour-level rotations: a product of Givens rotations by t/2 over all
/// d (d - 1) / 2 level pairs, in the rounds of <see cref="GivensRounds"/>. Why Givens and not exp(skew): every
/// product of rotations is orthogonal to rounding whatever the angles, each angle keeps the 4 pi period of the
/// RY gates (so the angle quantizer and the "period" initialisation apply unchanged), angles 0 give the
/// identity, and pairs on disjoint levels commute, so each round is one small matrix and a rotation costs under
/// 1.5 d products of d x d matrices (4 rounds for d = 4, 10 for d = 8), not d (d - 1) / 2 separate updates; all
/// rotations of one dimension in a circuit (every layer, every batch member) are built in the same few operations.</para>
/// <para>Cost: each rotation layer is applied as a few small Kronecker factors (up to
/// <see cref="GroupDimension"/> rows each) contracted along their qudits' axes, each CZ layer as a
/// multiply by a cached +-1 vector: O((2L+1) N K log N) passes' worth of work in all (a factor of g
/// qubits costs 2^g N K per pass but replaces g passes).</para>
/// </remarks>
public sealed class PauliCircuitMap : StiefelMap
{
    /// <summary>Largest Kronecker factor (product of neighbouring qudit dimensions) applied in one pass.</summary>
    /// <remarks>
    /// Measured on 2 CPU cores, one torch thread, K = 4, L = 1 (forward + backward): 64 was fastest at N = 16384
    /// (about 27 ms against 95 ms for 2, 54 ms for 4, 31 ms for 16) and as fast as the others at N = 64 and 1024,
    /// because per-operation overhead, not arithmetic, dominates at these sizes.
    /// </remarks>
    public static int GroupDimension { get; set; } = 64;

    /// <summary>Largest Kronecker factor when several circuits are evaluated as one batch (<see cref="PauliCircuitBatch"/>).</summary>
    /// <remarks>
    /// With a batch, arithmetic starts to count: a factor of g qubits costs 2^g / (2 g) times the arithmetic of g
    /// single-qubit passes. Measured with <c>qpeft bench step --rank 8</c> (MiniLM, U and V of all 36 layers, forward +
    /// backward, 2 CPU cores): 73.9 ms per step with 64, 31.7 with 16, 27.8 with 8, 32.7 with 4.
    /// </remarks>
    public static int BatchedGroupDimension { get; set; } = 8;

    readonly TorchSharp.Modules.Parameter theta;
    readonly int[] dims;
    readonly Step[] steps;
    readonly long count;
    readonly bool fullRotations;
    // Every rotation in the order the plan consumes them: its qudit dimension, first angle, and (full rotations of
    // d > 2) its index among the rotations of that dimension, whose matrices are built together.
    readonly (int D, long Offset, int Index)[] rotations;
    readonly (int D, int Count, DeviceCache Angles)[] fullGroups;

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
        fullRotations = options.LocalQubits > 1;
        steps = Plan(dims, options.Layers, options.GateOrder, options.Entangler);
        count = CountParameters(dims, options.Layers, options.GateOrder, fullRotations);
        (rotations, fullGroups) = Rotations(dims, steps, fullRotations);
        long consumed = rotations.Length == 0 ? 0 : rotations[^1].Offset + Angles(rotations[^1].D, fullRotations);
        if (consumed != count)
            throw new InvalidOperationException($"Pauli circuit plan uses {consumed} angles but its formula gives {count} (dims [{string.Join(", ", dims)}], {options.GateOrder}).");
        theta = init.Vector(count);
        register_parameter("theta", theta);
        ShapeKey = $"pauli:{n}x{k}:[{string.Join(",", dims)}]:L{options.Layers}:{options.GateOrder}:{options.Entangler}:{(fullRotations ? "so" : "ry")}";
    }

    /// <summary>Whether qudits of more than two levels get a full SO(d) rotation (LocalQubits &gt; 1) rather than d - 1 neighbour-level angles.</summary>
    public bool FullRotations => fullRotations;

    /// <summary>Angles of one rotation of a qudit of dimension d: d (d - 1) / 2 for a full SO(d) element, else d - 1 (both 1 for a qubit).</summary>
    public static long Angles(int d, bool fullRotations) => fullRotations ? (long)d * (d - 1) / 2 : d - 1;

    static ((int, long, int)[], (int, int, DeviceCache)[]) Rotations(int[] dims, Step[] steps, bool full)
    {
        var list = new List<(int, long, int)>();
        var perDimension = new SortedDictionary<int, List<long>>();
        long offset = 0;
        foreach (var step in steps.Where(s => s.Signs is null))
            for (int q = step.FirstQudit; q < step.FirstQudit + step.QuditCount; q++)
            {
                int d = dims[q], index = -1;
                if (full && d > 2)
                {
                    if (!perDimension.TryGetValue(d, out var offsets)) perDimension[d] = offsets = [];
                    index = offsets.Count;
                    offsets.Add(offset);
                }
                list.Add((d, offset, index));
                offset += Angles(d, full);
            }
        var groups = perDimension.Select(p =>
        {
            long per = Angles(p.Key, true);
            var indices = p.Value.SelectMany(o => Enumerable.Range(0, (int)per).Select(i => o + i)).ToArray();
            return (p.Key, p.Value.Count, new DeviceCache((device, _) => tensor(indices, ScalarType.Int64, device)));
        }).ToArray();
        return (list.ToArray(), groups);
    }

    /// <summary>
    /// Angles of the circuit: sum over rotation layers of sum a(d_q) over their qudits, a(d) = d - 1, or
    /// d (d - 1) / 2 with full rotations (<see cref="Angles"/>). With A = sum over all qudits of a(d_q):
    /// "alternating": A + L (2A - a(d_0) - a(d_(n-1))); "full": A + L A; "s2d": A + L (sum over q &lt; 2 floor(n/2)
    /// of a(d_q) + sum over 1 &lt;= q &lt;= 2 floor((n-1)/2) of a(d_q)); a single qudit has no repeats in
    /// "alternating" and "s2d". For n qubits both "alternating" and "s2d" give n + 2L(n - 1) = (2L + 1) log2 N - 2L;
    /// for m = n / g qudits of 2^g levels, a(2^g) ((2L + 1) m - 2L) with a(2^g) = 2^(g-1) (2^g - 1).
    /// </summary>
    public static long CountParameters(IReadOnlyList<int> dims, int layers, string gateOrder, bool fullRotations = false)
    {
        int n = dims.Count;
        long A(int first, int last) { long s = 0; for (int q = first; q <= last; q++) s += Angles(dims[q], fullRotations); return s; }
        long all = A(0, n - 1);
        if (n <= 1 && gateOrder != "full") return all;
        long repeat = gateOrder switch
        {
            "full" => all,
            "s2d" => A(0, 2 * (n / 2) - 1) + A(1, 2 * ((n - 1) / 2)),
            _ => 2 * all - Angles(dims[0], fullRotations) - Angles(dims[^1], fullRotations),
        };
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
            else if (gateOrder == "s2d")
            {
                if (n < 2) continue;
                if (cz) steps.Add(new(0, 0, SignCache(dims, 0)));
                steps.Add(new(0, 2 * (n / 2), null));
                if (n < 3) continue;
                if (cz) steps.Add(new(0, 0, SignCache(dims, 1)));
                steps.Add(new(1, 2 * ((n - 1) / 2), null));
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

    /// <summary>The angle vector (length <see cref="ParameterCount"/>).</summary>
    internal TorchSharp.Modules.Parameter Theta => theta;

    /// <summary>
    /// Identifies the circuit up to its angles: maps with equal keys run the same plan, so
    /// <see cref="Evaluate"/> of one of them can evaluate all of them at once.
    /// </summary>
    internal string ShapeKey { get; }

    /// <inheritdoc/>
    public override Tensor Compute() => Evaluate(theta.unsqueeze(0)).squeeze(0);

    /// <summary>Runs this circuit's plan on B angle vectors at once: [B, count] to [B, N, K].</summary>
    /// <remarks>
    /// One batched pass costs about what one circuit does: at these sizes the time goes to per-operation overhead,
    /// not arithmetic, so the adapters of a whole model are evaluated in a handful of operations, not thousands.
    /// </remarks>
    internal Tensor Evaluate(Tensor thetas)
    {
        if (thetas.dim() != 2 || thetas.shape[1] != count)
            throw new ArgumentException($"Expected angles of shape [B, {count}], got [{string.Join(", ", thetas.shape)}].", nameof(thetas));
        long batch = thetas.shape[0];
        var half = thetas * 0.5;
        var cos = half.cos();
        var sin = half.sin();
        // Every angle's 2x2 RY in one stack; a qubit takes its matrix with one select.
        var ry = stack(new[] { cos, -sin, sin, cos }, -1).view(batch, count, 2, 2);
        // Full rotations: all of one dimension built at once ([B, R_d, d, d]), whatever their layer.
        var full = new Dictionary<int, Tensor>();
        foreach (var (d, n, angles) in fullGroups)
        {
            var index = angles.Get(thetas.device, thetas.dtype);
            long per = Angles(d, true);
            full[d] = FullRotation(d, cos.index_select(1, index).view(batch, n, per), sin.index_select(1, index).view(batch, n, per));
        }
        int next = 0;
        Tensor[] Rotations(Step step)
        {
            var mats = new Tensor[step.QuditCount];
            for (int j = 0; j < step.QuditCount; j++)
            {
                var (d, offset, index) = rotations[next++];
                mats[j] = d == 2 ? ry.select(1, offset)
                    : index >= 0 ? full[d].select(1, index)
                    : Rotation(d, cos.narrow(1, offset, d - 1), sin.narrow(1, offset, d - 1));
            }
            return mats;
        }
        // The plan always opens with a rotation on every qudit, applied to I[:, :K]: a product state, built directly.
        var x = FirstLayerColumns(Rotations(steps[0]), batch);
        foreach (var step in steps.Skip(1))
        {
            if (step.Signs is { } signs) { x = x * signs.Get(thetas.device, thetas.dtype); continue; }
            x = ApplyRotations(x, step.FirstQudit, Rotations(step), batch > 1 ? BatchedGroupDimension : GroupDimension);
        }
        return x;
    }

    /// <summary>(R_(n-1) x ... x R_0)[:, :K] for one rotation per qudit ([B, d, d] each), without the N x N product.</summary>
    /// <remarks>
    /// Column c &lt; K has digit 0 on every qudit above the low ones that c spans, so those qudits contribute only their
    /// first column: a vector, built by outer products. Only the low qudits (P = d_0 ... d_(m-1) &gt;= K rows) need their
    /// full Kronecker product. Three passes over an N x K block become one; measured on MiniLM, see bench step.
    /// </remarks>
    Tensor FirstLayerColumns(Tensor[] mats, long batch)
    {
        int m = 0;
        long low = 1;
        while (low < K) low *= dims[m++];
        var lowKron = ones(batch, 1, 1, dtype: mats[0].dtype, device: mats[0].device);
        long size = 1;
        for (int q = 0; q < m; q++)
        {
            lowKron = Kron(mats[q], dims[q], lowKron, size);
            size *= dims[q];
        }
        var columns = lowKron.narrow(2, 0, K);
        if (m == dims.Length) return columns;
        var high = mats[m].select(2, 0);
        long length = dims[m];
        for (int q = m + 1; q < dims.Length; q++)
        {
            long d = dims[q];
            high = (mats[q].select(2, 0).view(batch, d, 1) * high.view(batch, 1, length)).view(batch, d * length);
            length *= d;
        }
        return (high.view(batch, length, 1, 1) * columns.view(batch, 1, low, K)).view(batch, N, K);
    }

    /// <summary>Applies one rotation ([B, d, d]) per qudit, starting at qudit <paramref name="first"/>, grouped into Kronecker factors.</summary>
    Tensor ApplyRotations(Tensor x, int first, Tensor[] mats, int groupDimension)
    {
        long batch = x.shape[0];
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
            while (j < mats.Length && size * dims[first + j] <= groupDimension)
            {
                group = Kron(mats[j], dims[first + j], group, size);
                size *= dims[first + j];
                j++;
            }
            long outer = N / (inner * size);
            x = einsum("bij,bojk->boik", group, x.reshape(batch, outer, size, inner * K)).reshape(batch, N, K);
        }
        return x;
    }

    /// <summary>Batched Kronecker product a x b of [B, da, da] and [B, db, db] (a the more significant factor).</summary>
    static Tensor Kron(Tensor a, long da, Tensor b, long db)
    {
        long batch = a.shape[0];
        return (a.view(batch, da, 1, da, 1) * b.view(batch, 1, db, 1, db)).view(batch, da * db, da * db);
    }

    /// <summary>The generalised RY of a qudit of dimension d from the cosines and sines of its half-angles ([..., d - 1] to [..., d, d]).</summary>
    internal static Tensor Rotation(int d, Tensor cos, Tensor sin)
    {
        // Evaluate builds qubits' RY from one stack of all angles; for d = 2 this gives the same matrix.
        var lead = cos.shape[..^1];
        // R = G_(d-2) ... G_0 I, built row pair by row pair: O(d^2), not d matrix products of O(d^3).
        var rows = eye(d, dtype: cos.dtype, device: cos.device).unbind(0);
        for (int j = 0; j < d - 1; j++)
        {
            var (c, s) = (cos.narrow(-1, j, 1), sin.narrow(-1, j, 1));
            (rows[j], rows[j + 1]) = (c * rows[j] - s * rows[j + 1], s * rows[j] + c * rows[j + 1]);
        }
        return stack(rows.Select(r => r.expand([.. lead, d])).ToArray(), -2);
    }

    /// <summary>
    /// The level pairs of a full SO(d) rotation in angle order, in rounds of disjoint pairs: first the butterfly
    /// (0,1); (0,2),(1,3); (0,4)...(3,7); ... that spreads level 0 over all d levels, then every other pair,
    /// each in the first round after those where both its levels are free.
    /// </summary>
    /// <remarks>
    /// R = G_last ... G_first e_0: in the opening layer a qudit above the low ones meets only its first column, and a
    /// pair rotating two levels that are still zero there would be a dead angle. The butterfly reaches every level
    /// before any other pair acts, so every angle moves R e_0 at a generic point (d - 1 of its directions are new).
    /// </remarks>
    public static IReadOnlyList<(int A, int B)[]> GivensRounds(int d)
    {
        var rounds = new List<List<(int, int)>>();
        var butterfly = new HashSet<(int, int)>();
        for (int s = 1; s < d; s *= 2)
        {
            var round = new List<(int, int)>();
            for (int i = 0; i < s && i + s < d; i++) { round.Add((i, i + s)); butterfly.Add((i, i + s)); }
            rounds.Add(round);
        }
        var rest = new List<(int A, int B)>();
        for (int a = 0; a < d; a++) for (int b = a + 1; b < d; b++) if (!butterfly.Contains((a, b))) rest.Add((a, b));
        while (rest.Count > 0)
        {
            var used = new HashSet<int>();
            var round = new List<(int, int)>();
            foreach (var pair in rest.Where(p => !used.Contains(p.A) && !used.Contains(p.B)).ToList())
            {
                if (used.Contains(pair.A) || used.Contains(pair.B)) continue;
                round.Add(pair);
                used.Add(pair.A);
                used.Add(pair.B);
                rest.Remove(pair);
            }
            rounds.Add(round);
        }
        return rounds.Select(r => r.ToArray()).ToArray();
    }

    static readonly Dictionary<int, (DeviceCache Placement, DeviceCache Idle, int Rounds)> FullRotationPlans = new();

    /// <summary>Full SO(d) rotations from the cosines and sines of their half-angles ([..., R, P] to [..., R, d, d], P = d (d - 1) / 2).</summary>
    internal static Tensor FullRotation(int d, Tensor cos, Tensor sin)
    {
        (DeviceCache Placement, DeviceCache Idle, int Rounds) plan;
        lock (FullRotationPlans)
            if (!FullRotationPlans.TryGetValue(d, out plan)) FullRotationPlans[d] = plan = FullRotationPlan(d);
        var lead = cos.shape[..^1];
        // Each round's d x d matrix is linear in (cos, sin) plus 1 on its idle levels: one product with a constant 0/+-1 placement.
        var rounds = cat(new[] { cos, sin }, -1).matmul(plan.Placement.Get(cos.device, cos.dtype)) + plan.Idle.Get(cos.device, cos.dtype);
        rounds = rounds.view([.. lead, plan.Rounds, d, d]);
        var r = rounds.select(-3, 0);
        for (int i = 1; i < plan.Rounds; i++) r = rounds.select(-3, i).matmul(r);
        return r;
    }

    static (DeviceCache, DeviceCache, int) FullRotationPlan(int d)
    {
        var rounds = GivensRounds(d);
        int pairs = d * (d - 1) / 2, size = rounds.Count * d * d;
        var placement = new float[2 * pairs * size];
        var idle = new float[size];
        int p = 0;
        for (int r = 0; r < rounds.Count; r++)
        {
            int at = r * d * d;
            var busy = new bool[d];
            foreach (var (a, b) in rounds[r])
            {
                // Rows a, b of the round: [x_a; x_b] -> [[c, -s], [s, c]] [x_a; x_b], as RY for (a, b) = (0, 1).
                placement[p * size + at + a * d + a] = 1;
                placement[p * size + at + b * d + b] = 1;
                placement[(pairs + p) * size + at + a * d + b] = -1;
                placement[(pairs + p) * size + at + b * d + a] = 1;
                busy[a] = busy[b] = true;
                p++;
            }
            for (int i = 0; i < d; i++) if (!busy[i]) idle[at + i * d + i] = 1;
        }
        return (new DeviceCache((device, dtype) => tensor(placement, new long[] { 2 * pairs, size }, ScalarType.Float32).to(dtype, device)),
                new DeviceCache((device, dtype) => tensor(idle, new long[] { size }, ScalarType.Float32).to(dtype, device)),
                rounds.Count);
    }
}
