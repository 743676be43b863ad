using QuantumPeft.Data.Images;
using QuantumPeft.Tests.Data.Images;
using QuantumPeft.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

/// <summary>Image classification through the one trainer on a tiny registered model: every method learns, adapters save and reload, merges agree, resumes are exact.</summary>
public sealed class ImageClassifierTrainingTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-image-train-" + Guid.NewGuid().ToString("N"));
    readonly ITestOutputHelper output;

    public ImageClassifierTrainingTests(ITestOutputHelper output)
    {
        this.output = output;
        Directory.CreateDirectory(dir);
        TinyImageModel.Register();
    }

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    /// <summary>8 x 8 images: class 0 bright on the left half, class 1 on the right half, with noise; 3 channels unless asked.</summary>
    internal static ImageTask HalvesTask(int train = 64, int eval = 24, int channels = 3, int side = 8, int seed = 1)
    {
        var rng = new Random(seed);
        List<ImageExample> Make(int n) => Enumerable.Range(0, n).Select(i =>
        {
            int label = i % 2;
            var pixels = new byte[side * side * channels];
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++)
                    for (int c = 0; c < channels; c++)
                        pixels[(y * side + x) * channels + c] = (byte)Math.Clamp(((x < side / 2) == (label == 0) ? 170 : 70) + rng.Next(-60, 61), 0, 255);
            return new ImageExample(pixels, side, side, channels, label);
        }).ToList();
        return new ImageTask("halves", ["left", "right"], Make(train), Make(eval), Make(eval));
    }

    static TrainerOptions Options(string? outDir = null, int epochs = 3) => new()
    {
        Epochs = epochs, BatchSize = 8, AdapterLearningRate = 0.01, HeadLearningRate = 0.05, WarmupRatio = 0.1, Seed = 3, OutputDir = outDir, LogEverySteps = 4,
    };

    string Folder(string name, int channels = 3) =>
        TinyImageModel.WriteFolder(Path.Combine(dir, name), numLabels: 10, channels: channels, imageSize: 8, hidden: 16, seed: 11);

    static float MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Theory]
    [InlineData("lora", 3)]
    [InlineData("quantum", 1)]
    [InlineData("head", 3)]
    [InlineData("full", 3)]
    [InlineData("vera", 3)]
    [InlineData("ia3", 3)]
    public void EveryMethodLowersTheLossThroughTheTrainer(string method, int channels)
    {
        var task = HalvesTask(channels: channels);
        var processor = new ImageProcessor(new ImageProcessorConfig(Height: 8, Width: 8));
        using var model = new ImageClassifierFineTuner(Folder(method, channels), task.NumLabels, new FineTuneSpec { Method = method, Rank = 4, Seed = 5 }, CPU, processor: processor, log: _ => { });
        var (adapter, head, total) = model.Counts();
        Assert.Equal(16 * 2 + 2, head);   // the new 2-class head: weight [2, 16] and bias
        Assert.Equal(method switch { "head" => 0, "full" => total - head, _ => adapter }, adapter);
        if (method is not ("head" or "full")) Assert.InRange(adapter, 1, 2000);

        var before = model.Evaluate(task.Validation);
        var result = new Trainer<ImageExample>(new ImageClassificationObjective(model, task, labelSmoothing: 0.05), Options()).Run();
        var after = model.Evaluate(task.Validation);
        output.WriteLine($"{method}: validation loss {before["loss"]:F4} -> {after["loss"]:F4}, accuracy {before["accuracy"]:F3} -> {after["accuracy"]:F3}; test {result.TestMetric:F3}; adapter {adapter}, head {head}, total {total}");
        Assert.True(after["loss"] < before["loss"] - 0.05, $"{method}: validation loss {before["loss"]:F4} -> {after["loss"]:F4}");
        Assert.True(after["accuracy"] >= 0.75, $"{method}: validation accuracy {after["accuracy"]:F3}");
        Assert.Equal("accuracy", result.TestMetricName);
        Assert.Equal(24, result.Steps);   // 64 / 8 x 3 epochs
    }

    [Fact]
    public void ASavedAdapterReloadsAndTheMergedFolderGivesTheSameLogits()
    {
        var task = HalvesTask();
        var baseFolder = Folder("base");
        var spec = new FineTuneSpec { Method = "lora", Rank = 4, Seed = 5 };
        using var model = new ImageClassifierFineTuner(baseFolder, task.NumLabels, spec, CPU, imageSize: 8, log: _ => { });
        new Trainer<ImageExample>(new ImageClassificationObjective(model, task), Options(epochs: 1)).Run();
        model.SetTraining(false);
        using var _ = no_grad();
        using var trained = model.Logits(task.Test);

        var adapterDir = Path.Combine(dir, "adapter");
        model.SaveAdapter(adapterDir);
        Assert.Equal(2, ImageClassifierFineTuner.ReadAdapterNumLabels(adapterDir));
        Assert.True(File.Exists(Path.Combine(adapterDir, ImageProcessor.FileName)));
        using (var reloaded = ImageClassifierFineTuner.FromAdapter(baseFolder, adapterDir))
        {
            Assert.Equal("lora", reloaded.Spec.Method);
            Assert.Equal(8, reloaded.Processor.Config.Height);   // the adapter's processor, not the base folder's defaults
            using var again = reloaded.Logits(task.Test);
            Assert.True(MaxDiff(trained, again) < 1e-5f, $"reloaded adapter differs by {MaxDiff(trained, again)}");
        }

        var merged = Path.Combine(dir, "merged");
        model.SaveMerged(merged);
        Assert.Null(model.Peft);
        using var fromFolder = ImageClassifierFineTuner.FromModelFolder(merged);
        Assert.Equal(2, fromFolder.Model.NumLabels);
        using var mergedLogits = fromFolder.Logits(task.Test);
        Assert.True(MaxDiff(trained, mergedLogits) < 1e-4f, $"merged model differs by {MaxDiff(trained, mergedLogits)}");
        // Not trivially equal: the adapter moved the logits away from the base model's.
        using var baseModel = ImageClassifierFineTuner.FromAdapter(baseFolder, adapterDir);
        baseModel.Peft!.DisableAdapters();
        using var plain = baseModel.Logits(task.Test);
        Assert.True(MaxDiff(trained, plain) > 1e-3f);
    }

    [Fact]
    public void AugmentedTrainingResumedFromACheckpointEqualsTheUninterruptedRun()
    {
        var task = HalvesTask(train: 48);
        var folder = Folder("resume");
        var aug = new ImageAugmentation(Crop: true, Padding: 2, Flip: true);
        var spec = new FineTuneSpec { Method = "lora", Rank = 2, Seed = 5 };
        var processor = new ImageProcessor(new ImageProcessorConfig(Height: 8, Width: 8));
        ImageClassifierFineTuner Make() => new(folder, 2, spec, CPU, processor: processor, log: _ => { });

        using var straight = Make();
        var expected = new Trainer<ImageExample>(new ImageClassificationObjective(straight, task, 0, aug), Options(Path.Combine(dir, "a"), epochs: 2)).Run();

        var options = Options(Path.Combine(dir, "b"), epochs: 2) with { CheckpointEverySteps = 4 };
        using (var first = Make())
        {
            using var cts = new CancellationTokenSource();
            var stopper = new SyncProgress(p => { if (p.Phase == "train" && p.Step == 7) cts.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => new Trainer<ImageExample>(new ImageClassificationObjective(first, task, 0, aug), options, stopper).Run(cts.Token));
        }
        using var resumedModel = Make();
        var resumed = new Trainer<ImageExample>(new ImageClassificationObjective(resumedModel, task, 0, aug), options with { Resume = true }).Run();

        var a = straight.GetTrainableState();
        var b = resumedModel.GetTrainableState();
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        Assert.All(a.Keys, k => Assert.True(MaxDiff(a[k], b[k]) < 1e-6f, k));
        Assert.Equal(expected.TestMetrics["accuracy"], resumed.TestMetrics["accuracy"]);
        Assert.Equal(expected.TestMetrics["loss"], resumed.TestMetrics["loss"], 1e-6);

        // The augmentation did change the batches: without it the same run ends elsewhere.
        using var plain = Make();
        new Trainer<ImageExample>(new ImageClassificationObjective(plain, task), Options(Path.Combine(dir, "c"), epochs: 2)).Run();
        var p = plain.GetTrainableState();
        Assert.Contains(a.Keys, k => MaxDiff(a[k], p[k]) > 1e-4f);
    }

    [Fact]
    public void ARealMnistSubsetIsLearnedThroughTheTrainer()
    {
        // Real digits (the fetched IDX files), a fixed subset: 1,000 to train, 300 each to validate and test.
        var task = MnistTasks.Load("mnist").Limit(1000, 300);
        var folder = TinyImageModel.WriteFolder(Path.Combine(dir, "mnist"), numLabels: 10, channels: 1, imageSize: 28, hidden: 32, seed: 2);
        using var model = new ImageClassifierFineTuner(folder, 10, new FineTuneSpec { Method = "full", Seed = 5 }, CPU, log: _ => { });
        Assert.Equal(28, model.Processor.Config.Height);   // the model's image size: no resize
        var result = new Trainer<ImageExample>(new ImageClassificationObjective(model, task),
            Options(epochs: 2) with { BatchSize = 50, AdapterLearningRate = 1e-2, HeadLearningRate = 1e-2 }).Run();
        output.WriteLine($"MNIST subset (1000/300/300), tiny MLP, full fine-tuning, 2 epochs: test accuracy {result.TestMetric:F3}, loss {result.TestMetrics["loss"]:F3}, {result.ExamplesPerSecond:F0} images/s");
        Assert.True(result.TestMetric > 0.7, $"test accuracy {result.TestMetric:F3}");
    }

    [Fact]
    public void AHeadOfAnotherClassCountIsRefused()
    {
        using var model = new ImageClassifierFineTuner(Folder("refuse"), 3, new FineTuneSpec { Method = "head" }, CPU, imageSize: 8, log: _ => { });
        var e = Assert.Throws<ArgumentException>(() => new ImageClassificationObjective(model, HalvesTask()));
        Assert.Contains("3 classes", e.Message);
        Assert.Contains("'halves' has 2", e.Message);
    }
}
