using QuantumPeft.Data;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Bert;
using QuantumPeft.Training;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

public sealed class StepTimingTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-step-timing-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    string TinyBertFolder()
    {
        var folder = Path.Combine(dir, "bert");
        using (var bert = new BertModel(QuantumPeft.Tests.Models.Bert.TinyBert.Config(), addPoolingLayer: false, seed: 3))
            HfBertLoader.Save(folder, bert);
        File.WriteAllLines(Path.Combine(folder, "vocab.txt"), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "food", "not", "the", "very"]);
        return folder;
    }

    [Fact]
    public void Runs_step_in_turn_on_the_same_batches_and_two_copies_of_one_model_take_the_same_steps()
    {
        var folder = TinyBertFolder();
        string[] texts = ["good film", "bad food", "not good", "the very bad film", "very good food", "not the film", "bad", "good"];
        var examples = texts.Select((t, i) => new TextExample(t, null, i % 2)).ToList();
        var task = new TextTask("tiny", examples, examples, examples, 2, ["negative", "positive"], ["accuracy"], "accuracy");
        IReadOnlyList<IReadOnlyList<TextExample>> batches = [examples[..4], examples[4..]];
        var spec = new FineTuneSpec { Method = "lora", Rank = 2, Seed = 5 };
        var options = new TrainerOptions { AdapterLearningRate = 1e-2, HeadLearningRate = 1e-2 };
        TextClassifier Build() { manual_seed(5); return new TextClassifier(folder, 2, spec, maxLength: 8); }
        using var a = Build();
        using var b = Build();
        using var c = Build();
        var before = a.GetTrainableState().ToDictionary(kv => kv.Key, kv => kv.Value.clone());

        var times = StepTiming.Alternate([(new ClassificationObjective(a, task), options), (new ClassificationObjective(b, task), options),
            (new ClassificationObjective(c, task), options with { AdapterLearningRate = 0, HeadLearningRate = 0 })], batches, rounds: 2, seed: 9);

        Assert.Equal([4, 4, 4], times.Select(t => t.Count));
        Assert.All(times.SelectMany(t => t), ms => Assert.True(ms > 0));
        var (sa, sb, sc) = (a.GetTrainableState(), b.GetTrainableState(), c.GetTrainableState());
        // a and b: same model, same batches, same dropout seeds per batch, so the same five steps (one warm-up + four timed).
        foreach (var (name, t) in sa)
        {
            Assert.True(allclose(t, sb[name], rtol: 0, atol: 1e-6), $"{name} differs between the two copies");
            Assert.True(allclose(before[name], sc[name], rtol: 0, atol: 0), $"{name} moved at learning rate 0");
        }
        Assert.Contains(sa, kv => (kv.Value - before[kv.Key]).abs().max().item<float>() > 1e-4);
        Assert.Contains("at least one batch", Assert.Throws<ArgumentException>(() => StepTiming.Alternate([(new ClassificationObjective(a, task), options)], [])).Message);
    }
}
