namespace QuantumPeft.Data;

/// <summary>A text task ready for training: its three splits, its labels and the metrics it is judged by.</summary>
/// <param name="Name">The task name as given to <see cref="TextTasks.Load"/> (e.g. "sentiment", "mnli-mm").</param>
/// <param name="Train">Training examples.</param>
/// <param name="Validation">Examples for model selection (keep-best, early comparisons).</param>
/// <param name="Test">Held-out examples for the final figure.</param>
/// <param name="NumLabels">Number of classes; 1 means regression (the label is a score).</param>
/// <param name="LabelNames">Class names by index (for regression: one entry, the score's name).</param>
/// <param name="MetricNames">Metrics reported for this task (names understood by <see cref="Metrics.Compute"/>).</param>
/// <param name="MainMetric">The metric used for keep-best and the headline figure; one of <paramref name="MetricNames"/>.</param>
public sealed record TextTask(
    string Name,
    IReadOnlyList<TextExample> Train,
    IReadOnlyList<TextExample> Validation,
    IReadOnlyList<TextExample> Test,
    int NumLabels,
    IReadOnlyList<string> LabelNames,
    IReadOnlyList<string> MetricNames,
    string MainMetric)
{
    /// <summary>True when the task predicts a score (one output) rather than a class.</summary>
    public bool IsRegression => NumLabels == 1;
}
