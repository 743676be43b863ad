using System.Reflection;
using System.Text.Json.Nodes;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.DebertaV2;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.DebertaV2;

public sealed class DebertaV2ModelTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-deberta-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static long[,] Array2(Tensor t)
    {
        var flat = t.data<long>().ToArray();
        int rows = (int)t.shape[0], cols = (int)t.shape[1];
        var a = new long[rows, cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) a[i, j] = flat[i * cols + j];
        return a;
    }

    [Fact]
    public void StateDictNamesAreTheHuggingFaceNames()
    {
        var config = TinyDeberta.Config(TinyDeberta.ConfigJson(shareAttKey: false, positionBiasedInput: true, typeVocab: 2, convKernel: 3, embeddingSize: 24));
        using var model = new DebertaV2ForSequenceClassification(config, 3);
        var names = model.state_dict().Keys.ToHashSet();
        string[] expected =
        [
            "deberta.embeddings.word_embeddings.weight", "deberta.embeddings.position_embeddings.weight", "deberta.embeddings.token_type_embeddings.weight",
            "deberta.embeddings.embed_proj.weight", "deberta.embeddings.LayerNorm.weight", "deberta.embeddings.LayerNorm.bias",
            "deberta.encoder.rel_embeddings.weight", "deberta.encoder.LayerNorm.weight", "deberta.encoder.LayerNorm.bias",
            "deberta.encoder.conv.conv.weight", "deberta.encoder.conv.conv.bias", "deberta.encoder.conv.LayerNorm.weight", "deberta.encoder.conv.LayerNorm.bias",
            "deberta.encoder.layer.0.attention.self.query_proj.weight", "deberta.encoder.layer.0.attention.self.query_proj.bias",
            "deberta.encoder.layer.0.attention.self.key_proj.weight", "deberta.encoder.layer.0.attention.self.value_proj.bias",
            "deberta.encoder.layer.0.attention.self.pos_key_proj.weight", "deberta.encoder.layer.0.attention.self.pos_key_proj.bias",
            "deberta.encoder.layer.0.attention.self.pos_query_proj.weight", "deberta.encoder.layer.0.attention.self.pos_query_proj.bias",
            "deberta.encoder.layer.0.attention.output.dense.weight", "deberta.encoder.layer.0.attention.output.LayerNorm.weight",
            "deberta.encoder.layer.1.intermediate.dense.weight", "deberta.encoder.layer.1.output.dense.bias", "deberta.encoder.layer.1.output.LayerNorm.bias",
            "pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias",
        ];
        foreach (var name in expected) Assert.Contains(name, names);
        // 6 embedding tensors, 3 relative (embeddings + LayerNorm), 4 conv, 20 per layer (q, k, v, pos_k, pos_q, 2 dense + 2 LayerNorm), 4 head.
        Assert.Equal(6 + 3 + 4 + 20 * 2 + 4, names.Count);
        Assert.Equal([16L, 32], model.state_dict()["deberta.encoder.rel_embeddings.weight"].shape);

        // DeBERTa-v3's layout: shared keys, no absolute positions or token types, no conv.
        using var v3 = new DebertaV2Model(TinyDeberta.Config(TinyDeberta.ConfigJson()));
        var v3Names = v3.state_dict().Keys.ToList();
        Assert.DoesNotContain(v3Names, n => n.Contains("pos_key_proj") || n.Contains("position_embeddings") || n.Contains("token_type") || n.Contains("conv"));
        Assert.Equal(3 + 3 + 16 * 2, v3Names.Count);
    }

    [Fact]
    public void EveryLinearLayerIsASwappableModuleField()
    {
        var config = TinyDeberta.Config(TinyDeberta.ConfigJson(shareAttKey: false, embeddingSize: 24));
        using var model = new DebertaV2ForSequenceClassification(config, 2);
        var linears = model.named_modules().Where(m => m.module is Linear).ToList();
        Assert.Equal(1 + 2 * 8 + 2, linears.Count); // embed_proj; q, k, v, pos_k, pos_q and three dense per layer; pooler, classifier
        foreach (var (name, module) in linears)
        {
            var dot = name.LastIndexOf('.');
            var parent = dot < 0 ? model : model.named_modules().Single(m => m.name == name[..dot]).module;
            var field = parent.GetType().GetField(name[(dot + 1)..], BindingFlags.Instance | BindingFlags.NonPublic);
            Assert.NotNull(field);
            Assert.Equal(typeof(nn.Module<Tensor, Tensor>), field!.FieldType);
            Assert.False(field.IsInitOnly, $"{name} must be assignable so an adapter can replace it");
            Assert.Same(module, field.GetValue(parent));
        }
    }

    [Theory]
    // v3 layout (shared keys, buckets, relative only), as its config.json writes pos_att_type: a list.
    [InlineData(true, false, 8, 0, 0, null, false)]
    // v2 layout: own position projections, absolute positions as well, token types, the older "p2c|c2p" string.
    [InlineData(false, true, 8, 2, 0, null, true)]
    // No buckets: clamped plain distances (span = max_relative_positions 16).
    [InlineData(true, true, -1, 0, 0, null, false)]
    // deberta-v2-xlarge's ConvLayer, and embeddings narrower than hidden_size (embed_proj).
    [InlineData(false, false, 8, 0, 3, 24, false)]
    public void LoadedFolderMatchesTheDenseReference(bool share, bool positionBiased, int buckets, int types, int conv, int? embeddingSize, bool stringPosAttType)
    {
        var json = TinyDeberta.ConfigJson(share, positionBiased, buckets, types, conv, embeddingSize, stringPosAttType ? JsonValue.Create("p2c|c2p") : null);
        using var source = new DebertaV2ForSequenceClassification(TinyDeberta.Config(json), 3);
        TinyDeberta.Randomize(source, 11);
        // What pre-training checkpoints also hold: the old position_ids buffer and the MLM / RTD heads, dropped without a warning.
        var tensors = new Dictionary<string, Tensor>(source.state_dict())
        {
            ["deberta.embeddings.position_ids"] = arange(32, dtype: ScalarType.Int64).unsqueeze(0),
            ["lm_predictions.lm_head.dense.weight"] = zeros(TinyDeberta.Hidden, TinyDeberta.Hidden),
            ["mask_predictions.classifier.weight"] = zeros(1, TinyDeberta.Hidden),
        };
        var folder = TinyDeberta.WriteFolder(Path.Combine(_dir, "m"), json, tensors);

        var (model, report) = HfDebertaV2Loader.LoadForSequenceClassification(folder, 3, log: _ => { });
        using var _ = model;
        Assert.True(report.IsClean, string.Join(", ", report.Missing.Concat(report.Unexpected)));
        Assert.Empty(report.NewlyInitialized);
        Assert.Equal(3, report.Ignored.Count);
        model.eval();
        var (ids, mask, tt) = TinyDeberta.Batch();
        using var logits = model.call(ids, mask, types > 0 ? tt : null);
        var expected = TinyDeberta.ReferenceLogits(model.state_dict(), model.Config, Array2(ids), Array2(mask), Array2(tt));
        Assert.Equal([2L, 3], logits.shape);
        double maxDiff = 0, maxAbs = 0;
        for (int r = 0; r < 2; r++)
            for (int j = 0; j < 3; j++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(logits[r, j].item<float>() - expected[r][j]));
                maxAbs = Math.Max(maxAbs, Math.Abs(expected[r][j]));
            }
        Assert.True(maxAbs > 0.1, $"logits too small to test anything ({maxAbs})");
        Assert.True(maxDiff < 2e-5, $"max |logit - reference| = {maxDiff:E2}");
    }

    [Fact]
    public void EachPositionTermChangesTheScores()
    {
        // Guards the reference itself: with c2p or p2c dropped (and the scale changed accordingly) the logits move.
        var baseJson = TinyDeberta.ConfigJson();
        using var full = new DebertaV2ForSequenceClassification(TinyDeberta.Config(baseJson), 3);
        TinyDeberta.Randomize(full, 5);
        full.eval();
        var (ids, mask, tt) = TinyDeberta.Batch();
        using var a = full.call(ids, mask, null);
        foreach (var only in new[] { "c2p", "p2c" })
        {
            using var partial = new DebertaV2ForSequenceClassification(TinyDeberta.Config(TinyDeberta.ConfigJson(posAttType: new JsonArray(only))), 3);
            partial.load_state_dict(full.state_dict());
            partial.eval();
            using var b = partial.call(ids, mask, null);
            Assert.True(TinyDeberta.MaxAbsDiff(a, b) > 1e-3, only);
            var expected = TinyDeberta.ReferenceLogits(partial.state_dict(), partial.Config, Array2(ids), Array2(mask), Array2(tt));
            Assert.True(Math.Abs(b[0, 0].item<float>() - expected[0][0]) < 2e-5, only);
        }
    }

    [Fact]
    public void PaddingDoesNotChangeTheRealTokens()
    {
        using var model = new DebertaV2ForSequenceClassification(TinyDeberta.Config(TinyDeberta.ConfigJson(convKernel: 3)), 3);
        TinyDeberta.Randomize(model, 3);
        model.eval();
        var (ids, mask, _) = TinyDeberta.Batch();
        using var batched = model.call(ids, mask, null);
        using var alone = model.call(ids[1..2, ..4], null, null);
        Assert.True(TinyDeberta.MaxAbsDiff(batched[1..2], alone) < 1e-5, $"{TinyDeberta.MaxAbsDiff(batched[1..2], alone)}");
        // And the padded row differs from the full one (the test would pass trivially otherwise).
        Assert.True(TinyDeberta.MaxAbsDiff(batched[0..1], alone) > 1e-3);
    }

    [Theory]
    // bucket 8, max 16: |d| <= 4 kept; 5 -> 4 + ceil(3 ln(5/4) / ln(15/4)) = 5; 6 -> 5; 7 -> 6; 8 -> 6; 10 -> 7; 15 -> 7; 16 -> 8; 100 -> 12.
    [InlineData(8, 16, new[] { 0, 1, -1, 3, -3, 4, -4, 5, 6, 7, -7, 8, 10, 15, 16, 100 }, new[] { 0, 1, -1, 3, -3, 4, -4, 5, 5, 6, -6, 6, 7, 7, 8, 12 })]
    // DeBERTa-v3: 256 buckets over 512 positions: 128 kept, 129 -> 129, 200 -> 128 + ceil(127 ln(200/128) / ln(511/128)) = 169, 511 -> 255, -1000 -> -317.
    [InlineData(256, 512, new[] { 5, 127, 128, -128, 129, 200, 511, -1000 }, new[] { 5, 127, 128, -128, 129, 169, 255, -317 })]
    public void RelativePositionBucketsAreTheWorkedValues(int buckets, int maxPosition, int[] distances, int[] expected)
    {
        using var d = tensor(distances.Select(x => (long)x).ToArray());
        using var b = DebertaV2RelativePositions.LogBucket(d, buckets, maxPosition);
        Assert.Equal(expected, b.to(ScalarType.Int64).data<long>().Select(x => (int)x).ToArray());
        Assert.Equal(expected, distances.Select(x => TinyDeberta.Bucket(x, buckets, maxPosition)).ToArray());
    }

    [Fact]
    public void RelativePositionsAreQueryMinusKey()
    {
        using var plain = DebertaV2RelativePositions.Build(3, 3, -1, -1);
        Assert.Equal([1L, 3, 3], plain.shape);
        Assert.Equal(new long[] { 0, -1, -2, 1, 0, -1, 2, 1, 0 }, plain.data<long>().ToArray());
        using var bucketed = DebertaV2RelativePositions.Build(1, 12, 8, 16);
        Assert.Equal(new long[] { 0, -1, -2, -3, -4, -5, -5, -6, -6, -6, -7, -7 }, bucketed.data<long>().ToArray());
        Assert.Equal(0.5204998778130465, TinyDeberta.Erf(0.5), 14);
        Assert.Equal(0.9999779095030014, TinyDeberta.Erf(3.0), 14);
    }

    [Fact]
    public void AFewTrainingStepsLowerTheLoss()
    {
        using var model = new DebertaV2ForSequenceClassification(TinyDeberta.Config(TinyDeberta.ConfigJson()), 3, seed: 1);
        model.train();
        var (ids, mask, _) = TinyDeberta.Batch();
        using var labels = tensor(new long[] { 2, 0 });
        using var optimizer = optim.AdamW(model.parameters(), lr: 1e-2);
        var losses = new List<double>();
        for (int step = 0; step < 8; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.call(ids, mask, null), labels);
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }
        Assert.True(losses[^1] < losses[0] * 0.7, string.Join(", ", losses));
        Assert.NotNull(model.named_parameters().Single(p => p.name == "deberta.encoder.rel_embeddings.weight").parameter.grad);
    }

    [Fact]
    public void DropoutActsOnlyInTraining()
    {
        using var model = new DebertaV2ForSequenceClassification(TinyDeberta.Config(TinyDeberta.ConfigJson()), 2);
        var (ids, mask, _) = TinyDeberta.Batch();
        model.eval();
        using var e1 = model.call(ids, mask, null);
        using var e2 = model.call(ids, mask, null);
        Assert.Equal(0, TinyDeberta.MaxAbsDiff(e1, e2));
        model.train();
        using var t1 = model.call(ids, mask, null);
        Assert.True(TinyDeberta.MaxAbsDiff(e1, t1) > 0);
    }

    [Fact]
    public void HeadIsNewFromABaseCheckpointOrAnotherLabelCount()
    {
        var json = TinyDeberta.ConfigJson();
        var config = TinyDeberta.Config(json);
        using var trained = new DebertaV2ForSequenceClassification(config, 3);
        TinyDeberta.Randomize(trained, 2);
        trained.eval();
        var (ids, mask, _) = TinyDeberta.Batch();
        using var expected = trained.call(ids, mask, null);

        // save_pretrained's classifier folder reads back with the same logits, clean.
        var saved = Path.Combine(_dir, "cls");
        HfDebertaV2Loader.Save(saved, trained);
        Assert.Equal(3, HfDebertaV2Loader.ReadNumLabels(saved));
        using (var again = HfDebertaV2Loader.LoadClassifier(saved))
        {
            again.eval();
            Assert.True(TinyDeberta.MaxAbsDiff(expected, again.call(ids, mask, null)) < 1e-6);
        }
        var configText = File.ReadAllText(Path.Combine(saved, "config.json"));
        Assert.Contains("\"model_type\": \"deberta-v2\"", configText);
        Assert.Contains("\"DebertaV2ForSequenceClassification\"", configText);
        Assert.Contains("\"LABEL_2\"", configText);

        // Another label count: the classifier is new, the pooler and encoder come from the folder.
        var messages = new List<string>();
        var (two, report) = HfDebertaV2Loader.LoadForSequenceClassification(saved, 2, log: messages.Add);
        using (two)
        {
            Assert.Equal(["classifier.bias", "classifier.weight"], report.NewlyInitialized.Order().ToArray());
            Assert.Contains("pooler.dense.weight", report.Loaded);
            Assert.Contains(messages, m => m.Contains("3 outputs") && m.Contains("2-output"));
        }

        // A base checkpoint (DebertaV2Model, names without deberta.) gives a new pooler and classifier; a base model loads from a task folder.
        var baseFolder = Path.Combine(_dir, "base");
        HfDebertaV2Loader.Save(baseFolder, config with { Extra = null }, trained.Deberta.state_dict());
        var (fresh, baseReport) = HfDebertaV2Loader.LoadForSequenceClassification(baseFolder, 3, log: _ => { });
        using (fresh)
        {
            Assert.Equal(4, baseReport.NewlyInitialized.Count);
            Assert.Contains("pooler.dense.weight", baseReport.NewlyInitialized);
            Assert.True(baseReport.IsClean);
        }
        Assert.Null(HfDebertaV2Loader.ReadNumLabels(baseFolder));
        Assert.Throws<InvalidDataException>(() => HfDebertaV2Loader.LoadClassifier(baseFolder));
        using var encoder = HfDebertaV2Loader.LoadModel(saved, log: _ => { });
        encoder.eval();
        using var h1 = encoder.call(ids, mask, null);
        using var h2 = trained.Deberta.call(ids, mask, null);
        Assert.True(TinyDeberta.MaxAbsDiff(h1, h2) < 1e-6);
    }

    [Fact]
    public void ShardedBf16CheckpointLoadsTheRoundedWeights()
    {
        var json = TinyDeberta.ConfigJson(shareAttKey: false);
        using var model = new DebertaV2ForSequenceClassification(TinyDeberta.Config(json), 3);
        TinyDeberta.Randomize(model, 4);
        var bf16 = model.state_dict().ToDictionary(p => p.Key, p => p.Value.to(ScalarType.BFloat16));
        var folder = Path.Combine(_dir, "bf16");
        HfDebertaV2Loader.Save(folder, model.Config, bf16, maxShardBytes: 8000);
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors.index.json")));
        var (loaded, report) = HfDebertaV2Loader.LoadForSequenceClassification(folder, 3, log: _ => { });
        using var _ = loaded;
        Assert.True(report.IsClean);
        using (no_grad()) foreach (var (name, p) in model.named_parameters()) p.copy_(bf16[name].to(ScalarType.Float32));
        model.eval();
        loaded.eval();
        var (ids, mask, _) = TinyDeberta.Batch();
        Assert.True(TinyDeberta.MaxAbsDiff(model.call(ids, mask, null), loaded.call(ids, mask, null)) < 1e-6);
        Assert.Equal(ScalarType.Float32, loaded.parameters().First().dtype);
    }

    [Theory]
    [InlineData("pos_att_type", "\"c2p|p2p\"", "pos_att_type 'p2p' is not supported (accepted: c2p, p2c")]
    [InlineData("pos_att_type", "[\"c2c\"]", "pos_att_type 'c2c'")]
    [InlineData("hidden_act", "\"mish\"", "hidden_act 'mish' is not supported")]
    [InlineData("norm_rel_ebd", "\"batch_norm\"", "norm_rel_ebd 'batch_norm'")]
    [InlineData("model_type", "\"deberta\"", "model_type 'deberta' is not DeBERTa-v2")]
    [InlineData("conv_kernel_size", "4", "conv_kernel_size 4 is even")]
    [InlineData("pooler_hidden_size", "16", "pooler_hidden_size 16 differs")]
    public void ConfigItCannotHonourIsAnErrorNamingTheKey(string key, string value, string message)
    {
        var json = TinyDeberta.ConfigJson();
        json[key] = JsonNode.Parse(value);
        var folder = Path.Combine(_dir, "bad");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        var e = Assert.ThrowsAny<Exception>(() => HfDebertaV2Loader.LoadConfig(folder));
        Assert.Contains(message, e.Message);
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public void ConfigDefaultsAreTransformersAndRoundTrip()
    {
        var c = DebertaV2Config.FromJson("{\"model_type\": \"deberta-v2\", \"future_key\": 7}");
        Assert.Equal((128100, 1536, 24, 24, 6144, 0, 1e-7, 512), (c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.TypeVocabSize, c.LayerNormEps, c.MaxPositionEmbeddings));
        Assert.False(c.RelativeAttention);
        Assert.True(c.PositionBiasedInput);
        Assert.Null(c.PosAttType);
        Assert.Equal((-1, -1, false, "none", 0), (c.PositionBuckets, c.MaxRelativePositions, c.ShareAttKey, c.NormRelEbd, c.ConvKernelSize));
        Assert.Equal(512, c.AttentionSpan);
        var back = DebertaV2Config.FromJson(c.ToJson());
        Assert.Equal(7, back.Extra!["future_key"].GetInt32());
        var s = DebertaV2Config.FromJson("{\"model_type\": \"deberta-v2\", \"pos_att_type\": \"P2C | c2p\"}");
        Assert.Equal(["p2c", "c2p"], s.PosAttType!);
        Assert.Contains("\"pos_att_type\": [", s.ToJson());
    }
}
