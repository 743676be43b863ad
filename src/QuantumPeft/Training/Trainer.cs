using System.Diagnostics;
using System.Text.Json;
using QuantumPeft.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>
/// The one training loop, for every kind of fine-tuning (<see cref="ITrainingObjective{TExample}"/>): AdamW over two
/// learning-rate groups (adapter, head), linear warm-up and decay per step, gradient clipping, the objective's loss,
/// validation each epoch with keep-best, a final test evaluation, atomic checkpoints and exact resume.
/// </summary>
/// <remarks>
/// Repeatability: the torch generator is seeded from (seed, step) before every step and the batch order from
/// (seed, epoch), so a run resumed from any checkpoint takes the same steps as one that never stopped.
/// </remarks>
public class Trainer<TExample>
{
    readonly ITrainingObjective<TExample> _objective;
    readonly TrainerOptions _options;
    readonly IProgress<TrainingProgress>? _progress;

    /// <summary>Prepares a run; nothing happens until <see cref="Run"/>.</summary>
    public Trainer(ITrainingObjective<TExample> objective, TrainerOptions options, IProgress<TrainingProgress>? progress = null)
    {
        _objective = objective ?? throw new ArgumentNullException(nameof(objective));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _options.Validate();
        _progress = progress;
        if (objective.Train.Count == 0) throw new ArgumentException($"Task '{objective.TaskName}' has no training examples.", nameof(objective));
        if (objective.Validation.Count == 0) throw new ArgumentException($"Task '{objective.TaskName}' has no validation examples.", nameof(objective));
        var overlap = objective.AdapterParameters.Where(p => objective.HeadParameters.Any(h => ReferenceEquals(h, p))).Count();
        if (overlap > 0) throw new ArgumentException($"{overlap} parameter(s) are in both AdapterParameters and HeadParameters; each must be in one group.", nameof(objective));
        if (objective.AdapterParameters.Count + objective.HeadParameters.Count == 0)
            throw new ArgumentException("The model has no trainable parameters (AdapterParameters and HeadParameters are empty).", nameof(objective));
    }

    /// <summary>The steps per epoch for this task and batch size.</summary>
    public int StepsPerEpoch => (_objective.Train.Count + _options.BatchSize - 1) / _options.BatchSize;

    /// <summary>The optimiser steps of the whole run (epochs x steps per epoch, capped by MaxSteps).</summary>
    public int TotalSteps => _options.PlannedSteps(_objective.Train.Count);

    /// <summary>Trains, evaluates on test with the best (or last) state, writes outputs, and returns the figures.</summary>
    /// <exception cref="TrainingDivergedException">The loss became NaN or infinite.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled; resume from the last checkpoint.</exception>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        var o = _options;
        int stepsPerEpoch = StepsPerEpoch, totalSteps = TotalSteps;
        int warmup = Math.Min(totalSteps, o.WarmupSteps ?? (int)Math.Ceiling(o.WarmupRatio * totalSteps));
        torch.manual_seed(o.Seed);

        var setup = CreateOptimizer(_objective, o);
        using var optimizer = setup.Optimizer;
        var groups = setup.Groups;
        var lrControllers = optimizer.ParamGroups.ToList();
        var allParams = groups.SelectMany(g => g.Params).ToList();

