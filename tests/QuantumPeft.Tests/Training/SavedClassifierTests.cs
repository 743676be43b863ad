using System.Text.Json;
using QuantumPeft.Data;
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using QuantumPeft.Training;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

/// <summary>What <c>qpeft eval</c> and <c>qpeft merge</c> rely on: a saved adapter or merged folder predicts exactly as the model in memory.</summary>
public sealed class SavedClassifierTests : IDisposable
{
    static readonly string Folder = ModelResolver.Resolve("minilm");
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-saved-classifier-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    static TextTask SmallSentiment()
    {
        var task = TextTasks.Load("sentiment");
        return task with { Validation = task.Validation.Take(16).ToList(), Test = task.Test.Take(16).ToList() };
    }

    // Query and value of the first two layers (4 of 36): a forward builds every U and V, and the tests should stay fast.
    // A trained-looking adapter without training: every adapter and head number moved by a seeded amount (lambda starts at 0, so the update would be 0).
    static TextClassifier RandomlyMovedQuantum(long seed = 5)
    {
        var classifier = new TextClassifier(Folder, 2, new FineTuneSpec { Method = "quantum", Rank = 4, Seed = seed, Targets = @"re:bert\.encoder\.layer\.[01]\.attention\.self\.(query|value)" }, maxLength: 32);
        var g = new Generator((ulong)seed);
        using var _ = no_grad();
        foreach (var p in classifier.AdapterParameters.Concat(classifier.HeadParameters))
            p.add_(torch.randn(p.shape, generator: g) * 0.2);
        return classifier;
    }

    static Tensor Logits(TextClassifier c, IReadOnlyList<TextExample> batch)
    {
        c.SetTraining(false);
        using var _ = no_grad();
        return c.Forward(batch);
    }

    [Fact]
    public void AdapterFolderEvaluatesExactlyLikeTheModelInMemory()
    {
        var task = SmallSentiment();
        using var trained = RandomlyMovedQuantum();
        var inMemory = Logits(trained, task.Test);
        using (trained.Peft!.WithAdaptersDisabled())
            Assert.True((Logits(trained, task.Test) - inMemory).abs().max().item<float>() > 1e-3f, "the adapter's update should change the logits");
        var expected = ClassifierEvaluation.Evaluate(trained, task, task.Test);

        var adapterDir = Path.Combine(dir, "adapter");
        trained.SaveAdapter(adapterDir);
        Assert.Equal((2, BertForSequenceClassification.PoolerHead), TextClassifier.ReadAdapterHead(adapterDir));

        using var loaded = TextClassifier.FromAdapter(Folder, adapterDir, maxLength: 32);
        Assert.Empty(loaded.AdapterParameters.Concat(loaded.HeadParameters));
        Assert.Equal(expected, ClassifierEvaluation.EvaluateSplits(loaded, task, ["test"], source: adapterDir)["test"]);
        var diff = (Logits(loaded, task.Test) - inMemory).abs().max().item<float>();
        Assert.True(diff < 1e-5f, $"loaded adapter's logits differ by {diff}");
    }

