using QuantumPeft.Data;
using QuantumPeft.Data.Images;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>
/// Image classification for the one training loop: label-smoothed cross-entropy (plus the adapter method's regulariser), accuracy
/// and mean loss for evaluation, and optional augmentation of the training batches.
/// </summary>
/// <remarks>
/// Augmentation seeds: the trainer seeds torch from (seed, step) before every step, so one number drawn from torch's generator
/// at the start of <see cref="Loss"/> is a function of (seed, step), and each example's seed is derived from it and its place in
/// the batch. The batch of a step is itself a function of (seed, epoch), so a resumed run augments every image as the uninterrupted one did.
/// </remarks>
public sealed class ImageClassificationObjective : ITrainingObjective<ImageExample>
{
    readonly ImageClassifierFineTuner _model;
    readonly ImageTask _task;
    readonly double _labelSmoothing;
    readonly ImageAugmentation? _augmentation;
    readonly Tuners.IAdapterTrainingHook? _hook;

    /// <summary>Checks that the model's head has the task's classes.</summary>
    public ImageClassificationObjective(ImageClassifierFineTuner model, ImageTask task, double labelSmoothing = 0, ImageAugmentation? augmentation = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _task = task ?? throw new ArgumentNullException(nameof(task));
        if (labelSmoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "label smoothing must be in [0, 1).");
        if (model.Model.NumLabels != task.NumLabels)
            throw new ArgumentException($"the model's head has {model.Model.NumLabels} classes, task '{task.Name}' has {task.NumLabels}.", nameof(task));
        _labelSmoothing = labelSmoothing;
        _augmentation = augmentation;
        _hook = model.CreateTrainingHook();
    }

    public string TaskName => _task.Name;
    public IReadOnlyList<ImageExample> Train => _task.Train;
    public IReadOnlyList<ImageExample> Validation => _task.Validation;
    public IReadOnlyList<ImageExample> Test => _task.Test;
    public string MainMetric => ImageTask.MainMetric;
    public bool LowerIsBetter => false;
    public IReadOnlyList<Parameter> AdapterParameters => _model.AdapterParameters;
    public IReadOnlyList<Parameter> HeadParameters => _model.HeadParameters;
    public IReadOnlyList<Parameter> ScaleParameters => _model.ScaleParameters;
    public Device Device => _model.Device;
    public void SetTraining(bool training) => _model.SetTraining(training);
    public IReadOnlyDictionary<string, Tensor> GetTrainableState() => _model.GetTrainableState();
    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state) => _model.LoadTrainableState(state);
    public void AfterStep(int step) => _hook?.AfterOptimizerStep(step);

    public Dictionary<string, double> Evaluate(IReadOnlyList<ImageExample> examples, int batchSize) => _model.Evaluate(examples, batchSize);

    /// <summary>The batch as trained on: augmented when augmentation is on (draws one number from torch's CPU generator).</summary>
    public IReadOnlyList<ImageExample> Augment(IReadOnlyList<ImageExample> batch)
    {
        if (_augmentation is null) return batch;
        using var draw = torch.randint(int.MaxValue, [1], dtype: ScalarType.Int64);
        var seed = draw.item<long>();
        return batch.Select((e, j) => _augmentation.Apply(e, SeededOrder.Derive(seed, j))).ToList();
    }

    public Tensor Loss(IReadOnlyList<ImageExample> batch)
    {
        var logits = _model.Logits(Augment(batch));
        _model.CheckLogits(logits, batch.Count);
        var labels = torch.tensor(batch.Select(e => (long)e.Label).ToArray(), device: logits.device);
        var loss = nn.functional.cross_entropy(logits, labels, label_smoothing: _labelSmoothing);
        return _hook?.Regularization() is { } extra ? loss + extra : loss;
    }
}
