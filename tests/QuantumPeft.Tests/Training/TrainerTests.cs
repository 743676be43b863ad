using System.Text.Json;
using QuantumPeft.Data;
using QuantumPeft.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

public sealed class TrainerTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), $"qpeft-trainer-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A small slice of the real sentiment data: 320 train, 100 validation, 200 test sentences.</summary>
    static TextTask SentimentSlice()
    {
        var full = NpmTasks.LoadSentiment();
        return full with { Train = full.Train.Take(320).ToList(), Validation = full.Validation.Take(100).ToList(), Test = full.Test.Take(200).ToList() };
    }

    static TrainerOptions Options(string dir, int epochs = 2) => new()
    {
        Epochs = epochs, BatchSize = 16, AdapterLearningRate = 0.05, HeadLearningRate = 0.05, WeightDecay = 0.01,
        WarmupRatio = 0.1, MaxGradNorm = 1.0, Seed = 7, OutputDir = dir, LogEverySteps = 5,
    };

    static float MaxAbsDiff(IReadOnlyDictionary<string, Tensor> a, IReadOnlyDictionary<string, Tensor> b)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        return a.Keys.Max(k => (a[k] - b[k]).abs().max().item<float>());
    }

    [Fact]
    public void Training_on_real_sentiment_lowers_the_loss_and_writes_log_plot_and_result()
    {
        var task = SentimentSlice();
        var model = new HashedBagOfWords(task.NumLabels, seed: 1);
        var reports = new List<TrainingProgress>();
        var dir = Path.Combine(_dir, "run");
        var result = new Trainer(model, task, Options(dir, epochs: 4), new SyncProgress(reports.Add)).Run();

        var trainLogs = result.History.Where(h => h.Kind == "train").ToList();
        double first = trainLogs.First().Loss!.Value, last = trainLogs.Last().Loss!.Value;
        output.WriteLine($"loss {first:F4} (steps 1-5) -> {last:F4} (steps 76-80); best validation accuracy {result.BestValidationMetric:F3} " +
                         $"(epoch {result.BestEpoch}); test accuracy {result.TestMetric:F3}, f1 {result.TestMetrics["f1"]:F3}; {result.ExamplesPerSecond:F0} examples/s");
        // Starts near ln 2 = 0.693 (two balanced classes, small random weights); a bag of words learns this slice.
        Assert.InRange(first, 0.6, 0.75);
        Assert.True(last < first - 0.2, $"loss {first:F3} -> {last:F3} did not drop by 0.2");
        Assert.Equal(80, result.Steps); // 320 / 16 x 4 epochs
        Assert.Equal(4, result.Epochs);
        Assert.Equal("accuracy", result.TestMetricName);
        Assert.True(result.TestMetric > 0.6, $"test accuracy {result.TestMetric}");
        Assert.Equal(result.TestMetric, result.TestMetrics["accuracy"]);
        Assert.Contains("f1", result.TestMetrics.Keys);
        Assert.Equal(4, result.History.Count(h => h.Kind == "eval" && h.Split == "validation"));
        Assert.Equal(result.BestValidationMetric, result.History.Where(h => h.Split == "validation").Max(h => h.Metrics!["accuracy"]));

        // Progress: one report per step (with a sensible lr schedule) plus one per evaluation.
        Assert.Equal(80, reports.Count(r => r.Phase == "train"));
        Assert.Equal(Enumerable.Range(1, 80), reports.Where(r => r.Phase == "train").Select(r => r.Step));
        var peak = reports.Max(r => r.LearningRate);
        Assert.InRange(peak, 0.049, 0.05);
        Assert.True(reports.Last(r => r.Phase == "train").LearningRate < 0.01);

        var lines = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"));
        Assert.Equal(result.History.Count, lines.Length);
        using (var doc = JsonDocument.Parse(lines[0]))
        {
            Assert.Equal("train", doc.RootElement.GetProperty("kind").GetString());
            Assert.Equal(5, doc.RootElement.GetProperty("step").GetInt32());
        }
        var png = File.ReadAllBytes(Path.Combine(dir, "training.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.True(png.Length > 10_000);
        Assert.True(File.Exists(Path.Combine(dir, "result.json")));
        Assert.True(File.Exists(Path.Combine(dir, "checkpoint", "trainer_state.json")));
    }

    [Theory]
    [InlineData(0, 21)]  // stopped at the 1st step of epoch 2: resumes from the epoch-1 checkpoint
    [InlineData(4, 31)]  // stopped mid-epoch 2 with step checkpoints every 4: resumes from step 28
    public void A_stopped_and_resumed_run_ends_where_an_uninterrupted_run_ends(int checkpointEvery, int stopAtStep)
    {
        var task = SentimentSlice();
        var straight = new HashedBagOfWords(task.NumLabels, seed: 3);
        var expected = new Trainer(straight, task, Options(Path.Combine(_dir, "a")) with { CheckpointEverySteps = checkpointEvery }).Run();

        var dirB = Path.Combine(_dir, "b");
        var options = Options(dirB) with { CheckpointEverySteps = checkpointEvery };
        var first = new HashedBagOfWords(task.NumLabels, seed: 3);
        using var cts = new CancellationTokenSource();
        var stopper = new SyncProgress(p => { if (p.Phase == "train" && p.Step == stopAtStep) cts.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => new Trainer(first, task, options, stopper).Run(cts.Token));

        // A new process: a fresh model with a different initialisation, everything else from the checkpoint.
        var resumedModel = new HashedBagOfWords(task.NumLabels, seed: 99);
        var resumed = new Trainer(resumedModel, task, options with { Resume = true }).Run();

        Assert.True(MaxAbsDiff(straight.GetTrainableState(), resumedModel.GetTrainableState()) < 1e-6f);
        Assert.Equal(expected.Steps, resumed.Steps);
        Assert.Equal(expected.TestMetrics, resumed.TestMetrics);
        Assert.Equal(expected.BestValidationMetric, resumed.BestValidationMetric);
        Assert.Equal(expected.History.Where(h => h.Kind == "eval").Select(h => h.Metrics!["accuracy"]),
                     resumed.History.Where(h => h.Kind == "eval").Select(h => h.Metrics!["accuracy"]));
        // The log on disk matches the resumed history (no duplicate lines from the interrupted part).
        Assert.Equal(resumed.History.Count, File.ReadAllLines(Path.Combine(dirB, "metrics.jsonl")).Length);
    }

    [Fact]
    public void A_NaN_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint()
    {
        var task = SentimentSlice();
        var model = new HashedBagOfWords(task.NumLabels, seed: 5) { NanAfterTrainingForwards = 22 };
        var dir = Path.Combine(_dir, "nan");
        var e = Assert.Throws<TrainingDivergedException>(() => new Trainer(model, task, Options(dir)).Run());
        Assert.Equal(23, e.Step);
        Assert.Equal(2, e.Epoch);
        Assert.True(double.IsNaN(e.Loss));
        Assert.Contains("step 23 (epoch 2)", e.Message);
        Assert.Contains("Lower the learning rate", e.Message);

        // The epoch-1 checkpoint (step 20) is intact and finite, and a resumed healthy run completes from it.
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "checkpoint", "trainer_state.json"))))
            Assert.Equal(20, doc.RootElement.GetProperty("step").GetInt32());
        var saved = QuantumPeft.Formats.Safetensors.SafetensorsFile.Read(Path.Combine(dir, "checkpoint", "trainable.safetensors"));
        Assert.All(saved.Values, t => Assert.True(t.isfinite().all().item<bool>()));
        var result = new Trainer(new HashedBagOfWords(task.NumLabels, seed: 5), task, Options(dir) with { Resume = true }).Run();
        Assert.Equal(40, result.Steps);
        Assert.True(double.IsFinite(result.TestMetric));
    }

    [Fact]
    public void A_huge_learning_rate_with_an_infinite_loss_is_reported_not_trained_through()
    {
        // Regression on targets of 1e30: the squared error overflows float32 on the first step.
        var examples = Enumerable.Range(0, 8).Select(i => new TextExample($"word{i} text", null, 1e30f)).ToList();
        var task = new TextTask("huge", examples, examples, examples, 1, ["score"], ["pearson"], "pearson");
        var e = Assert.Throws<TrainingDivergedException>(() =>
            new Trainer(new HashedBagOfWords(1, seed: 2), task, new TrainerOptions { Epochs = 1, BatchSize = 4, AdapterLearningRate = 1e6 }).Run());
        Assert.Equal(1, e.Step);
        Assert.True(double.IsInfinity(e.Loss));
    }

    [Fact]
    public void Regression_tasks_train_with_MSE_and_report_correlations()
    {
        // Score = 5 x (share of "good" words): learnable by a bag of words.
        var rng = new Random(4);
        List<TextExample> Make(int n) => Enumerable.Range(0, n).Select(_ =>
        {
            int good = rng.Next(0, 5);
            var words = Enumerable.Repeat("good", good).Concat(Enumerable.Repeat("plain", 4 - good));
            return new TextExample(string.Join(' ', words), "pair text", good * 1.25f);
        }).ToList();
        var task = new TextTask("toy-stsb", Make(160), Make(40), Make(40), 1, ["score"], ["pearson", "spearman"], "pearson");
        var result = new Trainer(new HashedBagOfWords(1, seed: 8), task,
            new TrainerOptions { Epochs = 6, BatchSize = 16, AdapterLearningRate = 0.05, HeadLearningRate = 0.05, Seed = 1 }).Run();
        Assert.Equal("pearson", result.TestMetricName);
        Assert.True(result.TestMetric > 0.9, $"pearson {result.TestMetric}");
        Assert.True(result.TestMetrics["spearman"] > 0.9);
    }

    [Fact]
    public void MaxSteps_cuts_the_run_and_lays_the_schedule_over_it()
    {
        var task = SentimentSlice();
        var reports = new List<TrainingProgress>();
        var options = Options(Path.Combine(_dir, "max")) with { MaxSteps = 7, WarmupSteps = 2 };
        var result = new Trainer(new HashedBagOfWords(2, 1), task, options, new SyncProgress(reports.Add)).Run();
        Assert.Equal(7, result.Steps);
        Assert.Equal(1, result.Epochs);
        // lr = 0.05 x factor(step): 0.025, 0.05, then (7 - s) / 5 x 0.05 for s = 2..6.
        double[] expected = [0.025, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01];
        Assert.Equal(expected, reports.Where(r => r.Phase == "train").Select(r => Math.Round(r.LearningRate, 10)));
        Assert.Single(result.History, h => h.Split == "validation");
    }

    [Fact]
    public void Label_smoothing_keeps_the_loss_above_its_floor()
    {
        // With smoothing 0.4 over 2 classes the target is (0.8, 0.2): cross-entropy cannot fall below its entropy, 0.500.
        var task = SentimentSlice();
        var options = Options(Path.Combine(_dir, "smooth"), epochs: 4) with { LabelSmoothing = 0.4 };
        var result = new Trainer(new HashedBagOfWords(2, 1), task, options).Run();
        var last = result.History.Last(h => h.Kind == "train").Loss!.Value;
        var floor = -(0.8 * Math.Log(0.8) + 0.2 * Math.Log(0.2));
        Assert.InRange(last, floor, floor + 0.1); // without smoothing the same run ends near 0.01
    }

    [Fact]
    public void Options_out_of_range_name_the_option()
    {
        var task = new TextTask("t", [new("a", null, 0)], [new("b", null, 1)], [new("c", null, 0)], 2, ["n", "p"], ["accuracy"], "accuracy");
        var e = Assert.Throws<ArgumentException>(() => new Trainer(new HashedBagOfWords(2, 1), task, new TrainerOptions { BatchSize = 0 }));
        Assert.Equal("BatchSize", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => new Trainer(new HashedBagOfWords(2, 1), task, new TrainerOptions { Resume = true }));
        Assert.Equal("Resume", e.ParamName);
    }

    [Fact]
    public void Resuming_with_different_settings_is_refused()
    {
        var task = SentimentSlice();
        var dir = Path.Combine(_dir, "mismatch");
        new Trainer(new HashedBagOfWords(2, 1), task, Options(dir, epochs: 1)).Run();
        var e = Assert.Throws<InvalidOperationException>(() =>
            new Trainer(new HashedBagOfWords(2, 1), task, Options(dir, epochs: 1) with { BatchSize = 32, Resume = true }).Run());
        Assert.Contains("batch size 16", e.Message);
    }

    [Theory]
    [InlineData(0, 2, 10, 0.5)]    // warm-up: (0 + 1) / 2
    [InlineData(1, 2, 10, 1.0)]    // end of warm-up: the peak
    [InlineData(2, 2, 10, 1.0)]    // decay starts at (10 - 2) / (10 - 2)
    [InlineData(6, 2, 10, 0.5)]    // (10 - 6) / 8
    [InlineData(9, 2, 10, 0.125)]  // last step: 1 / 8
    [InlineData(0, 0, 4, 1.0)]     // no warm-up
    public void Linear_schedule_warms_up_then_decays(int step, int warmup, int total, double expected) =>
        Assert.Equal(expected, LinearSchedule.Factor(step, warmup, total), 12);
}
