using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>A frozen Linear (or GPT-2 Conv1D, or Conv2d) plus named adapter branches: y = base(x) + sum of the active branches' outputs.</summary>
/// <remarks>
/// peft's tuner-layer shape: the wrapper keeps the original layer as <c>base_layer</c> (state names
/// <c>&lt;path&gt;.base_layer.weight</c>) and never changes its weights unless asked to merge. Forward reads:
/// adapters disabled -> base only; merged -> base only (the update is in the weight); else base + active branches.
/// Branches are registered under <c>&lt;path&gt;.adapters.&lt;adapter name&gt;.*</c>.
/// A Conv2d is a linear map too: its kernel [out, in, kh, kw] is seen as the out x (in * kh * kw) matrix that merging changes
/// (<see cref="ConvLayers"/>), and its branches (<see cref="AdapterBranch.Conv"/>) take and return images.
/// </remarks>
public sealed class AdaptedLinear : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> base_layer;
    private readonly AdapterSet adapters = new();
    private readonly List<string> merged = [];
    private readonly List<string> active = [];

    /// <summary>Wraps <paramref name="baseLayer"/>, a Linear, a Conv1D or a Conv2d (kept, frozen by the caller); <paramref name="path"/> names it in errors.</summary>
    public AdaptedLinear(nn.Module<Tensor, Tensor> baseLayer, string? path = null) : base(nameof(AdaptedLinear))
    {
        base_layer = baseLayer ?? throw new ArgumentNullException(nameof(baseLayer));
        if (!LinearLayers.IsAdaptable(baseLayer)) throw new ArgumentException($"An adapter wraps a Linear, Conv1D or Conv2d layer, not a {baseLayer.GetType().Name}.", nameof(baseLayer));
        if (ConvLayers.IsConv2d(baseLayer)) Conv = ConvLayers.Shape(baseLayer, path);
        (InFeatures, OutFeatures) = Conv is { } conv ? (conv.MatrixIn, conv.OutChannels) : LinearLayers.Shape(baseLayer);
        RegisterComponents();
        // A wrapper put into a model in eval mode (inference after loading) must not start training its dropout.
        if (!baseLayer.training) eval();
    }

    /// <summary>The original layer; its weights change only through <see cref="Merge"/> / <see cref="Unmerge"/>.</summary>
    public nn.Module<Tensor, Tensor> BaseLayer => base_layer;

    /// <summary>True when the base layer stores its weight [in, out] (GPT-2's Conv1D: peft's fan_in_fan_out).</summary>
    public bool FanInFanOut => LinearLayers.IsFanInFanOut(base_layer);

    /// <summary>The base layer's geometry when it is a Conv2d, else null.</summary>
    public Conv2dShape? Conv { get; }

    /// <summary>Input features of the base layer (in * kh * kw for a Conv2d).</summary>
    public int InFeatures { get; }

    /// <summary>Output features of the base layer.</summary>
    public int OutFeatures { get; }

    /// <summary>Adapter names present on this layer, in insertion order.</summary>
    public IReadOnlyList<string> AdapterNames => adapters.Names.ToList();

    /// <summary>The adapters added to the output (unless disabled or merged).</summary>
    public IReadOnlyList<string> ActiveAdapters => active;

    /// <summary>The adapters whose update is currently inside the base weight.</summary>
    public IReadOnlyList<string> MergedAdapters => merged;

    /// <summary>When true, forward returns the base output only.</summary>
    public bool AdaptersDisabled { get; set; }

    /// <summary>True when any adapter is merged into the base weight.</summary>
    public bool IsMerged => merged.Count > 0;

    /// <summary>The branch of adapter <paramref name="name"/>.</summary>
    public AdapterBranch this[string name] =>
        adapters.TryGetValue(name, out var b) ? b : throw new KeyNotFoundException($"Adapter '{name}' is not on this layer (has: {string.Join(", ", AdapterNames)}).");

    /// <summary>True if adapter <paramref name="name"/> has a branch here.</summary>
    public bool HasAdapter(string name) => adapters.Contains(name);

    /// <summary>Adds a branch (moved to the base layer's device) and makes it the only active one if none is active.</summary>
    public void AddAdapter(string name, AdapterBranch branch)
    {
        if (HasAdapter(name)) throw new ArgumentException($"Adapter '{name}' already exists on this layer.", nameof(name));
        if (branch.InFeatures != InFeatures || branch.OutFeatures != OutFeatures)
            throw new ArgumentException($"Branch shape {branch.OutFeatures}x{branch.InFeatures} does not match the layer {OutFeatures}x{InFeatures}.", nameof(branch));
        if (branch.Conv != Conv)
            throw new ArgumentException(Conv is null ? "This layer is not a Conv2d; its branch must not be a convolution branch."
                : $"This layer is a Conv2d ({Conv}); its branch was built for {(branch.Conv is null ? "a Linear layer" : branch.Conv.ToString())}.", nameof(branch));
        branch.to(LinearLayers.WeightOutIn(base_layer).device);
        branch.Attach(base_layer);
        if (!training) branch.eval();
        adapters.Add(name, branch);
        if (active.Count == 0) active.Add(name);
    }

    /// <summary>Makes exactly <paramref name="names"/> active.</summary>
    public void SetActive(IEnumerable<string> names)
    {
        var list = names.ToList();
        foreach (var n in list) _ = this[n];
        active.Clear();
        active.AddRange(list);
    }

    /// <summary>Removes adapter <paramref name="name"/> (unmerging it first if merged).</summary>
    public void DeleteAdapter(string name)
    {
        var branch = this[name];
        if (merged.Contains(name)) UnmergeOne(name);
        adapters.Remove(name);
        active.Remove(name);
        branch.Dispose();
    }

    public override Tensor forward(Tensor x)
    {
        if (AdaptersDisabled || IsMerged || active.Count == 0) return base_layer.forward(x);
        // Branches that change how the base layer is applied (IA3, OFT) wrap it in turn; additive ones then add their outputs.
        Func<Tensor, Tensor> layer = base_layer.forward;
        foreach (var name in active.Where(n => !adapters[n].IsAdditive))
        {
            var inner = layer;
            var branch = adapters[name];
            layer = h => branch.Compose(h, inner);
        }
        var y = layer(x);
        foreach (var name in active.Where(n => adapters[n].IsAdditive))
        {
            var delta = adapters[name].Forward(x);
            y = y + delta.to(y.dtype);
        }
        return y;
    }

    /// <summary>Adds the active adapters' updates into the base weight (forward then skips the branches).</summary>
    public void Merge()
    {
        using var _ = no_grad();
        foreach (var name in active.Where(n => !merged.Contains(n)).ToList())
        {
            using var scope = NewDisposeScope();
            adapters[name].MergeInto(LinearLayers.WeightOutIn(base_layer), LinearLayers.Bias(base_layer));
            merged.Add(name);
        }
    }

    /// <summary>Subtracts every merged update from the base weight again.</summary>
    public void Unmerge()
    {
        foreach (var name in merged.AsEnumerable().Reverse().ToList()) UnmergeOne(name);
    }

    private void UnmergeOne(string name)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        adapters[name].UnmergeFrom(LinearLayers.WeightOutIn(base_layer), LinearLayers.Bias(base_layer));
        merged.Remove(name);
    }

    /// <summary>All branches with their adapter names.</summary>
    public IEnumerable<(string Name, AdapterBranch Branch)> Branches => adapters.Names.ToList().Select(k => (k, adapters[k]));
}

/// <summary>The named branches of one <see cref="AdaptedLinear"/>, registered as its child modules (state names adapters.&lt;name&gt;.*).</summary>
internal sealed class AdapterSet : nn.Module
{
    private readonly List<string> names = [];
    private readonly Dictionary<string, AdapterBranch> branches = new(StringComparer.Ordinal);

    public AdapterSet() : base("adapters") { }

    public IReadOnlyList<string> Names => names;
    public bool Contains(string name) => branches.ContainsKey(name);
    public AdapterBranch this[string name] => branches[name];
    public bool TryGetValue(string name, out AdapterBranch branch) => branches.TryGetValue(name, out branch!);

    public void Add(string name, AdapterBranch branch)
    {
        branches.Add(name, branch);
        names.Add(name);
        register_module(name, branch);
    }

    public void Remove(string name)
    {
        if (!branches.Remove(name)) return;
        names.Remove(name);
        register_module(name, null!); // unregisters: the branch leaves the state dict
    }
}
