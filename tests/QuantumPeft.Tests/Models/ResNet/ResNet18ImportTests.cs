using System.IO.Compression;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using QuantumPeft.Data;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Onnx;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models;
using QuantumPeft.Models.ResNet;
using QuantumPeft.Models.Vision;
using Xunit.Abstractions;
using static TorchSharp.torch;
using OrtTensors = Microsoft.ML.OnnxRuntime.Tensors;

namespace QuantumPeft.Tests.Models.ResNet;

/// <summary>The bundled ImageNet ResNet, imported once into the cache (reused across runs) and loaded once per test run.</summary>
public sealed class ResNet18Fixture : IDisposable
{
    public string Folder { get; } = ModelResolver.Resolve("resnet18");
    public ResNetModel Model { get; }

    public ResNet18Fixture()
    {
        Model = HfResNetLoader.LoadModelWithReport(Folder, log: _ => { }).Model;
        Model.eval();
    }

    public void Dispose() => Model.Dispose();
}

[CollectionDefinition("ResNet18")]
public sealed class ResNet18Collection : ICollectionFixture<ResNet18Fixture>;

[Collection("ResNet18")]
public sealed class ResNet18ImportTests(ResNet18Fixture resnet, ITestOutputHelper output)
{
    static float[] Run(InferenceSession session, string input, Tensor x)
    {
        using var contiguous = x.contiguous();
        var value = NamedOnnxValue.CreateFromTensor(input, new OrtTensors.DenseTensor<float>(contiguous.data<float>().ToArray(), x.shape.Select(d => (int)d).ToArray()));
        using var results = session.Run([value]);
        return results.First().AsTensor<float>().ToArray();
    }

    static (double Max, double Relative) Compare(Tensor ours, float[] reference)
    {
        using var expected = tensor(reference).view(ours.shape);
        double max = (ours - expected).abs().max().item<float>();
        return (max, max / expected.abs().max().item<float>());
    }

    // Raw RGB images on the 0..255 scale with some structure (a smooth field plus noise), as ML.NET's ExtractPixels gives them.
    static Tensor RawImages(long seed)
    {
        var g = new Generator((ulong)seed, CPU);
        using var coarse = rand([1, 3, 7, 7], generator: g) * 255;
        using var smooth = nn.functional.interpolate(coarse, size: [224, 224], mode: InterpolationMode.Bilinear, align_corners: false);
        using var noise = randn([1, 3, 224, 224], generator: g) * 20;
        return (smooth + noise).clamp(0, 255);
    }

    [Fact]
    public void ImportedFolderHasTheGraphsArchitectureAndEveryInitializerAccountedFor()
    {
        var config = HfResNetLoader.LoadConfig(resnet.Folder);
        Assert.Equal((3, 64, "basic", "relu", false), (config.NumChannels, config.EmbeddingSize, config.LayerType, config.HiddenAct, config.DownsampleInFirstStage));
        Assert.Equal([64, 128, 256, 512], config.HiddenSizes);
        // ML.NET's "ResNet18" has three layers in its last stage: the graph has 22 convolutions and 9 residual sums.
        Assert.Equal([2, 2, 2, 3], config.Depths);
        Assert.Null(config.NumLabels);
        long parameters = resnet.Model.parameters().Sum(p => p.numel());
        output.WriteLine($"{parameters:N0} parameters");
        Assert.Equal(15_897_152, parameters);

        using var marker = JsonDocument.Parse(File.ReadAllText(Path.Combine(resnet.Folder, "qpeft-import.json")));
        var accounting = marker.RootElement.GetProperty("initializers").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        Assert.Equal(110, accounting.Count);
        Assert.Equal(110, accounting.Values.Distinct().Count());
        Assert.Equal("resnet.embedder.embedder.convolution.weight", accounting["Parameter91"]);
        Assert.Equal(22, accounting.Values.Count(v => v.EndsWith(".convolution.weight", StringComparison.Ordinal)));
        Assert.Equal(3, accounting.Values.Count(v => v.EndsWith(".shortcut.convolution.weight", StringComparison.Ordinal)));

        var names = SafetensorsFile.ReadHeader(Path.Combine(resnet.Folder, "model.safetensors")).Entries.Select(e => e.Name).ToList();
        Assert.Equal(110 + 22, names.Count);
        Assert.DoesNotContain(names, n => n.StartsWith("classifier", StringComparison.Ordinal));
        Assert.Contains("resnet.encoder.stages.3.layers.2.layer.1.normalization.running_var", names);
        Assert.Contains("resnet.encoder.stages.1.layers.0.shortcut.convolution.weight", names);

        using var prep = JsonDocument.Parse(File.ReadAllText(Path.Combine(resnet.Folder, "preprocessor_config.json")));
        Assert.Equal(224, prep.RootElement.GetProperty("size").GetProperty("height").GetInt32());
        var mean = prep.RootElement.GetProperty("image_mean").EnumerateArray().Select(v => v.GetDouble() * 255).ToArray();
        output.WriteLine($"image_mean x 255 (RGB): {string.Join(", ", mean.Select(m => m.ToString("F3")))}");
        // The mean image's channel averages, in RGB order: red highest, blue lowest (Caffe's BGR mean is 104, 117, 124).
        Assert.True(mean[0] > mean[1] && mean[1] > mean[2] && mean[2] > 95 && mean[0] < 130, string.Join(", ", mean));
    }

