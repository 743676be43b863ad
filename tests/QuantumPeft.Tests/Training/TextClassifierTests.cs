using QuantumPeft.Data;
using QuantumPeft.Models;
using QuantumPeft.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

/// <summary>The bundled MiniLM with adapters, as <c>qpeft train</c> builds it, on real sentiment sentences.</summary>
public class TextClassifierTests
{
    static readonly string Folder = ModelResolver.Resolve("minilm");

    static IReadOnlyList<TextExample> Slice(int count) => TextTasks.Load("sentiment").Train.Take(count).ToList();

    [Theory]
    [InlineData("quantum")]
    [InlineData("lora")]
    public void AdaptedModelEqualsHeadOnlyModelBeforeTraining(string method)
    {
        var batch = Slice(4);
        using var adapted = new TextClassifier(Folder, 2, new FineTuneSpec { Method = method, Seed = 3 }, maxLength: 32);
        using var headOnly = new TextClassifier(Folder, 2, new FineTuneSpec { Method = "head", Seed = 3 }, maxLength: 32);
        adapted.SetTraining(false);
        headOnly.SetTraining(false);
        using var _ = no_grad();
        var diff = (adapted.Forward(batch) - headOnly.Forward(batch)).abs().max().item<float>();
        Assert.True(diff < 1e-5f, $"{method} at init differs from the base model by {diff}");
    }

    [Fact]
    public void QuantumMethodTrainsFewNumbersAndTheyMove()
    {
        using var model = new TextClassifier(Folder, 2, new FineTuneSpec { Method = "quantum", Rank = 4, Layers = 1 }, maxLength: 32);
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

    [Theory]
    [InlineData("adalora")]
    [InlineData("vera")]
    [InlineData("fourierft")]
    [InlineData("ia3")]
    [InlineData("lokr")]
    [InlineData("oft")]
    public void EveryBaselineMethodStartsAtTheBaseModelTrainsAndReloads(string method)
    {
        var batch = Slice(4);
        var spec = new FineTuneSpec { Method = method, Rank = 4, Seed = 3, TotalSteps = 3 };
        using var model = new TextClassifier(Folder, 2, spec, maxLength: 32);
        using var headOnly = new TextClassifier(Folder, 2, new FineTuneSpec { Method = "head", Seed = 3 }, maxLength: 32);
        model.SetTraining(false);
        headOnly.SetTraining(false);
        // peft's FourierFT starts from a random spectrum (init_weights false by default); the others start at the base model.
        if (method != "fourierft")
            using (no_grad())
                Assert.True((model.Forward(batch) - headOnly.Forward(batch)).abs().max().item<float>() < 1e-4f, $"{method} at init differs from the base model");
        Assert.Equal(FineTuneSpec.BaselineMethods[method], model.Peft!.ActiveConfig.PeftType);
        Assert.True(model.Counts().Adapter > 0);

        var task = TextTasks.Load("sentiment");
        var result = new Trainer(model, task with { Validation = task.Validation.Take(8).ToList(), Test = task.Test.Take(8).ToList() },
            new TrainerOptions { Epochs = 1, BatchSize = 8, MaxSteps = 3, AdapterLearningRate = FineTuneSpec.DefaultLearningRate(method), HeadLearningRate = 2e-3 }).Run();
        Assert.Equal(3, result.Steps);
        model.SetTraining(false);
        Tensor trained;
        using (no_grad()) trained = model.Forward(batch);

        var dir = Path.Combine(Path.GetTempPath(), "qpeft-baseline-" + Guid.NewGuid().ToString("N"));
        try
        {
            model.SaveAdapter(dir);
            using var reloaded = TextClassifier.FromAdapter(Folder, dir, maxLength: 32);
            Assert.Equal(method, reloaded.Spec.Method);
            using (no_grad()) Assert.True((reloaded.Forward(batch) - trained).abs().max().item<float>() < 1e-4f, $"{method}: the reloaded adapter predicts differently");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void SettingsReachTheMethodsConfigByPeftsNames()
    {
        var spec = new FineTuneSpec { Method = "fourierft", Settings = new Dictionary<string, string> { ["n_frequency"] = "64", ["scaling"] = "100" } };
        var config = (QuantumPeft.Tuners.FourierFT.FourierFTConfig)spec.AdapterConfig("m", "SEQ_CLS", null);
        Assert.Equal(64, config.NFrequency);
        Assert.Equal(100, config.Scaling);
        var bad = spec with { Settings = new Dictionary<string, string> { ["n_freq"] = "64" } };
        Assert.Contains("--set n_freq", Assert.Throws<ArgumentException>(() => bad.AdapterConfig("m", "SEQ_CLS", null)).Message);
        var lora = new FineTuneSpec { Method = "lora", Settings = new Dictionary<string, string> { ["use_rslora"] = "true" } };
        Assert.True(((QuantumPeft.Tuners.Lora.LoraConfig)lora.AdapterConfig("m", "SEQ_CLS", null)).UseRslora);
    }

    [Fact]
    public void SettingsReachQuantumPeftsCircuitOptionsOnBothOrOneSide()
    {
        var spec = new FineTuneSpec
        {
            Method = "quantum",
            Settings = new Dictionary<string, string> { ["init"] = "period", ["gate_order"] = "s2d", ["stiefel_v.local_qubits"] = "2" },
        };
        var config = (QuantumPeft.Tuners.Quantum.QuantumPeftConfig)spec.AdapterConfig("m", "SEQ_CLS", null);
        Assert.Equal(("period", "s2d", 1), (config.StiefelU.Init, config.StiefelU.GateOrder, config.StiefelU.LocalQubits));
        Assert.Equal(("period", "s2d", 2), (config.StiefelV.Init, config.StiefelV.GateOrder, config.StiefelV.LocalQubits));
        var wrong = spec with { Settings = new Dictionary<string, string> { ["gate_order"] = "zigzag" } };
        Assert.Contains("zigzag", Assert.ThrowsAny<Exception>(() => wrong.AdapterConfig("m", "SEQ_CLS", null)).Message);
        var unknown = spec with { Settings = new Dictionary<string, string> { ["inits"] = "period" } };
        Assert.Contains("map options for both sides", Assert.Throws<ArgumentException>(() => unknown.AdapterConfig("m", "SEQ_CLS", null)).Message);
        // The comparison grid takes them the same way.
        var entry = GridEntry.Parse("quantum:init=period:local_qubits=2");
        var fromGrid = (QuantumPeft.Tuners.Quantum.QuantumPeftConfig)entry.Spec.AdapterConfig("m", "SEQ_CLS", null);
        Assert.Equal(("period", 2, 2), (fromGrid.StiefelU.Init, fromGrid.StiefelU.LocalQubits, fromGrid.StiefelV.LocalQubits));
    }

    [Fact]
    public void UnknownMethodIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => new TextClassifier(Folder, 2, new FineTuneSpec { Method = "prefix" }));
        Assert.Contains("prefix", e.Message);
        Assert.Contains("quantum", e.Message);
    }
}
