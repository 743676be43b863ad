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

    /// <summary>The method's name in files ("LORA", "QUANTUM_PEFT").</summary>
    public abstract string PeftType { get; }

    protected AdapterBranch(string name, int inFeatures, int outFeatures) : base(name)
    {
        if (inFeatures < 1) throw new ArgumentOutOfRangeException(nameof(inFeatures), inFeatures, "in_features must be positive.");
        if (outFeatures < 1) throw new ArgumentOutOfRangeException(nameof(outFeatures), outFeatures, "out_features must be positive.");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
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

    /// <summary>Number of adapter parameters (trainable numbers) of this branch.</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>Size in bits when the branch is quantized (post-training or quantization-aware), otherwise null.</summary>
    public virtual long? QuantizedBits => null;

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