        var state = new TrainerState
        {
            Epoch = 1, TotalSteps = totalSteps, StepsPerEpoch = stepsPerEpoch, TrainCount = _objective.Train.Count,
            BatchSize = o.BatchSize, Seed = o.Seed, Task = _objective.TaskName, MainMetric = _objective.MainMetric,
        };
        Dictionary<string, Tensor>? best = null;
        if (o.Resume && TrainingCheckpoint.Exists(o.OutputDir!))
        {
            var (saved, trainable, savedBest) = TrainingCheckpoint.Load(o.OutputDir!, optimizer);
            CheckCompatible(saved, state);
            _objective.LoadTrainableState(trainable);
            foreach (var t in trainable.Values) t.Dispose();
            state = saved;
            best = savedBest;
        }
        var history = state.History;
        var metricsLog = o.OutputDir is null ? null : Path.Combine(o.OutputDir, "metrics.jsonl");
        if (metricsLog is not null)
        {
            Directory.CreateDirectory(o.OutputDir!);
            // Lines written after the checkpoint by an interrupted run are dropped: the log matches the state.
            Formats.AtomicFile.WriteAllText(metricsLog, string.Concat(history.Select(h => JsonSerializer.Serialize(h, TrainingCheckpoint.Json) + "\n")));
        }
        void Log(TrainingLogEntry entry)
        {
            history.Add(entry);
            if (metricsLog is not null) File.AppendAllText(metricsLog, JsonSerializer.Serialize(entry, TrainingCheckpoint.Json) + "\n");
        }

        int step = state.Step, epoch = state.Epoch, batchStart = state.BatchInEpoch, epochsDone = state.EpochsDone;
        double? bestMetric = state.BestMetric;
        int bestEpoch = state.BestEpoch;
        // Times optimiser steps only (not evaluations or checkpoints): throughput and ETA are about training.
        var clock = new Stopwatch();
        bool onCuda = _objective.Device.type == DeviceType.CUDA;
        long examplesSeen = 0;
        int stepsThisProcess = 0;
        double windowLoss = 0;
        int windowSteps = 0;
        double lastLoss = double.NaN;

        TrainerState Snapshot(int nextEpoch, int nextBatch) => state with
        {
            Step = step, Epoch = nextEpoch, BatchInEpoch = nextBatch, EpochsDone = epochsDone,
            BestMetric = bestMetric, BestEpoch = bestEpoch, History = history,
        };
        void Checkpoint(int nextEpoch, int nextBatch)
        {
            if (o.OutputDir is null) return;
            var trainable = _objective.GetTrainableState();
            TrainingCheckpoint.Save(o.OutputDir, Snapshot(nextEpoch, nextBatch), trainable, best, optimizer);
        }
        double AdapterLr() => lrControllers[0].LearningRate;
        double ExamplesPerSecond() => clock.Elapsed.TotalSeconds > 0 ? examplesSeen / clock.Elapsed.TotalSeconds : 0;

        for (; epoch <= o.Epochs && step < totalSteps; epoch++, batchStart = 0)
        {
            var order = SeededOrder.EpochOrder(_objective.Train.Count, o.Seed, epoch);
            _objective.SetTraining(true);
            for (int b = batchStart; b < stepsPerEpoch && step < totalSteps; b++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var batch = order[(b * o.BatchSize)..Math.Min(order.Length, (b + 1) * o.BatchSize)].Select(i => _objective.Train[i]).ToList();
                var factor = LinearSchedule.Factor(step, warmup, totalSteps);
                for (int g = 0; g < groups.Count; g++) lrControllers[g].LearningRate = groups[g].Lr * factor;
                var stepSeed = SeededOrder.Derive(o.Seed, 1_000_000L + step);
                torch.manual_seed(stepSeed);
                if (onCuda) torch.cuda.manual_seed_all(stepSeed);

                double lossValue;
                clock.Start();
                lossValue = Step(_objective, optimizer, allParams, batch, o.MaxGradNorm, step + 1, epoch);
                clock.Stop();
                step++;
                _objective.AfterStep(step);
                stepsThisProcess++;
                examplesSeen += batch.Count;
                windowLoss += lossValue;
                windowSteps++;
                lastLoss = windowLoss / windowSteps;
                var eta = stepsThisProcess > 0 ? TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / stepsThisProcess * (totalSteps - step)) : (TimeSpan?)null;
                _progress?.Report(new TrainingProgress("train", step, totalSteps, epoch, o.Epochs, lastLoss, ExamplesPerSecond(), eta, AdapterLr()));
                bool endOfEpoch = b == stepsPerEpoch - 1 || step == totalSteps;
                if (step % o.LogEverySteps == 0 || endOfEpoch)
                {
                    Log(new TrainingLogEntry("train", step, epoch, lastLoss, AdapterLr(), ExamplesPerSecond()));
                    windowLoss = 0;
                    windowSteps = 0;
                }
                if (o.CheckpointEverySteps > 0 && step % o.CheckpointEverySteps == 0 && !endOfEpoch) Checkpoint(epoch, b + 1);
            }