    [Fact]
    public void PooledFeaturesMatchOnnxRuntime()
    {
        using var session = new InferenceSession(File.ReadAllBytes(BundledResNet18.OnnxPath));
        var input = session.InputMetadata.Keys.Single();
        // What the graph takes: BGR planes after the mean subtraction, roughly -130..150.
        using var graphInput = randn([1, 3, 224, 224], generator: new Generator(11, CPU)) * 60;
        var expected = Run(session, input, graphInput);
        Assert.Equal(512, expected.Length);

        // The folder takes RGB (the reorder is folded into the stem), so give it the same image in RGB order.
        using var rgb = graphInput.flip(1);
        using var noGrad = no_grad();
        using var features = resnet.Model.Features(rgb);
        var (max, relative) = Compare(features, expected);
        output.WriteLine($"max |TorchSharp - ONNX Runtime| over 512 pooled features: {max:E2} (relative to the largest {relative:E2})");
        Assert.True(relative < 1e-4, $"features differ from ONNX Runtime by {max} ({relative} relative)");
    }

    [Fact]
    public void TheFolderReproducesMlNetsPreprocessingAndNetwork()
    {
        using var prepSession = new InferenceSession(File.ReadAllBytes(BundledResNet18.PreprocessOnnxPath));
        using var netSession = new InferenceSession(File.ReadAllBytes(BundledResNet18.OnnxPath));
        using var raw = RawImages(seed: 3);
        using var preprocessed = tensor(Run(prepSession, prepSession.InputMetadata.Keys.Single(), raw)).view(1, 3, 224, 224);
        var expected = Run(netSession, netSession.InputMetadata.Keys.Single(), preprocessed);

        OnnxImagePreprocessing prep;
        using (var stream = File.OpenRead(BundledResNet18.PreprocessOnnxPath)) prep = OnnxResNetReader.ReadPreprocessing(stream);
        using (prep)
        {
            Assert.Equal([2, 1, 0], prep.ChannelOrder);
            using var noGrad = no_grad();
            // Exact: the raw RGB image minus the per-pixel mean image (brought to RGB order).
            using var exactInput = raw - prep.MeanImage.flip(0).unsqueeze(0);
            using var exact = resnet.Model.Features(exactInput);
            var (exactMax, exactRelative) = Compare(exact, expected);

            // What the folder's preprocessor_config.json gives: rescale, then normalise with its mean and std.
            using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(resnet.Folder, "preprocessor_config.json")));
            double Get(string key) => config.RootElement.GetProperty(key).GetDouble();
            float[] Floats(string key) => config.RootElement.GetProperty(key).EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
            using var mean = tensor(Floats("image_mean")).view(1, 3, 1, 1);
            using var std = tensor(Floats("image_std")).view(1, 3, 1, 1);
            using var processed = (raw * Get("rescale_factor") - mean) / std;
            using var approx = resnet.Model.Features(processed);
            var (approxMax, approxRelative) = Compare(approx, expected);
            using var cosine = nn.functional.cosine_similarity(approx, tensor(expected).view(1, 512));
            output.WriteLine($"ML.NET pipeline (ResNetPreprocess.onnx + ResNet18.onnx) vs ours: per-pixel mean {exactRelative:E2} relative (max {exactMax:E2}); " +
                $"preprocessor_config.json's channel means {approxRelative:E2} relative, cosine {cosine.item<float>():F5}; mean image deviates up to {prep.MaxDeviation:F2} / 255");
            Assert.True(exactRelative < 1e-4, $"with the per-pixel mean the features differ by {exactRelative} relative");
            // The channel average is an approximation, and a close one.
            Assert.True(cosine.item<float>() > 0.99, $"cosine {cosine.item<float>()}");
            Assert.True(prep.MaxDeviation is > 1 and < 20, $"{prep.MaxDeviation}");
        }
    }

    [Fact]
    public void LoadingItAsAClassifierReportsANewHead()
    {
        var notes = new List<string>();
        var (model, report) = ImageClassifiers.LoadWithReport(resnet.Folder, new ImageLoadOptions(NumLabels: 10, Log: notes.Add));
        using (model)
        {
            Assert.Equal(("resnet", 10, 3, 224), (model.ModelType, model.NumLabels, model.NumChannels, model.ImageSize));
            Assert.Equal(["classifier.1.bias", "classifier.1.weight"], report.NewlyInitialized.Order(StringComparer.Ordinal));
            Assert.Empty(report.Missing);
            Assert.Empty(report.Unexpected);
            Assert.Equal(132, report.Loaded.Count);
        }
    }

    [Fact]
    public void AFewHeadOnlyStepsOnFashionMnistLowerTheLoss()
    {
        // 12 real Fashion-MNIST images of three classes (T-shirt, trouser, bag), grey replicated to RGB at 32 x 32 (kept small: 2 shared cores).
        var root = DebianPackageCache.Ensure("dataset-fashion-mnist");
        var data = Path.Combine(root, "usr", "share", "datasets", "fashion-mnist");
        var (images, labels) = ReadIdx(Path.Combine(data, "t10k-images-idx3-ubyte.gz"), Path.Combine(data, "t10k-labels-idx1-ubyte.gz"), [0, 1, 8], perClass: 4);
        using var model = (ResNetImageClassifier)ImageClassifiers.Load(resnet.Folder, new ImageLoadOptions(NumLabels: 3, Seed: 1, Log: _ => { }));
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(resnet.Folder, "preprocessor_config.json")));
        float[] Floats(string key) => config.RootElement.GetProperty(key).EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
        using var grey = tensor(images).view(-1, 1, 28, 28);
        using var resized = nn.functional.interpolate(grey.expand(-1, 3, -1, -1), size: [32, 32], mode: InterpolationMode.Bilinear, align_corners: false);
        using var pixels = (resized / 255 - tensor(Floats("image_mean")).view(1, 3, 1, 1)) / tensor(Floats("image_std")).view(1, 3, 1, 1);
        using var target = tensor(labels);

        foreach (var (name, p) in model.Module.named_parameters()) p.requires_grad = name.StartsWith("classifier.", StringComparison.Ordinal);
        var statistic = model.Module.state_dict()["resnet.encoder.stages.2.layers.0.layer.0.normalization.running_mean"];
        using var before = statistic.clone();
        using var optimizer = optim.AdamW(model.Module.parameters().Where(p => p.requires_grad), lr: 1e-2);
        model.Module.train();
        var losses = new List<float>();
        for (int step = 0; step < 4; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.Logits(pixels), target);
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }
        output.WriteLine($"head-only cross-entropy over 4 steps: {string.Join(", ", losses.Select(l => l.ToString("F3")))}");
        Assert.True(losses[^1] < 0.7 * losses[0], $"loss went {losses[0]} -> {losses[^1]}");
        // Frozen backbone: its BatchNorm statistics stayed the ImageNet ones.
        Assert.True(statistic.equal(before).all().item<bool>());
    }

    static (float[] Images, long[] Labels) ReadIdx(string imagesPath, string labelsPath, int[] classes, int perClass)
    {
        static byte[] Unzip(string path)
        {
            using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
            using var memory = new MemoryStream();
            gz.CopyTo(memory);
            return memory.ToArray();
        }
        static int BigEndian(byte[] b, int at) => (b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3];
        var images = Unzip(imagesPath);
        var labels = Unzip(labelsPath);
        Assert.Equal(0x803, BigEndian(images, 0));
        Assert.Equal(0x801, BigEndian(labels, 0));
        var pixels = new List<float>();
        var chosen = new List<long>();
        var counts = classes.ToDictionary(c => c, _ => 0);
        for (int i = 0; i < BigEndian(labels, 4) && counts.Values.Any(n => n < perClass); i++)
        {
            int label = labels[8 + i];
            if (!counts.TryGetValue(label, out var n) || n >= perClass) continue;
            counts[label] = n + 1;
            chosen.Add(Array.IndexOf(classes, label));
            pixels.AddRange(images.Skip(16 + i * 784).Take(784).Select(b => (float)b));
        }
        return ([.. pixels], [.. chosen]);
    }
}
