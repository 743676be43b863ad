using System.CommandLine;
using System.Globalization;
using QuantumPeft.Data;
using QuantumPeft.Models;
using QuantumPeft.Training;
using TorchSharp;

namespace QuantumPeft.Cli.Commands;

/// <summary>
/// <c>qpeft bench methods</c>: a grid of methods and settings on one task and model, several seeds each, one run after
/// another; resumable (runs.csv); writes methods.csv, methods.md and methods.png (test metric against adapter parameters).
/// </summary>
public sealed class BenchMethodsCommand : ICliCommand
{
    public string? Parent => "bench";

    /// <summary>
    /// The default grid: Quantum-PEFT as the library's default (L = 1, near-zero angles) and as <c>qpeft train</c>'s
    /// (L = 16, full-period angles, s = 8) and deeper (L = 32), LoRA r = 1, 2, 8, head only, full, and every baseline method.
    /// </summary>
    public static readonly IReadOnlyList<string> DefaultGrid =
    [
        "quantum", "quantum:layers=16:init=period:alpha=64", "quantum:layers=32:init=period", "lora:rank=1", "lora:rank=2", "lora:rank=8", "head", "full",
        .. FineTuneSpec.BaselineMethods.Keys,
    ];

    /// <summary>The entry the step times are compared with.</summary>
    public const string ReferenceEntry = "lora:rank=8";

