using QuantumPeft.Data;
using QuantumPeft.Models;
using QuantumPeft.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

/// <summary>The bundled MiniLM with adapters, as <c>qpeft train</c> builds it, on real sentiment sentences.</summary>
public class BertTextClassifierTests
{
    static readonly string Folder = ModelResolver.Resolve("minilm");

    static IReadOnlyList<TextExample> Slice(int count) => TextTasks.Load("sentiment").Train.Take(count).ToList();

    [Theory]
    [InlineData("quantum")]
    [InlineData("lora")]
    public void AdaptedModelEqualsHeadOnlyModelBeforeTraining(string method)
    {
        var batch = Slice(4);
        using var adapted = new BertTextClassifier(Folder, 2, new FineTuneSpec { Method = method, Seed = 3 }, maxLength: 32);
        using var headOnly = new BertTextClassifier(Folder, 2, new FineTuneSpec { Method = "head", Seed = 3 }, maxLength: 32);
        adapted.SetTraining(false);
        headOnly.SetTraining(false);
        using var _ = no_grad();
        var diff = (adapted.Forward(batch) - headOnly.Forward(batch)).abs().max().item<float>();
        Assert.True(diff < 1e-5f, $"{method} at init differs from the base model by {diff}");
    }

    [Fact]
    public void QuantumMethodTrainsFewNumbersAndTheyMove()
    {
        using var model = new BertTextClassifier(Folder, 2, new FineTuneSpec { Method = "quantum", Rank = 4, Layers = 1 }, maxLength: 32);
        var (adapter, head, total) = model.Counts();
        // 36 linear layers of MiniLM, each (angles of U) + (angles of V) + K: at most 60 numbers per layer.
        Assert.InRange(adapter, 36 * 40, 36 * 60);
        Assert.Equal(384 * 2 + 2, head);
        Assert.True(total > 22_000_000);

        var before = model.GetTrainableState().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var task = TextTasks.Load("sentiment");
        var trainer = new Trainer(model, task with { Validation = task.Validation.Take(16).ToList(), Test = task.Test.Take(16).ToList() },
            new TrainerOptions { Epochs = 1, BatchSize = 8, MaxSteps = 3, AdapterLearningRate = 5e-3, HeadLearningRate = 2e-3 });
        var result = trainer.Run();
        Assert.Equal(3, result.Steps);
        var after = model.GetTrainableState();
        Assert.Contains(after, kv => kv.Key.Contains("qpeft_lambda") && (kv.Value - before[kv.Key]).abs().max().item<float>() > 0);
        Assert.All(after.Values, t => Assert.True(t.isfinite().all().item<bool>()));
    }

    [Fact]
    public void UnknownMethodIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => new BertTextClassifier(Folder, 2, new FineTuneSpec { Method = "prefix" }));
        Assert.Contains("prefix", e.Message);
        Assert.Contains("quantum", e.Message);
    }
}
