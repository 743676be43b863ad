using System.Text.Json;
using QuantumPeft.Models.DebertaV2;
using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.DebertaV2;

/// <summary>Quantum-PEFT and LoRA on DeBERTa's query_proj / value_proj: the adapters act (also on the shared position projections), save, reload and merge.</summary>
public sealed class DebertaV2AdapterTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-deberta-peft-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string> Methods => new() { "lora", "quantum" };

    static PeftConfig Config(string method) => method == "lora"
        ? new LoraConfig
        {
            R = 2, LoraAlpha = 4, TargetModules = ModuleSelector.Of("query_proj", "value_proj"), ModulesToSave = ["classifier", "pooler"],
            InitLoraWeights = JsonSerializer.SerializeToElement(false),
        }
        : new QuantumPeftConfig
        {
            R = 2, Alpha = 2, TargetModules = ModuleSelector.Of("query_proj", "value_proj"), ModulesToSave = ["classifier", "pooler"], InitLambda = "random",
            StiefelU = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1 },
            StiefelV = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1 },
        };

    [Theory]
    [MemberData(nameof(Methods))]
    public void AdapterSavesReloadsAndMergesWithEqualLogits(string method)
    {
        var json = TinyDeberta.ConfigJson();
        var baseFolder = Path.Combine(_dir, "base");
        using (var source = new DebertaV2ForSequenceClassification(TinyDeberta.Config(json), 3))
        {
            TinyDeberta.Randomize(source, 9);
            TinyDeberta.WriteFolder(baseFolder, json, source.state_dict());
        }
        var (ids, mask, _) = TinyDeberta.Batch();
        var (model, _) = HfDebertaV2Loader.LoadForSequenceClassification(baseFolder, 3, log: _ => { });
        model.eval();
        using var plain = model.call(ids, mask, null);

        var peft = PeftModel.Inject(model, Config(method));
        Assert.Equal(2 * 2, peft.AdaptedLayers.Count);
        Assert.All(peft.AdaptedLayers, l => Assert.Matches(@"^deberta\.encoder\.layer\.\d\.attention\.self\.(query_proj|value_proj)$", l.Path));
        using var adapted = model.call(ids, mask, null);
        Assert.True(TinyDeberta.MaxAbsDiff(plain, adapted) > 1e-4, "the adapter should change the logits");
        // Training the head too: the pooler and classifier are trainable, the encoder's own weights are not.
        using (no_grad()) foreach (var p in peft.OtherTrainableParameters()) p.add_(0.05);
        Assert.Contains(peft.NamedOtherTrainableParameters(), p => p.Name.StartsWith("pooler.", StringComparison.Ordinal));
        Assert.DoesNotContain(peft.NamedTrainableParameters(), p => p.Name.Contains("key_proj"));
        using var trained = model.call(ids, mask, null);

        var adapterDir = Path.Combine(_dir, "adapter");
        peft.Save(adapterDir);
        var (fresh, _) = HfDebertaV2Loader.LoadForSequenceClassification(baseFolder, 3, log: _ => { });
        PeftModel.Load(fresh, adapterDir, warnings: new List<string>());
        fresh.eval();
        using var reloaded = fresh.call(ids, mask, null);
        Assert.True(TinyDeberta.MaxAbsDiff(trained, reloaded) < 1e-6, $"reloaded {TinyDeberta.MaxAbsDiff(trained, reloaded):E2}");

        var merged = (DebertaV2ForSequenceClassification)peft.MergeAndUnload();
        Assert.DoesNotContain(merged.named_modules(), m => m.module is AdaptedLinear);
        using var mergedLogits = merged.call(ids, mask, null);
        Assert.True(TinyDeberta.MaxAbsDiff(trained, mergedLogits) < 1e-5, $"merged {TinyDeberta.MaxAbsDiff(trained, mergedLogits):E2}");

        // The merged model saved as a transformers folder reads back to the same logits.
        var mergedFolder = Path.Combine(_dir, "merged");
        HfDebertaV2Loader.Save(mergedFolder, merged);
        using var again = HfDebertaV2Loader.LoadClassifier(mergedFolder);
        again.eval();
        using var againLogits = again.call(ids, mask, null);
        Assert.True(TinyDeberta.MaxAbsDiff(trained, againLogits) < 1e-5);
        model.Dispose();
        fresh.Dispose();
    }

    [Fact]
    public void PaperTargetSetIsSixMatricesPerLayer()
    {
        using var model = new DebertaV2ForSequenceClassification(TinyDeberta.Config(TinyDeberta.ConfigJson(shareAttKey: false)), 2);
        var peft = PeftModel.Inject(model, new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ModuleSelector.Of([.. DebertaV2ForSequenceClassification.PaperTargetModules]) });
        var paths = peft.AdaptedLayers.Select(l => l.Path).ToList();
        Assert.Equal(6 * TinyDeberta.Layers, paths.Count);
        Assert.Contains("deberta.encoder.layer.1.attention.output.dense", paths);
        Assert.Contains("deberta.encoder.layer.0.output.dense", paths);
        // The position projections and the head stay as they are.
        Assert.DoesNotContain(paths, p => p.Contains("pos_") || p.StartsWith("pooler", StringComparison.Ordinal) || p.StartsWith("classifier", StringComparison.Ordinal));
    }
}
