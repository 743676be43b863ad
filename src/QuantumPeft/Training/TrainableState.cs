using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>The named trainable parameters of a model being fine-tuned: listing them once, and restoring them from a checkpoint.</summary>
public static class TrainableState
{
    /// <summary>
    /// Every parameter of <paramref name="module"/> by name, each tensor once: a tied head is the embedding's own tensor and
    /// is listed under its first name only, or the optimiser would step it twice.
    /// </summary>
    public static List<(string Name, Parameter Parameter)> Distinct(nn.Module module) => Tuners.ModuleTree.DistinctParameters(module);

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
