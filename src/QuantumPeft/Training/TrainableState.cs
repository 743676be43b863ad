using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>The named trainable parameters of a model being fine-tuned: restoring them from a checkpoint (listed once by <see cref="Tuners.ModuleTree.DistinctParameters"/>).</summary>
public static class TrainableState
{
    /// <summary>Copies <paramref name="state"/> into <paramref name="parameters"/> by name; a missing name or another shape is an error naming it.</summary>
    public static void Load(IEnumerable<(string Name, Parameter Parameter)> parameters, IReadOnlyDictionary<string, Tensor> state)
    {
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
        {
            if (!state.TryGetValue(name, out var t)) throw new InvalidDataException($"trainable state has no tensor '{name}'.");
            if (!t.shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"trainable state '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", p.shape)}].");
            p.copy_(t);
        }
    }
}
