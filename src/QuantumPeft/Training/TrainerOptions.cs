namespace QuantumPeft.Training;

/// <summary>Settings of one fine-tuning run (AdamW with two learning-rate groups, linear warm-up and decay).</summary>
public sealed record TrainerOptions
{
    /// <summary>Passes over the training split.</summary>
    public int Epochs { get; init; } = 3;

    /// <summary>Training examples per optimiser step.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Examples per forward pass in evaluation; null means twice <see cref="BatchSize"/>.</summary>
    public int? EvalBatchSize { get; init; }

    /// <summary>Peak learning rate of the adapter (first) parameter group.</summary>
    public double AdapterLearningRate { get; init; } = 1e-3;

    /// <summary>Peak learning rate of the head (second) parameter group.</summary>
    public double HeadLearningRate { get; init; } = 1e-3;

    /// <summary>Decoupled (AdamW) weight decay, the same for both groups.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Share of the total steps spent warming the learning rate up linearly from 0.</summary>
    public double WarmupRatio { get; init; } = 0.06;

    /// <summary>Warm-up length in steps; when set it overrides <see cref="WarmupRatio"/>.</summary>
    public int? WarmupSteps { get; init; }

    /// <summary>Gradients are clipped to this global L2 norm; 0 or less turns clipping off.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Seed of the initial torch generator, the per-epoch shuffles and the per-step torch seeds.</summary>
    public long Seed { get; init; } = 42;

    /// <summary>Evaluate on the validation split after every epoch (else only once, at the end).</summary>
    public bool EvaluateEachEpoch { get; init; } = true;

    /// <summary>At the end, restore the trainable state with the best validation main metric before testing.</summary>
    public bool KeepBest { get; init; } = true;

    /// <summary>Folder for checkpoints, metrics.jsonl, training.png and result.json; null writes nothing.</summary>
    public string? OutputDir { get; init; }

    /// <summary>Continue from the last checkpoint in <see cref="OutputDir"/> (a fresh start if there is none).</summary>
    public bool Resume { get; init; }

    /// <summary>A metrics line (and a progress report with a log flag) every this-many steps.</summary>
    public int LogEverySteps { get; init; } = 10;

    /// <summary>Also checkpoint every this-many steps inside an epoch; 0 checkpoints at epoch ends only.</summary>
    public int CheckpointEverySteps { get; init; }

    /// <summary>Stop after this many optimiser steps in all (the schedule is laid out over this count).</summary>
    public int? MaxSteps { get; init; }

    /// <summary>
    /// Learning rate of the adapters' scale parameters (<see cref="ITrainingObjective{TExample}.ScaleParameters"/>: Quantum-PEFT's
    /// lambda) when set; otherwise they train at <see cref="AdapterLearningRate"/> with the rest of the adapter.
    /// </summary>
    public double? ScaleLearningRate { get; init; }

    /// <summary>Label smoothing of the cross-entropy loss (classification only).</summary>
    public double LabelSmoothing { get; init; }

    /// <summary>The optimiser steps of a run over <paramref name="trainCount"/> examples: epochs x steps per epoch, capped by <see cref="MaxSteps"/>.</summary>
    public int PlannedSteps(int trainCount) => Math.Min(Epochs * ((trainCount + BatchSize - 1) / BatchSize), MaxSteps ?? int.MaxValue);

    /// <summary>Throws an ArgumentException naming the first option out of range.</summary>
    public void Validate()
    {
        static void Check(bool ok, string name, object value, string expected)
        {
            if (!ok) throw new ArgumentException($"Trainer option {name} = {value}; expected {expected}.", name);
        }
        Check(Epochs >= 1, nameof(Epochs), Epochs, ">= 1");
        Check(BatchSize >= 1, nameof(BatchSize), BatchSize, ">= 1");
        Check(EvalBatchSize is null or >= 1, nameof(EvalBatchSize), EvalBatchSize!, ">= 1");
        Check(AdapterLearningRate >= 0 && double.IsFinite(AdapterLearningRate), nameof(AdapterLearningRate), AdapterLearningRate, "a finite value >= 0");
        Check(HeadLearningRate >= 0 && double.IsFinite(HeadLearningRate), nameof(HeadLearningRate), HeadLearningRate, "a finite value >= 0");
        Check(ScaleLearningRate is null or (>= 0 and < double.PositiveInfinity), nameof(ScaleLearningRate), ScaleLearningRate!, "a finite value >= 0");
        Check(WeightDecay >= 0, nameof(WeightDecay), WeightDecay, ">= 0");
        Check(WarmupRatio is >= 0 and <= 1, nameof(WarmupRatio), WarmupRatio, "between 0 and 1");
        Check(WarmupSteps is null or >= 0, nameof(WarmupSteps), WarmupSteps!, ">= 0");
        Check(LogEverySteps >= 1, nameof(LogEverySteps), LogEverySteps, ">= 1");
        Check(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), CheckpointEverySteps, ">= 0");
        Check(MaxSteps is null or >= 1, nameof(MaxSteps), MaxSteps!, ">= 1");
        Check(LabelSmoothing is >= 0 and < 1, nameof(LabelSmoothing), LabelSmoothing, "in [0, 1)");
        Check(!Resume || OutputDir is not null, nameof(Resume), Resume, "an OutputDir to resume from");
    }
}
