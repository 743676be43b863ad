using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>What an adapter method adds to a training step (AdaLoRA: an orthogonality penalty in the loss, the rank allocator after each optimizer step).</summary>
public interface IAdapterTrainingHook
{
    /// <summary>A term added to the loss (with gradients), or null.</summary>
    Tensor? Regularization();

    /// <summary>Called after optimizer step <paramref name="step"/> (1-based), before the gradients are zeroed.</summary>
    void AfterOptimizerStep(int step);
}
