using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>
/// What one kind of fine-tuning (classification, regression, causal LM, ...) hands the one training loop of
/// <see cref="Trainer{TExample}"/>: the data, the loss of a batch, the evaluation of a split and the trainable state.
/// </summary>
/// <typeparam name="TExample">One training example (a labelled text, a prompt with its completion, ...).</typeparam>
public interface ITrainingObjective<TExample>
{
    /// <summary>The task name (checkpoints refuse to resume another task's run).</summary>
    string TaskName { get; }

    /// <summary>Training examples (shuffled per epoch by the trainer).</summary>
    IReadOnlyList<TExample> Train { get; }

    /// <summary>Examples for keep-best and model selection.</summary>
    IReadOnlyList<TExample> Validation { get; }

    /// <summary>Held-out examples for the final figure.</summary>
    IReadOnlyList<TExample> Test { get; }

    /// <summary>The metric of <see cref="Evaluate"/> that selects the best epoch.</summary>
    string MainMetric { get; }

    /// <summary>True when a smaller <see cref="MainMetric"/> is better (a loss, a perplexity).</summary>
    bool LowerIsBetter { get; }

    /// <summary>Adapter (or, for full fine-tuning, backbone) parameters: the first learning-rate group.</summary>
    IReadOnlyList<Parameter> AdapterParameters { get; }

    /// <summary>Head parameters (classifier, modules_to_save): the second learning-rate group.</summary>
    IReadOnlyList<Parameter> HeadParameters { get; }

    /// <summary>
    /// The adapter parameters that scale the update rather than shape it (Quantum-PEFT's lambda), a subset of
    /// <see cref="AdapterParameters"/>: their own learning-rate group when <see cref="TrainerOptions.ScaleLearningRate"/> is set. Default: none.
    /// </summary>
    IReadOnlyList<Parameter> ScaleParameters => [];

    /// <summary>The device of the model's parameters.</summary>
    Device Device { get; }

    /// <summary>Switches dropout and similar layers between training and evaluation behaviour.</summary>
    void SetTraining(bool training);

    /// <summary>The scalar training loss of a batch (with gradients), in training mode.</summary>
    Tensor Loss(IReadOnlyList<TExample> batch);

    /// <summary>Every metric of the task on <paramref name="examples"/> (eval mode, no gradients); must contain <see cref="MainMetric"/>.</summary>
    Dictionary<string, double> Evaluate(IReadOnlyList<TExample> examples, int batchSize);

    /// <summary>Every trainable tensor by a stable name (for checkpoints and keep-best).</summary>
    IReadOnlyDictionary<string, Tensor> GetTrainableState();

    /// <summary>Copies tensors (possibly on the CPU) into the parameters of the same names, in place.</summary>
    void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state);

    /// <summary>Called after every optimiser step with the 1-based step count (e.g. for AdaLoRA's rank allocator); default: nothing.</summary>
    void AfterStep(int step) { }
}

/// <summary>Classification and regression of texts: an <see cref="ITrainableClassifier"/> on a <see cref="Data.TextTask"/>.</summary>
public sealed class ClassificationObjective : ITrainingObjective<Data.TextExample>
{
    readonly ITrainableClassifier _model;
    readonly Data.TextTask _task;
    readonly double _labelSmoothing;
    readonly Tuners.IAdapterTrainingHook? _hook;

    /// <summary>Cross-entropy (with <paramref name="labelSmoothing"/>) for classes, MSE for a regression task, plus the adapter method's regulariser (AdaLoRA).</summary>
    public ClassificationObjective(ITrainableClassifier model, Data.TextTask task, double labelSmoothing = 0)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _task = task ?? throw new ArgumentNullException(nameof(task));
        _labelSmoothing = labelSmoothing;
        _hook = model.CreateTrainingHook();
        if (!task.MetricNames.Contains(task.MainMetric))
            throw new ArgumentException($"Task '{task.Name}': main metric '{task.MainMetric}' is not among its metrics ({string.Join(", ", task.MetricNames)}).", nameof(task));
    }

    public string TaskName => _task.Name;
    public IReadOnlyList<Data.TextExample> Train => _task.Train;
    public IReadOnlyList<Data.TextExample> Validation => _task.Validation;
    public IReadOnlyList<Data.TextExample> Test => _task.Test;
    public string MainMetric => _task.MainMetric;
    public bool LowerIsBetter => false;
    public IReadOnlyList<Parameter> AdapterParameters => _model.AdapterParameters;
    public IReadOnlyList<Parameter> HeadParameters => _model.HeadParameters;
    public IReadOnlyList<Parameter> ScaleParameters => _model.ScaleParameters;
    public Device Device => _model.Device;
    public void SetTraining(bool training) => _model.SetTraining(training);
    public IReadOnlyDictionary<string, Tensor> GetTrainableState() => _model.GetTrainableState();
    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state) => _model.LoadTrainableState(state);

    public Dictionary<string, double> Evaluate(IReadOnlyList<Data.TextExample> examples, int batchSize) =>
        ClassifierEvaluation.Evaluate(_model, _task, examples, batchSize);

    public void AfterStep(int step) => _hook?.AfterOptimizerStep(step);

    public Tensor Loss(IReadOnlyList<Data.TextExample> batch)
    {
        var loss = TaskLoss(batch);
        return _hook?.Regularization() is { } extra ? loss + extra : loss;
    }

    Tensor TaskLoss(IReadOnlyList<Data.TextExample> batch)
    {
        var logits = _model.Forward(batch);
        var labels = batch.Select(e => e.Label).ToArray();
        if (_task.IsRegression)
        {
            var target = torch.tensor(labels, device: logits.device);
            return nn.functional.mse_loss(logits.reshape(-1), target);
        }
        if (logits.ndim != 2 || logits.shape[0] != batch.Count || logits.shape[1] != _task.NumLabels)
            throw new InvalidOperationException($"The model returned logits of shape [{string.Join(", ", logits.shape)}]; expected [{batch.Count}, {_task.NumLabels}].");
        var classes = torch.tensor(labels.Select(l => (long)l).ToArray(), device: logits.device);
        return nn.functional.cross_entropy(logits, classes, label_smoothing: _labelSmoothing);
    }
}
