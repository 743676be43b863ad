using System.Diagnostics;
using QuantumPeft.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>
/// Training-step times of several runs on the same batches: the trainer's own step (<see cref="Trainer{TExample}.Step"/>:
/// its AdamW groups, clipping, the objective's loss and after-step hook), the runs stepping in turn, batch by batch,
/// with the order reversed every other batch, so that the drift of a shared machine hits them alike.
/// </summary>
public static class StepTiming
{
    /// <summary>
    /// One untimed warm-up step per run on the first batch, then every batch once per round, each run in turn.
    /// Before each step the torch generator is seeded from (<paramref name="seed"/>, batch), so two runs of the same
    /// model draw the same dropout masks and take the same steps.
    /// </summary>
    /// <returns>Per run, the milliseconds of each timed step (batches x rounds of them).</returns>
    public static List<double>[] Alternate<TExample>(IReadOnlyList<(ITrainingObjective<TExample> Objective, TrainerOptions Options)> runs,
        IReadOnlyList<IReadOnlyList<TExample>> batches, int rounds = 1, long seed = 42)
    {
        ArgumentNullException.ThrowIfNull(runs);
        ArgumentNullException.ThrowIfNull(batches);
        if (runs.Count == 0) throw new ArgumentException("Give at least one run to time.", nameof(runs));
        if (batches.Count == 0 || batches.Any(b => b.Count == 0)) throw new ArgumentException("Give at least one batch, none of them empty.", nameof(batches));
        if (rounds < 1) throw new ArgumentException($"rounds must be at least 1, got {rounds}.", nameof(rounds));
        var setups = runs.Select(r =>
        {
            var (optimizer, groups) = Trainer<TExample>.CreateOptimizer(r.Objective, r.Options);
            return (r.Objective, r.Options, Optimizer: optimizer, Parameters: groups.SelectMany(g => g.Params).ToList());
        }).ToList();
        try
        {
            var times = runs.Select(_ => new List<double>()).ToArray();
            var stepCounts = new int[runs.Count];
            void Step(int run, int batch, bool timed)
            {
                var s = setups[run];
                s.Objective.SetTraining(true);
                torch.manual_seed(SeededOrder.Derive(seed, 2_000_000L + batch));
                var clock = Stopwatch.StartNew();
                Trainer<TExample>.Step(s.Objective, s.Optimizer, s.Parameters, batches[batch], s.Options.MaxGradNorm, ++stepCounts[run], epoch: 1);
                s.Objective.AfterStep(stepCounts[run]);
                if (s.Objective.Device.type == DeviceType.CUDA) cuda.synchronize();
                if (timed) times[run].Add(clock.Elapsed.TotalMilliseconds);
            }
            for (int r = 0; r < runs.Count; r++) Step(r, 0, timed: false);
            for (int round = 0; round < rounds; round++)
                for (int b = 0; b < batches.Count; b++)
                    for (int k = 0; k < runs.Count; k++)
                        Step((round * batches.Count + b) % 2 == 0 ? k : runs.Count - 1 - k, b, timed: true);
            return times;
        }
        finally
        {
            foreach (var s in setups) s.Optimizer.Dispose();
        }
    }
}
