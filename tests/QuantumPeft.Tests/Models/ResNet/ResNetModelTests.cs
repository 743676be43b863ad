using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.ResNet;
using QuantumPeft.Models.Vision;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.ResNet;

public sealed class ResNetModelTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-resnet-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    static Tensor Pixels(long batch = 2, long size = 32, long seed = 5) => randn([batch, TinyResNet.Channels, size, size], generator: new Generator((ulong)seed, CPU));

    [Theory]
    [InlineData("basic", false)]
    [InlineData("bottleneck", false)]
    [InlineData("bottleneck", true)]
    public void AHfFolderLoadsAndMatchesTheDirectComputation(string layerType, bool downsampleInBottleneck)
    {
        var weights = TinyResNet.WriteFolder(dir, layerType, numLabels: 3,
            extra: new() { ["downsample_in_bottleneck"] = downsampleInBottleneck });
        var (classifier, report) = ImageClassifiers.LoadWithReport(dir);
        using var model = classifier;
        Assert.True(report.IsClean, $"missing [{string.Join(", ", report.Missing)}], unexpected [{string.Join(", ", report.Unexpected)}]");
        Assert.Empty(report.NewlyInitialized);
        Assert.Equal(weights.Count, report.Loaded.Count);
        Assert.Equal(("resnet", 3, 3, 224), (model.ModelType, model.NumLabels, model.NumChannels, model.ImageSize));
        Assert.Equal(["classifier"], model.HeadModules);

        model.Module.eval();
        using var x = Pixels();
        using var noGrad = no_grad();
        using var logits = model.Logits(x);
        using var expected = TinyResNet.Reference(weights, x, layerType, downsampleInBottleneck);
        Assert.Equal([2L, 3L], logits.shape);
        double diff = TinyResNet.MaxAbsDiff(logits, expected), scale = expected.abs().max().item<float>();
        output.WriteLine($"{layerType} (downsample_in_bottleneck {downsampleInBottleneck}): max |ours - direct| {diff:E2}, logits up to {scale:F3}");
        Assert.True(scale > 0.05, "the logits should not be trivially small");
        Assert.True(diff < 1e-5, $"logits differ from the direct computation by {diff}");
    }

    [Fact]
    public void StateDictNamesAreHuggingFaces()
    {
        var config = new ResNetConfig { EmbeddingSize = 8, HiddenSizes = [8, 16], Depths = [1, 2], LayerType = "basic" };
        using var model = new ResNetForImageClassification(config, numLabels: 3);
        var names = model.state_dict().Keys.ToList();
        string[] expected =
        [
            "resnet.embedder.embedder.convolution.weight",
            "resnet.embedder.embedder.normalization.weight",
            "resnet.embedder.embedder.normalization.bias",
            "resnet.embedder.embedder.normalization.running_mean",
            "resnet.embedder.embedder.normalization.running_var",
            "resnet.embedder.embedder.normalization.num_batches_tracked",
            "resnet.encoder.stages.0.layers.0.layer.0.convolution.weight",
            "resnet.encoder.stages.0.layers.0.layer.1.normalization.running_var",
            "resnet.encoder.stages.1.layers.0.shortcut.convolution.weight",
            "resnet.encoder.stages.1.layers.0.shortcut.normalization.bias",
            "resnet.encoder.stages.1.layers.1.layer.1.convolution.weight",
            "classifier.1.weight",
            "classifier.1.bias",
        ];
        foreach (var name in expected) Assert.Contains(name, names);
        // Same width and stride: an identity shortcut, with no tensors (as transformers' nn.Identity).
        Assert.DoesNotContain(names, n => n.StartsWith("resnet.encoder.stages.0.layers.0.shortcut", StringComparison.Ordinal));
        Assert.DoesNotContain(names, n => n.StartsWith("resnet.encoder.stages.1.layers.1.shortcut", StringComparison.Ordinal));
        // The names a checkpoint of this shape has, spelled out independently, are exactly the model's.
        var checkpoint = TinyResNet.Weights("basic", 3, seed: 1).Keys.Order(StringComparer.Ordinal).ToList();
        Assert.Equal(checkpoint, names.Order(StringComparer.Ordinal).ToList());
        Assert.Equal([8L, 3, 7, 7], model.state_dict()["resnet.embedder.embedder.convolution.weight"].shape);
        // Adapters target convolutions by name: they are Conv2d modules.
        var convs = model.named_modules().Where(m => m.module is TorchSharp.Modules.Conv2d).Select(m => m.name).ToList();
        Assert.Equal(TinyResNet.ConvLayers("basic").Count(), convs.Count);
        Assert.Contains("resnet.encoder.stages.1.layers.0.shortcut.convolution", convs);
    }

    /// <summary>A stand-in for an adapter: the frozen convolution as base_layer, its output scaled.</summary>
    sealed class ScaledConv : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> base_layer;
        public double Scale { get; set; } = 1;

        public ScaledConv(nn.Module<Tensor, Tensor> baseLayer) : base(nameof(ScaledConv))
        {
            base_layer = baseLayer;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => base_layer.call(x) * Scale;
    }

    [Fact]
    public void ConvolutionsCanBeReplacedByNameAsAdaptersAre()
    {
        TinyResNet.WriteFolder(dir, numLabels: 3);
        using var model = ImageClassifiers.Load(dir);
        model.Module.eval();
        using var x = Pixels();
        using var noGrad = no_grad();
        using var before = model.Logits(x);
        foreach (var path in new[] { "resnet.encoder.stages.1.layers.0.layer.0.convolution", "resnet.encoder.stages.1.layers.0.shortcut.convolution" })
        {
            var conv = (nn.Module<Tensor, Tensor>)QuantumPeft.Tuners.ModuleTree.Get(model.Module, path);
            QuantumPeft.Tuners.ModuleTree.Replace(model.Module, path, new ScaledConv(conv));
        }
        var names = model.Module.state_dict().Keys.ToList();
        Assert.Contains("resnet.encoder.stages.1.layers.0.shortcut.convolution.base_layer.weight", names);
        Assert.DoesNotContain("resnet.encoder.stages.1.layers.0.shortcut.convolution.weight", names);
        using (var same = model.Logits(x)) Assert.Equal(0.0, TinyResNet.MaxAbsDiff(before, same));
        foreach (var m in model.Module.modules().OfType<ScaledConv>()) m.Scale = 0.5;
        using var changed = model.Logits(x);
        Assert.True(TinyResNet.MaxAbsDiff(before, changed) > 1e-3, "forward should call the replacement");
    }

    [Fact]
    public void ABackboneFolderGetsANewHeadThatIsReported()
    {
        var weights = TinyResNet.WriteFolder(dir, numLabels: 0);
        var notes = new List<string>();
        var (model, report) = ImageClassifiers.LoadWithReport(dir, new ImageLoadOptions(NumLabels: 10, Seed: 3, Log: notes.Add));
        using (model)
        {
            Assert.Equal(10, model.NumLabels);
            Assert.Equal(["classifier.1.weight", "classifier.1.bias"], report.NewlyInitialized.Order(StringComparer.Ordinal).Reverse());
            Assert.Empty(report.Missing);
            Assert.Equal(weights.Count, report.Loaded.Count);
            Assert.Contains(notes, n => n.Contains("newly initialised") && n.Contains("classifier.1.weight"));
            // The same seed gives the same head; the backbone came from the file.
            using var again = ImageClassifiers.Load(dir, new ImageLoadOptions(NumLabels: 10, Seed: 3, Log: _ => { }));
            Assert.True(model.Module.state_dict()["classifier.1.weight"].equal(again.Module.state_dict()["classifier.1.weight"]).all().item<bool>());
            Assert.True(model.Module.state_dict()["resnet.embedder.embedder.convolution.weight"].equal(weights["resnet.embedder.embedder.convolution.weight"]).all().item<bool>());
        }

        // A backbone folder without a label count is an error that says what to give.
        var e = Assert.Throws<InvalidDataException>(() => ImageClassifiers.Load(dir));
        Assert.Contains("no labels", e.Message);
    }

    [Fact]
    public void ABaseCheckpointWithoutBatchCountsLoadsClean()
    {
        // A ResNetModel checkpoint (names embedder.*, encoder.*) from before num_batches_tracked existed.
        var weights = TinyResNet.WriteFolder(dir, numLabels: 0, batchCounts: false, prefixed: false);
        Assert.DoesNotContain(weights.Keys, k => k.StartsWith("resnet.", StringComparison.Ordinal));
        var notes = new List<string>();
        var (model, report) = HfResNetLoader.LoadForImageClassification(dir, numLabels: 2, log: notes.Add);
        using (model)
        {
            Assert.True(report.IsClean, string.Join("; ", notes));
            Assert.Empty(report.Unexpected);
            Assert.Equal(["classifier.1.bias", "classifier.1.weight"], report.NewlyInitialized.Order(StringComparer.Ordinal));
            Assert.True(model.state_dict()["resnet.encoder.stages.1.layers.0.shortcut.convolution.weight"]
                .equal(weights["encoder.stages.1.layers.0.shortcut.convolution.weight"]).all().item<bool>());
        }
        var (backbone, backboneReport) = HfResNetLoader.LoadModelWithReport(dir, log: notes.Add);
        using (backbone) Assert.True(backboneReport.IsClean, string.Join("; ", notes));
    }

    [Fact]
    public void AHeadOfAnotherSizeIsReplacedAndReported()
    {
        TinyResNet.WriteFolder(dir, numLabels: 3);
        var notes = new List<string>();
        var (model, report) = ImageClassifiers.LoadWithReport(dir, new ImageLoadOptions(NumLabels: 5, Log: notes.Add));
        using (model)
        {
            Assert.Equal(5, model.NumLabels);
            Assert.Equal(2, report.NewlyInitialized.Count);
            Assert.Equal(["classifier.1.bias", "classifier.1.weight"], report.Ignored.Order(StringComparer.Ordinal));
            Assert.Contains(notes, n => n.Contains("does not fit 5 labels"));
        }
    }

    [Fact]
    public void SaveAndReloadGiveTheSameLogitsAndATransformersConfig()
    {
        var source = Path.Combine(dir, "source");
        TinyResNet.WriteFolder(source, numLabels: 3);
        File.WriteAllText(Path.Combine(source, "preprocessor_config.json"), """{"image_processor_type": "ViTImageProcessor", "image_mean": [0.5, 0.5, 0.5]}""");
        using var model = ImageClassifiers.Load(source, new ImageLoadOptions(NumLabels: 4, Log: _ => { }));
        var saved = Path.Combine(dir, "saved");
        model.Save(saved);

        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(saved, "config.json")));
        Assert.Equal("resnet", config.RootElement.GetProperty("model_type").GetString());
        Assert.Equal("ResNetForImageClassification", config.RootElement.GetProperty("architectures")[0].GetString());
        Assert.Equal(4, config.RootElement.GetProperty("id2label").EnumerateObject().Count());
        Assert.Equal("basic", config.RootElement.GetProperty("layer_type").GetString());
        Assert.Equal(File.ReadAllText(Path.Combine(source, "preprocessor_config.json")), File.ReadAllText(Path.Combine(saved, "preprocessor_config.json")));
        Assert.Contains("classifier.1.weight", SafetensorsFile.ReadHeader(Path.Combine(saved, "model.safetensors")).Entries.Select(e => e.Name));

        var (reloaded, report) = ImageClassifiers.LoadWithReport(saved);
        using (reloaded)
        {
            Assert.True(report.IsClean);
            Assert.Empty(report.NewlyInitialized);
            Assert.Equal(4, reloaded.NumLabels);
            model.Module.eval();
            reloaded.Module.eval();
            using var x = Pixels();
            using var noGrad = no_grad();
            Assert.Equal(0.0, TinyResNet.MaxAbsDiff(model.Logits(x), reloaded.Logits(x)));
        }
    }

    [Fact]
    public void Bf16AndShardedCheckpointsLoad()
    {
        var bf16 = Path.Combine(dir, "bf16");
        var weights = TinyResNet.WriteFolder(bf16, numLabels: 3, dtype: ScalarType.BFloat16);
        using (var model = ImageClassifiers.Load(bf16))
        {
            model.Module.eval();
            using var x = Pixels();
            using var noGrad = no_grad();
            Assert.Equal(ScalarType.Float32, model.Module.parameters().First().dtype);
            Assert.True(TinyResNet.MaxAbsDiff(model.Logits(x), TinyResNet.Reference(weights, x, "basic")) < 1e-5);
        }

        var sharded = Path.Combine(dir, "sharded");
        var all = TinyResNet.WriteFolder(sharded, numLabels: 3);
        File.Delete(Path.Combine(sharded, "model.safetensors"));
        var names = all.Keys.Order(StringComparer.Ordinal).ToList();
        var first = names.Take(names.Count / 2).ToDictionary(n => n, n => all[n]);
        var second = names.Skip(names.Count / 2).ToDictionary(n => n, n => all[n]);
        SafetensorsFile.Write(Path.Combine(sharded, "model-00001-of-00002.safetensors"), first);
        SafetensorsFile.Write(Path.Combine(sharded, "model-00002-of-00002.safetensors"), second);
        var map = first.Keys.ToDictionary(k => k, _ => "model-00001-of-00002.safetensors");
        foreach (var k in second.Keys) map[k] = "model-00002-of-00002.safetensors";
        File.WriteAllText(Path.Combine(sharded, "model.safetensors.index.json"), JsonSerializer.Serialize(new { metadata = new { }, weight_map = map }));
        var (shardedModel, report) = ImageClassifiers.LoadWithReport(sharded);
        using (shardedModel)
        {
            Assert.True(report.IsClean);
            Assert.Equal(all.Count, report.Loaded.Count);
        }
    }

    [Fact]
    public void FrozenBatchNormKeepsItsStatisticsInTrainingModeUnlessAskedOtherwise()
    {
        TinyResNet.WriteFolder(dir, numLabels: 3);
        using var model = (ResNetImageClassifier)ImageClassifiers.Load(dir);
        const string stat = "resnet.encoder.stages.1.layers.0.layer.0.normalization.running_mean";
        using var before = model.Module.state_dict()[stat].clone();
        using var x = Pixels(batch: 4);
        double Drift() => (model.Module.state_dict()[stat] - before).abs().max().item<float>();

        // Backbone frozen (head only): BatchNorm normalises with the stored statistics, also in training mode.
        foreach (var (name, p) in model.Module.named_parameters()) p.requires_grad = name.StartsWith("classifier.", StringComparison.Ordinal);
        model.Module.train();
        using (var logits = model.Logits(x)) logits.sum().backward();
        Assert.Equal(0.0, Drift());
        // ... and gives what eval mode gives.
        using (var train = model.Logits(x).detach())
        {
            model.Module.eval();
            using var eval = model.Logits(x);
            Assert.True(TinyResNet.MaxAbsDiff(train, eval) < 1e-6);
        }

        // PyTorch's behaviour on request: batch statistics, running ones updated.
        model.BatchNormStatistics = BatchNormStatistics.Update;
        model.Module.train();
        using (model.Logits(x)) { }
        Assert.True(Drift() > 1e-4, "with Update the running statistics should move");

        // A BatchNorm whose weights train updates its statistics under the default rule; Freeze keeps them anyway.
        using var moved = model.Module.state_dict()[stat].clone();
        model.BatchNormStatistics = BatchNormStatistics.Freeze;
        foreach (var p in model.Module.parameters()) p.requires_grad = true;
        using (model.Logits(x)) { }
        Assert.True(model.Module.state_dict()[stat].equal(moved).all().item<bool>());
        model.BatchNormStatistics = BatchNormStatistics.FollowParameters;
        using (model.Logits(x)) { }
        Assert.False(model.Module.state_dict()[stat].equal(moved).all().item<bool>());
    }

    [Fact]
    public void BadInputGetsAClearError()
    {
        TinyResNet.WriteFolder(dir, numLabels: 3);
        using var model = ImageClassifiers.Load(dir);
        using var gray = randn(1, 1, 32, 32);
        var e = Assert.Throws<ArgumentException>(() => model.Logits(gray));
        Assert.Contains("1 channels", e.Message);
        Assert.Contains("num_channels 3", e.Message);
        using var flat = randn(3, 32, 32);
        Assert.Contains("[batch, channels, height, width]", Assert.Throws<ArgumentException>(() => model.Logits(flat)).Message);

        var odd = Path.Combine(dir, "odd");
        TinyResNet.WriteFolder(odd, extra: new() { ["layer_type"] = "preactivation" });
        var n = Assert.Throws<NotSupportedException>(() => ImageClassifiers.Load(odd));
        Assert.Contains("layer_type 'preactivation'", n.Message);
        Assert.Contains("basic, bottleneck", n.Message);

        var uneven = Path.Combine(dir, "uneven");
        TinyResNet.WriteFolder(uneven, extra: new() { ["depths"] = new[] { 1, 2, 2 } });
        Assert.Contains("depths has 3 entries but hidden_sizes has 2", Assert.Throws<InvalidDataException>(() => ImageClassifiers.Load(uneven)).Message);

        var wrongShape = Path.Combine(dir, "wrong-shape");
        TinyResNet.WriteFolder(wrongShape, extra: new() { ["embedding_size"] = 16 });
        Assert.Contains("resnet.embedder.embedder.convolution.weight", Assert.Throws<InvalidDataException>(() => ImageClassifiers.Load(wrongShape)).Message);
    }
}