    [Fact]
    public void MergedFolderGivesTheSameLogitsAndMetrics()
    {
        var task = SmallSentiment();
        using var trained = RandomlyMovedQuantum(seed: 9);
        var before = Logits(trained, task.Test);
        var expected = ClassifierEvaluation.Evaluate(trained, task, task.Test);

        var merged = Path.Combine(dir, "merged");
        trained.SaveMerged(merged);
        Assert.Null(trained.Peft);
        foreach (var file in new[] { "config.json", "model.safetensors", "vocab.txt" })
            Assert.True(File.Exists(Path.Combine(merged, file)), $"merged folder lacks {file}");
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(dir), p => Path.GetFileName(p).StartsWith('.'));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(merged, "config.json"))))
        {
            Assert.Equal("BertForSequenceClassification", config.RootElement.GetProperty("architectures")[0].GetString());
            Assert.Equal(2, config.RootElement.GetProperty("num_labels").GetInt32());
            Assert.Equal(2, config.RootElement.GetProperty("id2label").EnumerateObject().Count());
        }
        Assert.Equal((2, BertForSequenceClassification.PoolerHead), HfBertLoader.ReadClassifierHead(merged));

        using var reloaded = TextClassifier.FromClassifierFolder(merged, maxLength: 32);
        Assert.Equal(expected, ClassifierEvaluation.Evaluate(reloaded, task, task.Test));
        var diff = (Logits(reloaded, task.Test) - before).abs().max().item<float>();
        Assert.True(diff < 1e-4f, $"merged folder's logits differ by {diff}");
    }

    [Fact]
    public void MergeRefusesANonEmptyFolderUnlessAskedAndLeavesItUntouched()
    {
        using var trained = RandomlyMovedQuantum();
        var target = Path.Combine(dir, "taken");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "keep.txt"), "x");
        var e = Assert.Throws<IOException>(() => trained.SaveMerged(target));
        Assert.Contains(target, e.Message);
        Assert.NotNull(trained.Peft);   // refused before merging
        Assert.True(File.Exists(Path.Combine(target, "keep.txt")));
    }

    [Fact]
    public void AdapterForAnotherModelIsAClearError()
    {
        // A 7-layer encoder of MiniLM's width: its layer 6 does not exist in MiniLM (layers 0-5).
        var config = HfBertLoader.LoadConfig(Folder) with { NumHiddenLayers = 7, IntermediateSize = 16 };
        using var other = new BertForSequenceClassification(config, 2);
        var peft = PeftModel.Inject(other, new QuantumPeftConfig
        {
            R = 2, Alpha = 4, TargetModules = ModuleSelector.Of("bert.encoder.layer.6.attention.self.query"), ModulesToSave = ["classifier"],
        });
        var adapterDir = Path.Combine(dir, "other");
        peft.Save(adapterDir);
        var e = Assert.Throws<InvalidDataException>(() => TextClassifier.FromAdapter(Folder, adapterDir, maxLength: 32));
        Assert.Contains("does not fit", e.Message);
        Assert.Contains("bert.encoder.layer.6.attention.self.query", e.Message);
    }

    [Fact]
    public void MissingAdapterAndLabelMismatchNameTheThing()
    {
        var missing = Path.Combine(dir, "nowhere");
        var e = Assert.Throws<DirectoryNotFoundException>(() => TextClassifier.ReadAdapterHead(missing));
        Assert.Contains(missing, e.Message);
        Assert.Contains("adapter_config.json", e.Message);

        var task = SmallSentiment() with { NumLabels = 3, LabelNames = ["a", "b", "c"] };
        var m = Assert.Throws<ArgumentException>(() => ClassifierEvaluation.EnsureLabelsMatch(2, task, "adapter 'X'"));
        Assert.Contains("adapter 'X'", m.Message);
        Assert.Contains("2 labels", m.Message);
        Assert.Contains("3 labels", m.Message);

        // A base model folder has no head to evaluate.
        Assert.Null(HfBertLoader.ReadClassifierHead(Folder));
        Assert.Throws<InvalidDataException>(() => HfBertLoader.LoadClassifier(Folder));
    }

    [Fact]
    public void FullFineTuningSavesAModelFolderThatEvaluatesLikeTheModelInMemory()
    {
        // What qpeft train --method full (or head) writes to DIR/model: the whole classifier, no adapter.
        var task = SmallSentiment();
        using var trained = new TextClassifier(Folder, 2, new FineTuneSpec { Method = "full", Seed = 3 }, maxLength: 32);
        Assert.Null(trained.Peft);
        var g = new Generator(11);
        using (no_grad())
            foreach (var p in trained.AdapterParameters.Take(20).Concat(trained.HeadParameters))
                p.add_(torch.randn(p.shape, generator: g) * 0.05);
        var before = Logits(trained, task.Test);
        var expected = ClassifierEvaluation.Evaluate(trained, task, task.Test);

        var model = Path.Combine(dir, "model");
        trained.SaveMerged(model);
        using var reloaded = TextClassifier.FromClassifierFolder(model, maxLength: 32);
        Assert.Equal(expected, ClassifierEvaluation.Evaluate(reloaded, task, task.Test));
        var diff = (Logits(reloaded, task.Test) - before).abs().max().item<float>();
        Assert.True(diff < 1e-5f, $"saved model's logits differ by {diff}");

        // Given as an adapter, the folder (or the train --out folder above it) gets a pointer to the right option.
        var asAdapter = Assert.Throws<FileNotFoundException>(() => TextClassifier.ReadAdapterHead(model));
        Assert.Contains("--model", asAdapter.Message);
        var outFolder = Assert.Throws<FileNotFoundException>(() => TextClassifier.ReadAdapterHead(dir));
        Assert.Contains(model, outFolder.Message);
    }

    [Fact]
    public void AnUnknownHeadNameInAConfigOrAdapterNamesTheFileAndTheValidHeads()
    {
        var model = Path.Combine(dir, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "config.json"),
            $$"""{"architectures": ["BertForSequenceClassification"], "num_labels": 2, "{{HfBertLoader.HeadConfigKey}}": "cls"}""");
        var e = Assert.Throws<InvalidDataException>(() => HfBertLoader.ReadClassifierHead(model));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("'cls'", e.Message);
        Assert.Contains("pooler, mean", e.Message);

        var adapter = Path.Combine(dir, "adapter");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), "{}");
        QuantumPeft.Formats.Safetensors.SafetensorsFile.Write(Path.Combine(adapter, "adapter_model.safetensors"),
            new Dictionary<string, Tensor> { ["base_model.model.classifier.weight"] = zeros(2, 4) },
            new Dictionary<string, string> { [TextClassifier.HeadMetadataKey] = "cls" });
        var a = Assert.Throws<InvalidDataException>(() => TextClassifier.ReadAdapterHead(adapter));
        Assert.Contains("adapter_model.safetensors", a.Message);
        Assert.Contains("'cls'", a.Message);
        Assert.Contains("pooler, mean", a.Message);
    }
}
