using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>
/// Evaluates the Pauli circuits of many maps (say U and V of every adapted layer) as a few batched circuits,
/// one per circuit shape, instead of one circuit per map.
/// </summary>
/// <remarks>
/// <para>A model's forward pass asks each map for its matrix in turn. The first request evaluates every member
/// of that map's shape group in one batched pass and hands out the other members' matrices as they are asked
/// for. Each result is handed out once (a second request means a new forward pass, so the group is evaluated
/// again), and only while it is still current: computed under the same grad mode, not disposed by a
/// dispose scope, and from angles equal to the map's angles now (so an optimizer step, a load or a
/// quantization in between is never missed). Anything else evaluates the map on its own.</para>
/// <para>Why: on 2 CPU cores, MiniLM with Pauli U and V on all 36 linear layers spent most of each training step
/// in the 72 small circuits (thousands of tiny tensor operations); batched, it is about 2 x 3 passes.</para>
/// </remarks>
public sealed class PauliCircuitBatch
{
    /// <summary>Turns batching off (every map evaluates alone), e.g. to measure what it saves.</summary>
    public static bool Enabled { get; set; } = true;

    readonly Dictionary<string, Group> groups = new(StringComparer.Ordinal);
    readonly Dictionary<StiefelMap, (Group Group, int Index)> members = new(ReferenceEqualityComparer.Instance);

    /// <summary>Adds <paramref name="map"/> to the group of its circuit shape (maps other than Pauli circuits are ignored).</summary>
    public void Add(StiefelMap map)
    {
        if (map is not PauliCircuitMap circuit || members.ContainsKey(map)) return;
        if (!groups.TryGetValue(circuit.ShapeKey, out var group)) groups[circuit.ShapeKey] = group = new Group();
        members[map] = (group, group.Add(circuit));
    }

    /// <summary>The number of batched evaluations one pass over all members takes.</summary>
    public int GroupCount => groups.Count;

    /// <summary><paramref name="map"/>'s matrix, <c>map.Compute()</c> to float rounding, from a batched evaluation when possible.</summary>
    public Tensor Compute(StiefelMap map) =>
        Enabled && members.TryGetValue(map, out var m) && m.Group.Count > 1 ? m.Group.Take(m.Index) : map.Compute();

    static bool SamePlace(Tensor a, Tensor b) => a.device_type == b.device_type && a.device_index == b.device_index && a.dtype == b.dtype;

    sealed class Group
    {
        readonly List<PauliCircuitMap> maps = [];
        Tensor?[] results = [];
        Tensor[] angles = [];
        bool grad;

        public int Count => maps.Count;

        public int Add(PauliCircuitMap map) { maps.Add(map); return maps.Count - 1; }

        public Tensor Take(int index)
        {
            if (!IsCurrent(index)) Evaluate();
            var result = results[index]!;
            results[index] = null;
            return result;
        }

        bool IsCurrent(int index)
        {
            if (results.Length != maps.Count || results[index] is not { IsInvalid: false } || grad != is_grad_enabled()) return false;
            var now = maps[index].Theta;
            var then = angles[index];
            return !then.IsInvalid && SamePlace(then, now) && then.allclose(now, rtol: 0, atol: 0);
        }

        void Evaluate()
        {
            var thetas = maps.Select(m => (Tensor)m.Theta).ToList();
            grad = is_grad_enabled();
            if (thetas.Any(t => !SamePlace(t, thetas[0])))
            {
                // Members split across devices or dtypes: no common batch, each map on its own.
                results = maps.Select(m => (Tensor?)m.Compute()).ToArray();
                angles = thetas.Select(t => t.detach().clone()).ToArray();
                return;
            }
            var stacked = stack(thetas);
            results = maps[0].Evaluate(stacked).unbind(0);
            angles = stacked.detach().clone().unbind(0);
        }
    }
}