    public Command Build()
    {
        var model = new Option<string>("--model") { DefaultValueFactory = _ => "minilm" };
        var task = new Option<string>("--task") { Description = $"A classification task: {string.Join(", ", TextTasks.Names)}.", DefaultValueFactory = _ => "sentiment" };
        var dataDir = new Option<string?>("--data-dir");
        var grid = new Option<string[]>("--grid")
        {
            Description = "Entries METHOD[:KEY=VALUE...] (comma-separated or repeated), e.g. quantum:rank=8:layers=2, lora:rank=1, vera:rank=256:lr=5e-3, head. " +
                "Keys: rank, layers, map, init_scale, alpha, targets, head, lr, head_lr, lambda_lr, or a config field of the method by peft's name (e.g. init=period). Default: " + string.Join(",", DefaultGrid) + ".",
            AllowMultipleArgumentsPerToken = true,
        };
        var rank = new Option<int>("--rank") { Description = "Rank of entries that name none (Quantum-PEFT K, LoRA r, AdaLoRA target_r, VeRA r, LoKr r).", DefaultValueFactory = _ => 8 };
        var seeds = new Option<string>("--seeds") { Description = "Comma-separated seeds; each entry runs once per seed.", DefaultValueFactory = _ => "42,43,44" };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 3 };
        var steps = new Option<int?>("--steps") { Description = "Stop each run after this many optimizer steps (the schedule spans them)." };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 16 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 64 };
        var threads = new Option<int?>("--threads");
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var outDir = new Option<string>("--out") { Description = "Output folder; runs already in its runs.csv (and step times in its steps.csv) are not run again.", DefaultValueFactory = _ => "out/bench-methods" };
        var timedSteps = new Option<int>("--timed-steps")
        {
            Description = $"After the runs, time each entry's training step against {ReferenceEntry}'s on this many batches of the training split, the two stepping in turn (steps.csv); 0: no step timing.",
            DefaultValueFactory = _ => 10,
        };
        var cmd = new Command("methods", "Train a grid of methods and settings on one task, several seeds each (resumable); writes runs.csv, methods.csv, methods.md and methods.png.");
        foreach (var o in new Option[] { model, task, dataDir, grid, rank, seeds, epochs, steps, batch, maxLength, threads, device, outDir, timedSteps }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            if (parse.GetValue(threads) is int t) torch.set_num_threads(t);
            var texts = parse.GetValue(grid) is { Length: > 0 } g ? g.SelectMany(s => s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).ToList() : DefaultGrid.ToList();
            var entries = texts.Select(s => GridEntry.Parse(s, parse.GetValue(rank))).ToList();
            var duplicate = entries.GroupBy(e => e.Label).FirstOrDefault(x => x.Count() > 1);
            if (duplicate is not null) throw new ArgumentException($"--grid: entry '{duplicate.Key}' is given twice.");
            var seedList = parse.GetValue(seeds)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(s => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"--seeds: '{s}' is not an integer.")).ToList();
            if (seedList.Count == 0) throw new ArgumentException("--seeds: give at least one seed.");
            int nEpochs = parse.GetValue(epochs);
            if (nEpochs < 1) throw new ArgumentException("--epochs must be at least 1.");
            if (parse.GetValue(steps) is < 1) throw new ArgumentException("--steps must be at least 1.");
            int nTimed = parse.GetValue(timedSteps);
            if (nTimed < 0) throw new ArgumentException($"--timed-steps must be 0 (no step timing) or more, got {nTimed}.");
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            var folder = ModelResolver.Resolve(parse.GetValue(model)!);
            var data = TextTasks.Load(parse.GetValue(task)!, parse.GetValue(dataDir));
            var dir = Path.GetFullPath(parse.GetValue(outDir)!);
            Directory.CreateDirectory(dir);
            var runsPath = Path.Combine(dir, "runs.csv");
            var done = MethodComparison.ReadRuns(runsPath);
            var stepsPath = Path.Combine(dir, "steps.csv");
            _ = MethodComparison.ReadStepTimes(stepsPath);   // a foreign or corrupt steps.csv is refused before hours of runs, not after
            var inv = CultureInfo.InvariantCulture;
            // One entry's trainer options and spec on one seed, for its runs and its step timing alike.
            (TrainerOptions, FineTuneSpec) RunSetup(GridEntry entry, long seed)
            {
                var options = new TrainerOptions
                {
                    Epochs = nEpochs, MaxSteps = parse.GetValue(steps), BatchSize = parse.GetValue(batch), AdapterLearningRate = entry.LearningRate,
                    HeadLearningRate = entry.HeadLearningRate, ScaleLearningRate = entry.ScaleLearningRate, Seed = seed,
                };
                return (options, entry.Spec with { Seed = seed, TotalSteps = options.PlannedSteps(data.Train.Count) });
            }
            int total = entries.Count * seedList.Count, index = 0;
            foreach (var entry in entries)
                foreach (var seed in seedList)
                {
                    index++;
                    if (done.Any(r => r.Entry == entry.Label && r.Seed == seed)) { Console.WriteLine($"[{index}/{total}] {entry.Label} seed {seed}: in runs.csv, skipped"); continue; }
                    torch.manual_seed(seed);
                    var (options, spec) = RunSetup(entry, seed);
                    using var classifier = new TextClassifier(folder, data.NumLabels, spec, parse.GetValue(maxLength), dev);
                    var result = new Trainer(classifier, data, options).Run();
                    var run = new ComparisonRun(entry.Label, spec.Method, seed, classifier.Counts().Adapter, result.Steps, result.TrainSeconds,
                        1000 * result.TrainSeconds / Math.Max(1, result.Steps), result.BestValidationMetric, result.TestMetric, entry.LearningRate);
                    MethodComparison.AppendRun(runsPath, run);
                    Console.WriteLine(string.Create(inv,
                        $"[{index}/{total}] {entry.Label} seed {seed}: adapter params {run.AdapterParameters:N0}, {run.MsPerStep:F1} ms/step, validation {result.MainMetric} {run.Validation:F4}, test {run.Test:F4}"));
                }
            if (nTimed > 0) TimeSteps(entries, data, folder, parse.GetValue(maxLength), nTimed, seedList[0], dev, stepsPath, RunSetup);
            var all = MethodComparison.ReadRuns(runsPath);
            var order = entries.Select(e => e.Label).Concat(all.Select(r => r.Entry)).Distinct().ToList();
            var rows = MethodComparison.Summarise(all, order, MethodComparison.ReadStepTimes(stepsPath));
            var stepsText = parse.GetValue(steps) is { } s ? string.Create(inv, $"at most {s} steps") : $"{nEpochs} epochs";
            var setting = string.Create(inv,
                $"Task {data.Name} (test metric {data.MainMetric}), model {folder}; {stepsText} of batch {parse.GetValue(batch)}, max length {parse.GetValue(maxLength)}, ") +
                string.Create(inv, $"seeds {string.Join(", ", seedList)}; each entry's learning rate (the method's default unless it names one), head lr {GridEntry.DefaultHeadLearningRate} unless named; ") +
                "the epoch with the best validation metric is kept and tested.";
            Formats.AtomicFile.WriteAllText(Path.Combine(dir, "methods.csv"), MethodComparison.ToCsv(rows));
            Formats.AtomicFile.WriteAllText(Path.Combine(dir, "methods.md"), MethodComparison.ToMarkdown(rows, $"Adapter methods on {data.Name}", setting, data.MainMetric, ReferenceEntry));
            MethodComparison.SavePlot(Path.Combine(dir, "methods.png"), rows, $"{data.Name}: test {data.MainMetric} against adapter parameters", data.MainMetric);
            Console.WriteLine($"wrote {runsPath}, {(File.Exists(stepsPath) ? "steps.csv, " : "")}methods.csv, methods.md and methods.png in {dir}");
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// Times each entry not yet in steps.csv against the reference entry on the same <paramref name="count"/> batches (the
    /// first of seed <paramref name="seed"/>'s epoch-1 order), the two stepping in turn; appends one line per entry. The models and
    /// optimisers are built as a run's (<paramref name="runSetup"/>), at the entries' peak learning rates.
    /// </summary>
    static void TimeSteps(IReadOnlyList<GridEntry> entries, TextTask data, string folder, int maxLength, int count, long seed, torch.Device dev, string stepsPath,
        Func<GridEntry, long, (TrainerOptions Options, FineTuneSpec Spec)> runSetup)
    {
        var done = MethodComparison.ReadStepTimes(stepsPath);
        var todo = entries.Where(e => done.All(t => t.Entry != e.Label)).ToList();
        if (todo.Count == 0) return;
        int batchSize = runSetup(entries[0], seed).Options.BatchSize;
        var order = SeededOrder.EpochOrder(data.Train.Count, seed, 1);
        var batches = Enumerable.Range(0, count)
            .Select(b => (IReadOnlyList<TextExample>)Enumerable.Range(b * batchSize, batchSize).Select(i => data.Train[order[i % order.Length]]).ToList()).ToList();
        (TextClassifier Model, ClassificationObjective Objective, TrainerOptions Options) Build(GridEntry entry)
        {
            torch.manual_seed(seed);
            var (options, spec) = runSetup(entry, seed);
            var classifier = new TextClassifier(folder, data.NumLabels, spec, maxLength, dev);
            return (classifier, new ClassificationObjective(classifier, data), options);
        }
        var reference = Build(GridEntry.Parse(ReferenceEntry));
        try
        {
            foreach (var entry in todo)
            {
                var candidate = Build(entry);
                try
                {
                    var times = StepTiming.Alternate([(candidate.Objective, candidate.Options), (reference.Objective, reference.Options)], batches, seed: seed);
                    var time = new SameBatchStepTime(entry.Label, count, Stiefel.StiefelBenchmark.Median(times[0]), Stiefel.StiefelBenchmark.Median(times[1]), torch.get_num_threads());
                    MethodComparison.AppendStepTime(stepsPath, time);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"step time {entry.Label}: {time.MedianMs:F1} ms, {ReferenceEntry} {time.ReferenceMedianMs:F1} ms on the same {count} batches (medians), ratio {time.Ratio:F3}"));
                }
                finally { candidate.Model.Dispose(); }
            }
        }
        finally { reference.Model.Dispose(); }
    }
}
