using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>One adapter's update for one Linear layer: computes the extra output and the equivalent weight delta.</summary>
/// <remarks>
/// A branch holds only the adapter's own numbers; the frozen base layer lives in <see cref="AdaptedLinear"/>.
/// Branches keep their parameters in float32 whatever the model's dtype, and cast at the boundary.
/// File keys are relative to the wrapped module's path (e.g. "lora_A.weight", "qpeft_lambda").
/// </remarks>
public abstract class AdapterBranch : nn.Module
{
    /// <summary>Input features of the wrapped Linear.</summary>
    public int InFeatures { get; }

    /// <summary>Output features of the wrapped Linear.</summary>
    public int OutFeatures { get; }

    /// <summary>The convolution this branch adapts, or null for a Linear / Conv1D. For a Conv2d, <see cref="InFeatures"/> is
    /// in * kh * kw (the kernel seen as a matrix), <see cref="Forward"/> takes and returns [N, C, H, W], and <see cref="DeltaWeight"/>
    /// is [out, in * kh * kw].</summary>
    public Conv2dShape? Conv { get; }

    /// <summary>The method's name in files ("LORA", "QUANTUM_PEFT").</summary>
    public abstract string PeftType { get; }

    protected AdapterBranch(string name, int inFeatures, int outFeatures) : base(name)
    {
        if (inFeatures < 1) throw new ArgumentOutOfRangeException(nameof(inFeatures), inFeatures, "in_features must be positive.");
        if (outFeatures < 1) throw new ArgumentOutOfRangeException(nameof(outFeatures), outFeatures, "out_features must be positive.");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
    }

    /// <summary>A branch on a Conv2d: in_features = in * kh * kw, out_features = out channels.</summary>
    protected AdapterBranch(string name, Conv2dShape conv) : this(name, conv.MatrixIn, conv.OutChannels) { Conv = conv; }

    /// <summary>A branch on a Linear (<paramref name="conv"/> null) or on a Conv2d whose matrix view is <paramref name="outFeatures"/> x <paramref name="inFeatures"/>.</summary>
    protected AdapterBranch(string name, int inFeatures, int outFeatures, Conv2dShape? conv) : this(name, inFeatures, outFeatures)
    {
        if (conv is not null && (conv.MatrixIn != inFeatures || conv.OutChannels != outFeatures))
            throw new ArgumentException($"a Conv2d branch of {conv} is {conv.OutChannels}x{conv.MatrixIn}, not {outFeatures}x{inFeatures}.", nameof(conv));
        Conv = conv;
    }

    /// <summary>The adapter's contribution to the layer output for input <paramref name="x"/> (..., in) -> (..., out).</summary>
    public abstract Tensor Forward(Tensor x);

    /// <summary>The dense weight update (out x in, float32) that merging adds to the base weight.</summary>
    public abstract Tensor DeltaWeight();

    /// <summary>The adapter's tensors as written to adapter_model.safetensors, keyed relative to the module path.</summary>
    public abstract Dictionary<string, Tensor> ExportState();

    /// <summary>Restores the tensors written by <see cref="ExportState"/>; <paramref name="keyPrefix"/> names keys in errors.</summary>
    /// <exception cref="InvalidDataException">A key is missing or a tensor has the wrong shape.</exception>
    public abstract void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix);

    /// <summary>True when the layer output is base(x) + <see cref="Forward"/>(x) (LoRA and most methods); false when the branch
    /// changes how the base layer itself is applied (IA3 scales its input or output, OFT rotates its input) and overrides <see cref="Compose"/>.</summary>
    public virtual bool IsAdditive => true;

    /// <summary>The adapted layer's output: <paramref name="baseForward"/>(x) + <see cref="Forward"/>(x) unless overridden.</summary>
    /// <param name="x">The layer input.</param>
    /// <param name="baseForward">The base layer's forward (or, with several active branches, the layer as the others left it).</param>
    public virtual Tensor Compose(Tensor x, Func<Tensor, Tensor> baseForward)
    {
        var y = baseForward(x);
        return y + Forward(x).to(y.dtype);
    }

    /// <summary>Adds this branch's update into the base layer's weight (seen [out, in]) and bias; the default adds <see cref="DeltaWeight"/>.</summary>
    public virtual void MergeInto(Tensor weightOutIn, Tensor? bias) => weightOutIn.add_(DeltaWeight().to(weightOutIn.dtype).to(weightOutIn.device));

    /// <summary>Undoes <see cref="MergeInto"/>; the default subtracts <see cref="DeltaWeight"/>.</summary>
    public virtual void UnmergeFrom(Tensor weightOutIn, Tensor? bias) => weightOutIn.sub_(DeltaWeight().to(weightOutIn.dtype).to(weightOutIn.device));

    // Held outside TorchSharp's module registry so that the base weights never enter this branch's state dict.
    private readonly System.Runtime.CompilerServices.StrongBox<nn.Module<Tensor, Tensor>?> baseLayer = new(null);

    /// <summary>The frozen layer this branch is attached to (set by <see cref="AdaptedLinear.AddAdapter"/>), or null before that.</summary>
    protected nn.Module<Tensor, Tensor>? AttachedLayer => baseLayer.Value;

    /// <summary>Tells the branch which frozen layer it adapts (methods whose update depends on the base weight use it).</summary>
    public void Attach(nn.Module<Tensor, Tensor> layer) => baseLayer.Value = layer ?? throw new ArgumentNullException(nameof(layer));

    /// <summary>Number of adapter parameters (trainable numbers) of this branch.</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>Size in bits when the branch is quantized (post-training or quantization-aware), otherwise null.</summary>
    public virtual long? QuantizedBits => null;

    /// <summary>
    /// Names (as in named_parameters) of the parameters that scale the update rather than shape it, such as
    /// Quantum-PEFT's lambda: the trainer can give them their own learning rate. Default: none.
    /// </summary>
    public virtual IReadOnlyList<string> ScaleParameterNames => [];

    /// <summary>Checks one stored tensor against the expected shape, naming the key and both shapes.</summary>
    protected static Tensor Require(IReadOnlyDictionary<string, Tensor> state, string key, string keyPrefix, params long[] shape)
    {
        if (!state.TryGetValue(key, out var t))
            throw new InvalidDataException($"Adapter key '{keyPrefix}{key}' is missing from the file.");
        if (!t.shape.SequenceEqual(shape))
            throw new InvalidDataException(
                $"Adapter key '{keyPrefix}{key}' has shape [{string.Join(", ", t.shape)}] in the file but the model expects [{string.Join(", ", shape)}] " +
                "(was the adapter trained on a different base model or rank?).");
        return t;
    }
}
