using QuantumPeft.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>What the trainer needs from a model being fine-tuned on a text task.</summary>
public interface ITrainableClassifier
{
    /// <summary>Logits [B, numLabels] (regression: [B, 1]) for a batch, on the model's device. Honours Train/Eval mode.</summary>
    Tensor Forward(IReadOnlyList<TextExample> batch);

    /// <summary>Adapter (or, for full fine-tuning, backbone) parameters: the first learning-rate group.</summary>
    IReadOnlyList<Parameter> AdapterParameters { get; }

    /// <summary>Head parameters (classifier, modules_to_save): the second learning-rate group.</summary>
    IReadOnlyList<Parameter> HeadParameters { get; }

    /// <summary>The adapter parameters that scale the update (Quantum-PEFT's lambda); see <see cref="ITrainingObjective{TExample}.ScaleParameters"/>. Default: none.</summary>
    IReadOnlyList<Parameter> ScaleParameters => [];

    /// <summary>Switches dropout and similar layers between training and evaluation behaviour.</summary>
    void SetTraining(bool training);

    /// <summary>The device the model's parameters live on; the trainer puts its labels there.</summary>
    Device Device { get; }

    /// <summary>Every trainable tensor by a stable name (for checkpoints and keep-best).</summary>
    IReadOnlyDictionary<string, Tensor> GetTrainableState();

    /// <summary>Copies tensors (possibly on the CPU) into the parameters of the same names, in place.</summary>
    void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state);

    /// <summary>The adapter method's training hook (AdaLoRA's allocator), created once per run; null by default.</summary>
    Tuners.IAdapterTrainingHook? CreateTrainingHook() => null;
}
