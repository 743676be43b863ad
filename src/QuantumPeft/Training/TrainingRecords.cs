namespace QuantumPeft.Training;

/// <summary>A progress report for a user interface: where the run is, how fast it goes, how the loss looks.</summary>
/// <param name="Phase">"train" during optimisation steps, "evaluating" before and "eval" after a validation or test evaluation.</param>
/// <param name="Step">Optimiser steps done so far (1-based after the first step).</param>
/// <param name="TotalSteps">Optimiser steps the run will take in all.</param>
/// <param name="Epoch">Current epoch, 1-based.</param>
/// <param name="Epochs">Epochs the run will take.</param>
/// <param name="Loss">Mean training loss since the last log line (NaN before the first step).</param>
/// <param name="ExamplesPerSecond">Training throughput of this process so far.</param>
/// <param name="Eta">Estimated time left for training, null until measurable.</param>
/// <param name="LearningRate">Current learning rate of the adapter group.</param>
/// <param name="Metrics">Metrics of the evaluation just done (Phase "eval"), else null.</param>
/// <param name="Split">The evaluated split ("validation" or "test") for Phases "evaluating" and "eval", else null.</param>
public sealed record TrainingProgress(
    string Phase, int Step, int TotalSteps, int Epoch, int Epochs, double Loss, double ExamplesPerSecond,
    TimeSpan? Eta, double LearningRate, IReadOnlyDictionary<string, double>? Metrics = null, string? Split = null);

/// <summary>One line of DIR/metrics.jsonl: a training log point ("train") or an evaluation ("eval").</summary>
public sealed record TrainingLogEntry(
    string Kind, int Step, int Epoch, double? Loss = null, double? LearningRate = null, double? ExamplesPerSecond = null,
    string? Split = null, IReadOnlyDictionary<string, double>? Metrics = null);

/// <summary>The outcome of <see cref="Trainer{TExample}.Run"/>.</summary>
/// <param name="Task">Task name.</param>
/// <param name="MainMetric">Name of the metric used for keep-best and the headline figure.</param>
/// <param name="BestValidationMetric">Best validation value of the main metric.</param>
/// <param name="BestEpoch">Epoch that reached it (the state restored when keep-best is on).</param>
/// <param name="TestMetricName">Name of the headline test metric (the main metric).</param>
/// <param name="TestMetric">Headline test value.</param>
/// <param name="TestMetrics">Every metric of the task on the test split.</param>
/// <param name="TrainSeconds">Wall-clock seconds spent in optimiser steps, evaluations and checkpoints excluded (this process only, on resume).</param>
/// <param name="ExamplesPerSecond">Training throughput of this process.</param>
/// <param name="Steps">Optimiser steps of the whole run.</param>
/// <param name="Epochs">Epochs of the whole run (an epoch cut short by MaxSteps counts).</param>
/// <param name="History">Every log and evaluation entry, the contents of metrics.jsonl.</param>
public sealed record TrainingResult(
    string Task, string MainMetric, double BestValidationMetric, int BestEpoch, string TestMetricName, double TestMetric,
    IReadOnlyDictionary<string, double> TestMetrics, double TrainSeconds, double ExamplesPerSecond, int Steps, int Epochs,
    IReadOnlyList<TrainingLogEntry> History);

/// <summary>Thrown when the loss becomes NaN or infinite; the last good checkpoint stays on disk.</summary>
public sealed class TrainingDivergedException(int step, int epoch, double loss)
    : Exception($"Training diverged: the loss is {loss} at step {step} (epoch {epoch}). " +
                "Lower the learning rate (or raise the warm-up, or clip gradients harder); " +
                "the last good checkpoint, if any, is kept and can be resumed.")
{
    /// <summary>The step (1-based) whose loss was not finite.</summary>
    public int Step { get; } = step;
    /// <summary>The epoch (1-based) of that step.</summary>
    public int Epoch { get; } = epoch;
    /// <summary>The loss value (NaN or infinite).</summary>
    public double Loss { get; } = loss;
}

/// <summary>The learning-rate schedule: linear warm-up to the peak, then linear decay to 0 at the last step.</summary>
public static class LinearSchedule
{
    /// <summary>
    /// Multiplier of the peak learning rate for the optimiser step with 0-based index <paramref name="step"/>:
    /// (step + 1) / warmup during warm-up (so the first step already moves), then (total - step) / (total - warmup).
    /// </summary>
    public static double Factor(int step, int warmupSteps, int totalSteps)
    {
        if (step < warmupSteps) return (step + 1.0) / warmupSteps;
        return Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmupSteps));
    }
}
