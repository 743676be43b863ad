using QuantumPeft.Models.Vision;
using QuantumPeft.Models.Vit;
using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Vit;

/// <summary>Quantum-PEFT and LoRA on a ViT's query and value: injection, a few training steps, adapter save / reload, merge.</summary>
public sealed class ViTAdapterTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-vit-peft-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly ImageLoadOptions Quiet = new(NumLabels: 4, Seed: 3, Log: _ => { });

    public static TheoryData<string> Methods => new() { "lora", "quantum" };

    static PeftConfig Config(string method) => method switch
    {
        "quantum" => new QuantumPeftConfig
        {
            R = 2, Alpha = 4, TargetModules = ModuleSelector.Of("query", "value"), ModulesToSave = ["classifier"], Seed = 5,
            StiefelU = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1 },
            StiefelV = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1 },
        },
        _ => new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ModuleSelector.Of("query", "value"), ModulesToSave = ["classifier"] },
    };

    [Theory]
    [MemberData(nameof(Methods))]
    public void Adapters_on_query_and_value_train_save_reload_and_merge(string method)
    {
        // The checkpoint's 5-class head is replaced by a new 4-class one, trained with the adapters as modules_to_save.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var folder = TinyViT.Write(Path.Combine(_dir, "base"), TinyViT.Config(), TinyViT.Weights());
        var model = (ViTForImageClassification)ImageClassifiers.Load(folder, Quiet);
        using var _m = model;
        using var pixels = TinyViT.Pixels(8, seed: 11);
        using var labels = tensor(new long[] { 0, 1, 2, 3, 0, 1, 2, 3 });
        Tensor before;
        using (no_grad()) before = model.Logits(pixels);

        var peft = PeftModel.Inject(model, Config(method));
        Assert.Equal(2 * TinyViT.Layers, peft.AdaptedLayers.Count);
        Assert.Equal(["vit.encoder.layer.0.attention.attention.query", "vit.encoder.layer.0.attention.attention.value",
                      "vit.encoder.layer.1.attention.attention.query", "vit.encoder.layer.1.attention.attention.value"],
            peft.AdaptedLayers.Select(l => l.Path).Order());
        // Both methods start as the identity update: the adapted model is the base model.
        using (no_grad())
        {
            using var start = model.Logits(pixels);
            Assert.True(TinyViT.MaxAbsDiff(start, before) < 1e-6);
        }
        // Only adapters and the head train; the backbone's own weights are frozen.
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Contains("classifier.weight", trainable);
        Assert.DoesNotContain(trainable, n => n.Contains("base_layer") || n.Contains("intermediate") || n.Contains("key."));

        output.WriteLine($"{method}: inject {clock.ElapsedMilliseconds} ms");
        model.train();
        var optimizer = optim.Adam(model.parameters().Where(p => p.requires_grad), lr: 0.02);
        var losses = new List<double>();
        for (int step = 0; step < 4; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.Logits(pixels), labels);
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }
        model.eval();
        output.WriteLine($"{method}: train {clock.ElapsedMilliseconds} ms, loss {string.Join(" ", losses.Select(l => l.ToString("F4")))}");
        Assert.True(losses[^1] < losses[0] - 0.05, $"{method}: loss {losses[0]:F4} -> {losses[^1]:F4}");

        Tensor trained;
        using (no_grad()) trained = model.Logits(pixels);
        Assert.True(TinyViT.MaxAbsDiff(trained, before) > 1e-3);
        // The adapters themselves moved the output, not only the head.
        using (no_grad())
        using (peft.WithAdaptersDisabled())
        {
            using var headOnly = model.Logits(pixels);
            Assert.True(TinyViT.MaxAbsDiff(trained, headOnly) > 1e-4, $"{method}: the adapters changed nothing");
        }

        // Save the adapter, reload it into a freshly loaded base: the same logits.
        var adapterDir = Path.Combine(_dir, "adapter");
        peft.Save(adapterDir);
        var fresh = (ViTForImageClassification)ImageClassifiers.Load(folder, Quiet with { Seed = 99 });
        using var _f = fresh;
        var reloaded = PeftModel.Load(fresh, adapterDir);
        fresh.eval();
        using (no_grad())
        {
            using var again = fresh.Logits(pixels);
            output.WriteLine($"{method}: reload diff {TinyViT.MaxAbsDiff(again, trained):E2}");
            Assert.True(TinyViT.MaxAbsDiff(again, trained) < 1e-5, $"{method}: reload diff {TinyViT.MaxAbsDiff(again, trained)}");
        }

        // Merged equals unmerged; merged and unloaded, the model saves as a plain ViT folder with the same logits.
        reloaded.Merge();
        using (no_grad())
        {
            using var merged = fresh.Logits(pixels);
            output.WriteLine($"{method}: merge diff {TinyViT.MaxAbsDiff(merged, trained):E2}, {clock.ElapsedMilliseconds} ms");
            Assert.True(TinyViT.MaxAbsDiff(merged, trained) < 1e-4, $"{method}: merge diff {TinyViT.MaxAbsDiff(merged, trained)}");
        }
        Assert.Throws<InvalidOperationException>(() => fresh.Save(Path.Combine(_dir, "wrapped")));
        reloaded.MergeAndUnload();
        var mergedDir = Path.Combine(_dir, "merged");
        fresh.Save(mergedDir);
        var plain = (ViTForImageClassification)ImageClassifiers.Load(mergedDir, new ImageLoadOptions(Log: _ => { }));
        using var _p = plain;
        Assert.Equal(4, plain.NumLabels);
        using (no_grad())
        {
            using var fromFolder = plain.Logits(pixels);
            Assert.True(TinyViT.MaxAbsDiff(fromFolder, trained) < 1e-4);
        }
        before.Dispose();
        trained.Dispose();
    }
}
