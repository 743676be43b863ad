using QuantumPeft.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>Evaluates a classifier on a task's examples with the task's metrics: the code the trainer and <c>qpeft eval</c> share.</summary>
public static class ClassifierEvaluation
{
    /// <summary>The split names <see cref="Split"/> accepts.</summary>
    public static readonly IReadOnlyList<string> Splits = ["test", "validation"];

    /// <summary>The trainer's evaluation batch size when none is given (twice the training batch of 16).</summary>
    public const int DefaultBatchSize = 32;

    /// <summary>Predicts every example (eval mode, no gradients; the model is left in eval mode) and computes the task's metrics.</summary>
    public static Dictionary<string, double> Evaluate(ITrainableClassifier model, TextTask task, IReadOnlyList<TextExample> examples, int batchSize = DefaultBatchSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(examples);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1.");
        if (examples.Count == 0) throw new ArgumentException($"task '{task.Name}': no examples to evaluate.", nameof(examples));
        var predictions = new float[examples.Count];
        model.SetTraining(false);
        using (torch.no_grad())
        {
            for (int start = 0; start < examples.Count; start += batchSize)
            {
                using var scope = torch.NewDisposeScope();
                var batch = Enumerable.Range(start, Math.Min(batchSize, examples.Count - start)).Select(i => examples[i]).ToList();
                var logits = model.Forward(batch);
                var predicted = task.IsRegression ? logits.reshape(-1) : logits.argmax(-1);
                var values = predicted.to_type(ScalarType.Float32).cpu().data<float>().ToArray();
                if (values.Length != batch.Count)
                    throw new InvalidOperationException($"The model returned {values.Length} predictions for a batch of {batch.Count}.");
                values.CopyTo(predictions, start);
            }
        }
        return Metrics.Compute(task.MetricNames, predictions, examples.Select(e => e.Label).ToArray());
    }

    /// <summary>The examples of split "test" or "validation" of <paramref name="task"/>.</summary>
    public static IReadOnlyList<TextExample> Split(TextTask task, string split) => split switch
    {
        "test" => task.Test,
        "validation" => task.Validation,
        _ => throw new ArgumentException($"unknown split '{split}' (valid: {string.Join(", ", Splits)}).", nameof(split)),
    };

    /// <summary>
    /// Metrics of a saved classifier on the named splits of <paramref name="task"/>, after checking that its output
    /// count matches the task's labels (<paramref name="source"/> names the saved classifier in the message).
    /// </summary>
    public static Dictionary<string, Dictionary<string, double>> EvaluateSplits(TextClassifier classifier, TextTask task,
        IEnumerable<string> splits, int batchSize = DefaultBatchSize, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        EnsureLabelsMatch(classifier.NumLabels, task, source ?? "the classifier");
        return splits.ToDictionary(s => s, s => Evaluate(classifier, task, Split(task, s), batchSize));
    }

    /// <summary>Throws an ArgumentException naming <paramref name="source"/> when a classifier of <paramref name="numLabels"/> outputs cannot serve <paramref name="task"/>.</summary>
    public static void EnsureLabelsMatch(int numLabels, TextTask task, string source)
    {
        if (numLabels == task.NumLabels) return;
        string What(int n) => n == 1 ? "1 output (regression)" : $"{n} labels";
        throw new ArgumentException($"{source} has a classifier for {What(numLabels)}, but task '{task.Name}' has {What(task.NumLabels)}: " +
            "expected an adapter or model trained on this task.", nameof(task));
    }
}
