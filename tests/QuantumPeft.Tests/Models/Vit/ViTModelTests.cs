using System.Text.Json;
using QuantumPeft.Models.Vision;
using QuantumPeft.Models.Vit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Vit;

/// <summary>Loading ViT folders of every layout, checked against the plain double-precision forward pass in <see cref="TinyViT"/>.</summary>
public sealed class ViTModelTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-vit-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    readonly List<string> _log = [];

    // The measured difference, written to the test output so a run shows the agreement, not only that it passed.
    double Diff(string what, Tensor a, Tensor b)
    {
        var d = TinyViT.MaxAbsDiff(a, b);
        output.WriteLine($"{what}: max |diff| {d:E2}");
        return d;
    }
    ImageLoadOptions Options(int? numLabels = null) => new(NumLabels: numLabels, Log: _log.Add);

    [Fact]
    public void A_classification_checkpoint_loads_and_matches_the_direct_computation()
    {
        var weights = TinyViT.Weights();
        var folder = TinyViT.Write(Path.Combine(_dir, "cls"), TinyViT.Config(), weights);
        var (model, report) = HfViTLoader.LoadForImageClassification(folder, Options());
        using var _ = model;
        Assert.True(report.IsClean);
        Assert.Empty(report.NewlyInitialized);
        Assert.Equal(weights.Count, report.Loaded.Count);
        Assert.Equal(TinyViT.Classes, model.NumLabels);
        Assert.Equal(TinyViT.ClassNames, model.Labels);
        Assert.Equal(16, model.ImageSize);

        using var pixels = TinyViT.Pixels(3);
        using var expected = TinyViT.ReferenceLogits(weights, pixels);
        using (no_grad())
        {
            using var logits = model.Logits(pixels);
            Assert.Equal(new long[] { 3, TinyViT.Classes }, logits.shape);
            Assert.Equal(ScalarType.Float32, logits.dtype);
            Assert.True(Diff("logits vs reference", logits, expected) < 2e-5);
            // Not trivially equal: the images give different logits.
            Assert.True(TinyViT.MaxAbsDiff(logits[0], logits[1]) > 1e-2);
        }

        // The backbone alone from the same folder: vit. stripped, the classifier set aside, no pooler (the checkpoint has none).
        var (backbone, backboneReport) = HfViTLoader.LoadModel(folder, log: _log.Add);
        using var _b = backbone;
        Assert.False(backbone.HasPooler);
        Assert.True(backboneReport.IsClean);
        Assert.Equal(["classifier.bias", "classifier.weight"], backboneReport.Ignored.Order());
        using (no_grad())
        {
            using var hidden = backbone.forward(pixels);
            using var reference = TinyViT.ReferenceHidden(weights, pixels);
            Assert.Equal(new long[] { 3, 17, TinyViT.Hidden }, hidden.shape);
            Assert.True(Diff("bare ViTModel hidden vs reference", hidden, reference) < 2e-5);
        }
    }

    [Fact]
    public void Position_embeddings_are_kept_at_the_checkpoint_size_and_resized_bicubically_otherwise()
    {
        var weights = TinyViT.Weights();
        var folder = TinyViT.Write(Path.Combine(_dir, "cls"), TinyViT.Config(), weights);
        var (model, _) = HfViTLoader.LoadForImageClassification(folder, Options());
        using var _m = model;
        var positions = weights["vit.embeddings.position_embeddings"];
        using var noGrad = no_grad();

        // Same size: the checkpoint's tensor itself.
        using var same = model.Vit.Embeddings.PositionEmbeddings(16, 16);
        Assert.Equal(0.0, TinyViT.MaxAbsDiff(same, positions));

        // 24 x 32 pixels = a 6 x 8 patch grid from the checkpoint's 4 x 4: torch's bicubic called directly, and the formula by hand.
        using var resized = model.Vit.Embeddings.PositionEmbeddings(24, 32);
        Assert.Equal(new long[] { 1, 1 + 6 * 8, TinyViT.Hidden }, resized.shape);
        using var grid = positions.narrow(1, 1, 16).reshape(1, 4, 4, TinyViT.Hidden).permute(0, 3, 1, 2);
        using var direct = nn.functional.interpolate(grid, size: [6, 8], mode: InterpolationMode.Bicubic, align_corners: false)
            .permute(0, 2, 3, 1).reshape(1, 48, TinyViT.Hidden);
        Assert.True(Diff("positions vs torch bicubic", resized.narrow(1, 1, 48), direct) < 1e-6);
        Assert.Equal(0.0, TinyViT.MaxAbsDiff(resized.narrow(1, 0, 1), positions.narrow(1, 0, 1)));
        using var byHand = TinyViT.ReferencePositions(positions.to(ScalarType.Float64), 6, 8);
        Assert.True(Diff("positions vs hand bicubic", resized, byHand) < 1e-5);
        // A real resize, not a copy: the grid's values moved.
        Assert.True(TinyViT.MaxAbsDiff(resized.narrow(1, 1, 16), positions.narrow(1, 1, 16)) > 1e-2);

        // The whole model at 24 x 32 and at 8 x 8 (a downscale) against the reference with the hand-written bicubic.
        foreach (var (h, w) in new[] { (24, 32), (8, 8) })
        {
            using var pixels = TinyViT.Pixels(2, h, w);
            using var logits = model.Logits(pixels);
            using var expected = TinyViT.ReferenceLogits(weights, pixels);
            Assert.True(Diff($"logits at {h} x {w} vs reference", logits, expected) < 2e-5);
        }
    }

    [Fact]
    public void A_sharded_bf16_bare_checkpoint_loads_with_a_new_head_reported()
    {
        var weights = TinyViT.Weights();
        var bare = TinyViT.BareWithPooler(weights).ToDictionary(p => p.Key, p => p.Value.to(ScalarType.BFloat16));
        var config = TinyViT.Config();
        config["architectures"] = new[] { "ViTModel" };
        config.Remove("id2label");
        config.Remove("label2id");
        var folder = TinyViT.Write(Path.Combine(_dir, "bare"), config, bare, maxShardBytes: 8_000);
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(folder, "model-*-of-*.safetensors").Length > 1);

        var (model, report) = HfViTLoader.LoadForImageClassification(folder, Options(numLabels: 3));
        using var _ = model;
        Assert.Equal(["classifier.bias", "classifier.weight"], report.NewlyInitialized.Order());
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Equal(["pooler.dense.bias", "pooler.dense.weight"], report.Ignored.Order());
        Assert.Contains(_log, m => m.StartsWith("note:") && m.Contains("classifier.weight"));
        Assert.Equal(["LABEL_0", "LABEL_1", "LABEL_2"], model.Labels);

        // The backbone equals the reference computed from the bf16 values (widened exactly to double).
        var rounded = bare.ToDictionary(p => "vit." + p.Key, p => p.Value.to(ScalarType.Float32));
        using var pixels = TinyViT.Pixels(2);
        using (no_grad())
        {
            using var hidden = model.Vit.forward(pixels);
            using var expected = TinyViT.ReferenceHidden(rounded, pixels);
            Assert.True(Diff("bf16 sharded hidden vs reference", hidden, expected) < 2e-5);
        }

        // The bare model keeps its pooler: dense + tanh on [CLS].
        var (backbone, backboneReport) = HfViTLoader.LoadModel(folder, log: _log.Add);
        using var _b = backbone;
        Assert.True(backbone.HasPooler);
        Assert.True(backboneReport.IsClean);
        Assert.Empty(backboneReport.NewlyInitialized);
        using (no_grad())
        {
            using var hidden = backbone.forward(pixels);
            using var pooled = backbone.Pool(hidden);
            using var reference = TinyViT.ReferenceHidden(rounded, pixels).select(1, 0);
            using var expected = (reference.matmul(bare["pooler.dense.weight"].to(ScalarType.Float64).t()) + bare["pooler.dense.bias"].to(ScalarType.Float64)).tanh();
            Assert.True(Diff("pooler vs reference", pooled, expected) < 2e-5);
        }
    }

    [Fact]
    public void A_checkpoint_head_of_another_size_is_replaced_and_reported_through_the_registry()
    {
        var weights = TinyViT.Weights();
        var folder = TinyViT.Write(Path.Combine(_dir, "cls"), TinyViT.Config(), weights);
        Assert.True(ImageClassifiers.IsImageClassifier(folder));
        var (model, report) = ImageClassifiers.LoadWithReport(folder, Options(numLabels: 10));
        using var _ = model;
        Assert.IsType<ViTForImageClassification>(model);
        Assert.Equal("vit", model.ModelType);
        Assert.Equal(["classifier"], model.HeadModules);
        Assert.Equal(10, model.NumLabels);
        Assert.Equal(["classifier.bias", "classifier.weight"], report.NewlyInitialized.Order());
        Assert.Equal(["classifier.bias", "classifier.weight"], report.Ignored.Order());
        Assert.True(report.IsClean);
        Assert.Contains(_log, m => m.Contains("5-class classifier was not used") && m.Contains("new 10-class"));

        using var pixels = TinyViT.Pixels(2);
        using (no_grad())
        {
            using var logits = model.Logits(pixels);
            Assert.Equal(new long[] { 2, 10 }, logits.shape);
            // The new head sits on the loaded backbone: its logits are the head applied to the reference [CLS] state.
            var vit = (ViTForImageClassification)model;
            var head = vit.state_dict();
            using var cls = TinyViT.ReferenceHidden(weights, pixels).select(1, 0);
            using var expected = cls.matmul(head["classifier.weight"].to(ScalarType.Float64).t()) + head["classifier.bias"].to(ScalarType.Float64);
            Assert.True(Diff("new head logits vs reference", logits, expected) < 2e-5);
            // transformers' initialisation: truncated normal(0, 0.02) weights, zero bias.
            Assert.Equal(0.0, head["classifier.bias"].abs().max().item<float>());
            var std = head["classifier.weight"].std().item<float>();
            Assert.InRange(std, 0.012, 0.028);
        }

        // The same seed gives the same new head; another seed another.
        var (again, _) = ImageClassifiers.LoadWithReport(folder, Options(numLabels: 10));
        var (other, _) = ImageClassifiers.LoadWithReport(folder, Options(numLabels: 10) with { Seed = 7 });
        using var _a = again;
        using var _o = other;
        var w0 = model.Module.state_dict()["classifier.weight"];
        Assert.Equal(0.0, TinyViT.MaxAbsDiff(w0, again.Module.state_dict()["classifier.weight"]));
        Assert.True(TinyViT.MaxAbsDiff(w0, other.Module.state_dict()["classifier.weight"]) > 1e-3);
    }

    [Fact]
    public void Pytorch_bin_weights_load_like_safetensors()
    {
        var weights = TinyViT.Weights();
        var folder = Path.Combine(_dir, "bin");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), TinyViT.Json(TinyViT.Config()));
        TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(Path.Combine(folder, "pytorch_model.bin"), weights);
        var (model, report) = HfViTLoader.LoadForImageClassification(folder, Options());
        using var _ = model;
        Assert.True(report.IsClean);
        using var pixels = TinyViT.Pixels(2);
        using var expected = TinyViT.ReferenceLogits(weights, pixels);
        using (no_grad())
        {
            using var logits = model.Logits(pixels);
            Assert.True(Diff("pytorch_model.bin logits vs reference", logits, expected) < 2e-5);
        }
    }

    [Fact]
    public void Save_writes_what_save_pretrained_writes_and_reloads_to_the_same_logits()
    {
        var weights = TinyViT.Weights();
        var source = TinyViT.Write(Path.Combine(_dir, "src"), TinyViT.Config(), weights);
        File.WriteAllText(Path.Combine(source, HfViTLoader.PreprocessorConfig), """{"image_processor_type": "ViTImageProcessor", "size": {"height": 16, "width": 16}}""");
        var (model, _) = HfViTLoader.LoadForImageClassification(source, Options(numLabels: 3));
        using var _m = model;
        model.Labels = ["red", "green", "blue"];
        var saved = Path.Combine(_dir, "saved");
        model.Save(saved, source);

        Assert.True(File.Exists(Path.Combine(saved, "model.safetensors")));
        Assert.Equal(File.ReadAllText(Path.Combine(source, HfViTLoader.PreprocessorConfig)), File.ReadAllText(Path.Combine(saved, HfViTLoader.PreprocessorConfig)));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(saved, "config.json")));
        var root = doc.RootElement;
        Assert.Equal("vit", root.GetProperty("model_type").GetString());
        Assert.Equal("ViTForImageClassification", root.GetProperty("architectures")[0].GetString());
        Assert.Equal("blue", root.GetProperty("id2label").GetProperty("2").GetString());
        Assert.Equal(1, root.GetProperty("label2id").GetProperty("green").GetInt32());
        Assert.Equal(16, root.GetProperty("image_size").GetInt32());
        Assert.Equal(1e-12, root.GetProperty("layer_norm_eps").GetDouble());
        Assert.Equal("4.46.0", root.GetProperty("transformers_version").GetString());   // unknown keys are kept

        var names = QuantumPeft.Formats.Safetensors.SafetensorsFile.Read(Path.Combine(saved, "model.safetensors"));
        Assert.Equal(TinyViT.Shapes(3).Keys, names.Keys.Order(StringComparer.Ordinal));
        foreach (var t in names.Values) t.Dispose();

        var (reloaded, report) = HfViTLoader.LoadForImageClassification(saved, Options());
        using var _r = reloaded;
        Assert.True(report.IsClean);
        Assert.Empty(report.NewlyInitialized);
        Assert.Equal(["red", "green", "blue"], reloaded.Labels);
        using var pixels = TinyViT.Pixels(2);
        using (no_grad())
        {
            using var a = model.Logits(pixels);
            using var b = reloaded.Logits(pixels);
            Assert.Equal(0.0, TinyViT.MaxAbsDiff(a, b));
        }
    }

    [Fact]
    public void Bad_configs_and_pixel_values_get_clear_errors()
    {
        var weights = TinyViT.Weights();
        var bad = TinyViT.Write(Path.Combine(_dir, "selu"), TinyViT.Config(act: "selu"), weights);
        var e = Assert.Throws<NotSupportedException>(() => ImageClassifiers.Load(bad, Options()));
        Assert.Contains("hidden_act 'selu' is not supported", e.Message);
        Assert.Contains("config.json", e.Message);

        var folder = TinyViT.Write(Path.Combine(_dir, "ok"), TinyViT.Config(), weights);
        var (model, _) = HfViTLoader.LoadForImageClassification(folder, Options());
        using var _m = model;
        using var noGrad = no_grad();
        using var gray = TinyViT.Pixels(1, channels: 1);
        Assert.Contains("1 channels but this ViT expects num_channels 3", Assert.Throws<ArgumentException>(() => model.Logits(gray)).Message);
        using var odd = TinyViT.Pixels(1, 18, 16);
        Assert.Contains("18 x 16 is not a multiple of this ViT's patch_size 4", Assert.Throws<ArgumentException>(() => model.Logits(odd)).Message);
        using var flat = zeros(3, 16, 16);
        Assert.Contains("[batch, channels, height, width]", Assert.Throws<ArgumentException>(() => model.Logits(flat)).Message);

        // A checkpoint whose backbone lacks a tensor is an error naming it, not a silently random layer.
        var partial = weights.Where(p => p.Key != "vit.encoder.layer.1.attention.attention.key.weight").ToDictionary(p => p.Key, p => p.Value);
        var holed = TinyViT.Write(Path.Combine(_dir, "holed"), TinyViT.Config(), partial);
        Assert.Contains("vit.encoder.layer.1.attention.attention.key.weight",
            Assert.Throws<InvalidDataException>(() => HfViTLoader.LoadForImageClassification(holed, Options())).Message);

        var heads = TinyViT.Config();
        heads["num_attention_heads"] = 5;
        var misfit = TinyViT.Write(Path.Combine(_dir, "heads"), heads, weights);
        Assert.Contains("hidden_size 32 is not divisible by num_attention_heads 5",
            Assert.Throws<InvalidDataException>(() => HfViTLoader.LoadForImageClassification(misfit, Options())).Message);
    }

    [Fact]
    public void Config_defaults_are_transformers_defaults()
    {
        var c = ViTConfig.FromJson("""{"model_type": "vit"}""");
        Assert.Equal((768, 12, 12, 3072, "gelu"), (c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.HiddenAct));
        Assert.Equal((0.0, 0.0, 0.02, 1e-12), (c.HiddenDropoutProb, c.AttentionProbsDropoutProb, c.InitializerRange, c.LayerNormEps));
        Assert.Equal((224, 16, 3, true, 16), (c.ImageSize, c.PatchSize, c.NumChannels, c.QkvBias, c.EncoderStride));
        Assert.Null(c.Labels());
        // ViT-B/16's 197 tokens, 85.8M parameters without a head (transformers' ViTModel with pooler: 86,389,248).
        using var model = new ViTModel(c with { NumHiddenLayers = 1 }, addPoolingLayer: true);
        long perLayer = 4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768 + 4 * 768;
        long rest = 768 + 197 * 768 + 3 * 16 * 16 * 768 + 768 + 2 * 768 + 768 * 768 + 768;
        Assert.Equal(perLayer + rest, model.parameters().Sum(p => p.numel()));
        Assert.Equal(86_389_248, 12 * perLayer + rest);
    }

    [Fact]
    public void Fresh_weights_follow_transformers_initialisation_and_dropout_acts_only_in_training()
    {
        var config = ViTConfig.FromJson(TinyViT.Json(TinyViT.Config())) with { InitializerRange = 0.05, HiddenDropoutProb = 0.3 };
        using var model = new ViTForImageClassification(config, 3, seed: 4);
        var state = model.state_dict();
        foreach (var name in new[] { "vit.embeddings.position_embeddings", "vit.embeddings.cls_token", "vit.embeddings.patch_embeddings.projection.weight",
                                     "vit.encoder.layer.1.attention.attention.query.weight", "classifier.weight" })
        {
            var std = state[name].std().item<float>();
            Assert.InRange(std, name.Contains("cls_token") ? 0.02 : 0.04, name.Contains("cls_token") ? 0.09 : 0.06);
        }
        Assert.Equal(0.0, state["vit.encoder.layer.0.intermediate.dense.bias"].abs().max().item<float>());
        Assert.Equal(1.0, state["vit.encoder.layer.0.layernorm_before.weight"].min().item<float>());
        // The same seed, the same model.
        using var twin = new ViTForImageClassification(config, 3, seed: 4);
        Assert.Equal(0.0, TinyViT.MaxAbsDiff(state["vit.embeddings.position_embeddings"], twin.state_dict()["vit.embeddings.position_embeddings"]));

        using var pixels = TinyViT.Pixels(2);
        using var noGrad = no_grad();
        model.train();
        using (var a = model.Logits(pixels)) using (var b = model.Logits(pixels)) Assert.True(TinyViT.MaxAbsDiff(a, b) > 1e-4);
        model.eval();
        using (var a = model.Logits(pixels)) using (var b = model.Logits(pixels)) Assert.Equal(0.0, TinyViT.MaxAbsDiff(a, b));
    }
}
