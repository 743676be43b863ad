using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>
/// One adapter on chosen parts of a fused projection: GPT-2's <c>c_attn</c> computes q, k and v as three equal thirds of its
/// output, and the target <c>c_attn[q,v]</c> gives the q and v thirds each its own update (the LoRA paper's GPT-2 setup),
/// leaving k untouched.
/// </summary>
/// <remarks>File keys are the part's name before the method's own keys: <c>...c_attn.q.lora_A.weight</c>,
/// <c>...c_attn.v.qpeft_lambda</c>. peft has no such form, so peft cannot read these files (it reads plain <c>c_attn</c> adapters).</remarks>
public sealed class FusedPartsBranch : AdapterBranch
{
    /// <summary>The part names of a fused q, k, v projection, in output order.</summary>
    public static readonly IReadOnlyList<string> QkvParts = ["q", "k", "v"];

    private readonly AdapterSet parts = new();
    private readonly int partSize;

    /// <summary>Wraps one branch per chosen part; each is partSize = out / 3 rows of the fused output.</summary>
    public FusedPartsBranch(int inFeatures, int outFeatures, IReadOnlyList<(string Part, AdapterBranch Branch)> branches)
        : base(nameof(FusedPartsBranch), inFeatures, outFeatures)
    {
        if (outFeatures % QkvParts.Count != 0)
            throw new ArgumentException($"a fused q, k, v layer has out_features divisible by 3; this one has {outFeatures}.", nameof(outFeatures));
        partSize = outFeatures / QkvParts.Count;
        foreach (var (part, branch) in branches.OrderBy(b => PartIndex(b.Part)))
        {
            if (branch.InFeatures != inFeatures || branch.OutFeatures != partSize)
                throw new ArgumentException($"part '{part}' needs a {partSize}x{inFeatures} branch, got {branch.OutFeatures}x{branch.InFeatures}.", nameof(branches));
            if (!branch.IsAdditive)
                throw new ArgumentException($"{branch.PeftType} changes how the whole layer is applied, so it cannot adapt one part ('{part}') of a fused projection; target the whole layer.", nameof(branches));
            parts.Add(part, branch);
        }
        if (parts.Names.Count == 0) throw new ArgumentException("name at least one part (q, k or v).", nameof(branches));
        RegisterComponents();
    }

    /// <summary>The index of a part name in q, k, v; throws naming the choices.</summary>
    public static int PartIndex(string part)
    {
        var i = QkvParts.ToList().IndexOf(part);
        return i >= 0 ? i : throw new ArgumentException($"unknown part '{part}' of a fused projection; the parts are {string.Join(", ", QkvParts)}.", nameof(part));
    }

    /// <summary>The method's own branches inside <paramref name="branch"/>: its parts when fused, else the branch itself.</summary>
    public static IEnumerable<AdapterBranch> Leaves(AdapterBranch branch) =>
        branch is FusedPartsBranch f ? f.Parts.Select(p => p.Branch) : [branch];

    /// <summary>The chosen parts with their branches, in output order.</summary>
    public IEnumerable<(string Part, AdapterBranch Branch)> Parts => parts.Names.Select(n => (n, parts[n]));

    public override string PeftType => parts[parts.Names[0]].PeftType;

    public override long? QuantizedBits => Parts.Aggregate((long?)0, (acc, p) => acc is { } a && p.Branch.QuantizedBits is { } b ? a + b : null);

    // The full-width output with each part's rows filled in and the others zero.
    private Tensor Assemble(Func<AdapterBranch, Tensor> piece, int dim)
    {
        var pieces = new List<Tensor>();
        Tensor? any = null;
        var computed = Parts.ToDictionary(p => p.Part, p => piece(p.Branch));
        any = computed.Values.First();
        foreach (var part in QkvParts)
        {
            if (computed.TryGetValue(part, out var t)) { pieces.Add(t); continue; }
            var shape = any.shape.ToArray();
            shape[dim < 0 ? shape.Length + dim : dim] = partSize;
            pieces.Add(zeros(shape, dtype: any.dtype, device: any.device));
        }
        return cat(pieces, dim);
    }

    public override Tensor Forward(Tensor x) => Assemble(b => b.Forward(x), -1);

    public override Tensor DeltaWeight() => Assemble(b => b.DeltaWeight(), 0);

    public override Dictionary<string, Tensor> ExportState()
    {
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (part, branch) in Parts)
            foreach (var (k, t) in branch.ExportState()) state[$"{part}.{k}"] = t;
        return state;
    }

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        foreach (var (part, branch) in Parts)
        {
            var mine = state.Where(p => p.Key.StartsWith(part + ".", StringComparison.Ordinal)).ToDictionary(p => p.Key[(part.Length + 1)..], p => p.Value);
            if (mine.Count == 0) throw new InvalidDataException($"Adapter keys '{keyPrefix}{part}.*' (part '{part}' of the fused layer) are missing from the file.");
            branch.ImportState(mine, $"{keyPrefix}{part}.");
        }
    }
}