            epochsDone = epoch;
            if (o.EvaluateEachEpoch || step >= totalSteps || epoch == o.Epochs)
            {
                var metrics = EvaluateAndLog("validation", _objective.Validation, step, epoch, Log);
                var value = metrics[_objective.MainMetric];
                if (bestMetric is null || (_objective.LowerIsBetter ? value < bestMetric : value > bestMetric))
                {
                    bestMetric = value;
                    bestEpoch = epoch;
                    if (o.KeepBest) best = Clone(_objective.GetTrainableState(), best);
                }
            }
            Checkpoint(epoch + 1, 0);
        }
        var trainSeconds = clock.Elapsed.TotalSeconds;

        if (o.KeepBest && best is not null) _objective.LoadTrainableState(best);
        var testMetrics = EvaluateAndLog("test", _objective.Test, step, epochsDone, Log);
        if (best is not null) foreach (var t in best.Values) t.Dispose();

        var result = new TrainingResult(_objective.TaskName, _objective.MainMetric, bestMetric ?? double.NaN, bestEpoch, _objective.MainMetric,
            testMetrics[_objective.MainMetric], testMetrics, trainSeconds, trainSeconds > 0 ? examplesSeen / trainSeconds : 0,
            step, epochsDone, history.ToList());
        if (o.OutputDir is not null)
        {
            Formats.AtomicFile.WriteAllText(Path.Combine(o.OutputDir, "result.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions(TrainingCheckpoint.Json) { WriteIndented = true }));
            TrainingPlot.Save(Path.Combine(o.OutputDir, "training.png"), history, _objective.TaskName, _objective.MainMetric);
        }
        return result;

        Dictionary<string, double> EvaluateAndLog(string split, IReadOnlyList<TExample> examples, int atStep, int atEpoch, Action<TrainingLogEntry> log)
        {
            _progress?.Report(new TrainingProgress("evaluating", atStep, totalSteps, Math.Max(1, atEpoch), o.Epochs, lastLoss, ExamplesPerSecond(), null, AdapterLr(), Split: split));
            var metrics = Evaluate(examples);
            log(new TrainingLogEntry("eval", atStep, atEpoch, Split: split, Metrics: metrics));
            _progress?.Report(new TrainingProgress("eval", atStep, totalSteps, Math.Max(1, atEpoch), o.Epochs, lastLoss, ExamplesPerSecond(), null, AdapterLr(), metrics, split));
            return metrics;
        }
    }

    /// <summary>
    /// AdamW over the run's learning-rate groups: the adapter's first (its rate is the one reported), the scale parameters
    /// split off only when <see cref="TrainerOptions.ScaleLearningRate"/> is set, then the head's.
    /// </summary>
    public static (AdamW Optimizer, IReadOnlyList<(IReadOnlyList<Parameter> Params, double Lr)> Groups) CreateOptimizer(
        ITrainingObjective<TExample> objective, TrainerOptions o)
    {
        var groups = new List<(IReadOnlyList<Parameter> Params, double Lr)>();
        var scale = o.ScaleLearningRate is null ? [] : objective.ScaleParameters.ToHashSet(ReferenceEqualityComparer.Instance);
        var shape = objective.AdapterParameters.Where(p => !scale.Contains(p)).ToList();
        if (shape.Count > 0) groups.Add((shape, o.AdapterLearningRate));
        if (scale.Count > 0) groups.Add((objective.AdapterParameters.Where(p => scale.Contains(p)).ToList(), o.ScaleLearningRate!.Value));
        if (objective.HeadParameters.Count > 0) groups.Add((objective.HeadParameters, o.HeadLearningRate));
        if (groups.Count == 0) throw new ArgumentException("The model has no trainable parameters (AdapterParameters and HeadParameters are empty).", nameof(objective));
        var optimizer = optim.AdamW(
            groups.Select(g => new AdamW.ParamGroup(g.Params, new AdamW.Options { LearningRate = g.Lr, weight_decay = o.WeightDecay })),
            lr: groups[0].Lr, weight_decay: o.WeightDecay);
        return (optimizer, groups);
    }

    /// <summary>
    /// One optimiser step on <paramref name="batch"/> in its own dispose scope: the objective's loss, backward, clipping to
    /// <paramref name="maxGradNorm"/> (off when 0 or less), AdamW.
    /// </summary>
    /// <param name="stepNumber">The 1-based step and <paramref name="epoch"/> its epoch, named by the error on a NaN loss.</param>
    /// <returns>The batch's loss.</returns>
    /// <exception cref="TrainingDivergedException">The loss is NaN or infinite (checked before the backward pass, so nothing is stepped).</exception>
    public static double Step(ITrainingObjective<TExample> objective, optim.Optimizer optimizer, IReadOnlyList<Parameter> parameters,
        IReadOnlyList<TExample> batch, double maxGradNorm, int stepNumber, int epoch)
    {
        using var scope = torch.NewDisposeScope();
        optimizer.zero_grad();
        var loss = objective.Loss(batch);
        double value = loss.item<float>();
        if (!double.IsFinite(value)) throw new TrainingDivergedException(stepNumber, epoch, value);
        loss.backward();
        if (maxGradNorm > 0) nn.utils.clip_grad_norm_(parameters, maxGradNorm);
        NoGcRegion.Run(() => optimizer.step());
        return value;
    }

    /// <summary>Evaluates <paramref name="examples"/> with the objective's metrics (eval mode, no gradients), then returns to training mode.</summary>
    public Dictionary<string, double> Evaluate(IReadOnlyList<TExample> examples)
    {
        var metrics = _objective.Evaluate(examples, _options.EvalBatchSize ?? 2 * _options.BatchSize);
        if (!metrics.ContainsKey(_objective.MainMetric))
            throw new InvalidOperationException($"Task '{_objective.TaskName}': the evaluation gave no '{_objective.MainMetric}' (it gave {string.Join(", ", metrics.Keys)}).");
        _objective.SetTraining(true);
        return metrics;
    }

    static Dictionary<string, Tensor> Clone(IReadOnlyDictionary<string, Tensor> state, Dictionary<string, Tensor>? previous)
    {
        if (previous is not null) foreach (var t in previous.Values) t.Dispose();
        return state.ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().clone().DetachFromDisposeScope());
    }

    static void CheckCompatible(TrainerState saved, TrainerState now)
    {
        if (saved.Task != now.Task || saved.TrainCount != now.TrainCount || saved.BatchSize != now.BatchSize
            || saved.Seed != now.Seed || saved.TotalSteps != now.TotalSteps)
            throw new InvalidOperationException(
                $"Cannot resume: the checkpoint was made for task '{saved.Task}' ({saved.TrainCount} train examples), batch size {saved.BatchSize}, " +
                $"seed {saved.Seed}, {saved.TotalSteps} steps; this run has '{now.Task}' ({now.TrainCount}), batch size {now.BatchSize}, " +
                $"seed {now.Seed}, {now.TotalSteps} steps. Use the same settings, or a new output folder.");
    }

}

/// <summary>Fine-tunes an <see cref="ITrainableClassifier"/> on a <see cref="TextTask"/> (classification or regression) with the one loop of <see cref="Trainer{TExample}"/>.</summary>
public sealed class Trainer(ITrainableClassifier model, TextTask task, TrainerOptions options, IProgress<TrainingProgress>? progress = null)
    : Trainer<TextExample>(new ClassificationObjective(model, task, options?.LabelSmoothing ?? 0), options!, progress);
