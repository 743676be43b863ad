using QuantumPeft.Data;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Roberta;
using QuantumPeft.Training;
using QuantumPeft.Tests.Data.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Roberta;

/// <summary>RoBERTa on a tiny folder the test writes: the loaded classifier against a plain double-precision computation, the tokenizer's layouts, training, adapters.</summary>
public sealed class RobertaTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-roberta-" + Guid.NewGuid().ToString("N"));
    readonly string folder;

    public RobertaTests() => folder = TinyRoberta.Write(Path.Combine(dir, "tiny"));

    public void Dispose()
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    // RoBERTa's forward written out plainly in double precision from the checkpoint's own tensors.
    static double[] Reference(IReadOnlyDictionary<string, Tensor> w, long[] ids, int pad, int numLabels)
    {
        Tensor W(string name) => w[name].to(ScalarType.Float64);
        Tensor Linear(Tensor x, string name) => x.matmul(W(name + ".weight").t()) + W(name + ".bias");
        Tensor Norm(Tensor x, string name)
        {
            var mean = x.mean([-1], keepdim: true);
            var variance = (x - mean).pow(2).mean([-1], keepdim: true);
            return (x - mean) / (variance + 1e-5).sqrt() * W(name + ".weight") + W(name + ".bias");
        }
        int length = ids.Length;
        // create_position_ids_from_input_ids: pad + running count of real tokens; padding keeps pad.
        var positions = new long[length];
        long count = 0;
        for (int t = 0; t < length; t++) positions[t] = ids[t] == pad ? pad : pad + ++count;
        var x = W("roberta.embeddings.word_embeddings.weight").index_select(0, tensor(ids))
              + W("roberta.embeddings.position_embeddings.weight").index_select(0, tensor(positions))
              + W("roberta.embeddings.token_type_embeddings.weight")[0];
        x = Norm(x, "roberta.embeddings.LayerNorm");
        var keyMask = tensor(ids.Select(i => i == pad ? double.NegativeInfinity : 0.0).ToArray());
        int d = TinyRoberta.Hidden / TinyRoberta.Heads;
        for (int l = 0; l < TinyRoberta.Layers; l++)
        {
            var p = $"roberta.encoder.layer.{l}.";
            var q = Linear(x, p + "attention.self.query");
            var k = Linear(x, p + "attention.self.key");
            var v = Linear(x, p + "attention.self.value");
            var heads = new List<Tensor>();
            for (int h = 0; h < TinyRoberta.Heads; h++)
            {
                var (qh, kh, vh) = (q[.., (h * d)..((h + 1) * d)], k[.., (h * d)..((h + 1) * d)], v[.., (h * d)..((h + 1) * d)]);
                var scores = qh.matmul(kh.t()) / Math.Sqrt(d) + keyMask;
                var e = (scores - scores.max(1, keepdim: true).values).exp();
                heads.Add((e / e.sum(1, keepdim: true)).matmul(vh));
            }
            var attended = Norm(Linear(cat(heads, 1), p + "attention.output.dense") + x, p + "attention.output.LayerNorm");
            var inner = Linear(attended, p + "intermediate.dense");
            inner = 0.5 * inner * (1 + (inner / Math.Sqrt(2)).erf());
            x = Norm(Linear(inner, p + "output.dense") + attended, p + "output.LayerNorm");
        }
        var first = Linear(x[0], "classifier.dense").tanh();
        var logits = Linear(first, "classifier.out_proj");
        return logits.data<double>().ToArray();
    }

    [Fact]
    public void LoadedClassifierMatchesAPlainComputationIncludingThePositionOffset()
    {
        var messages = new List<string>();
        var (model, report) = HfRobertaLoader.LoadForSequenceClassification(folder, 3, seed: 5, log: messages.Add);
        using var _m = model;
        model.eval();
        // The new head starts at std 0.02; larger numbers make every logit carry the encoder's differences.
        using (no_grad())
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.StartsWith("classifier.", StringComparison.Ordinal)))
                p.copy_(randn(p.shape, generator: new Generator(11, CPU)) * 0.5);
        Assert.Equal(["classifier.dense.bias", "classifier.dense.weight", "classifier.out_proj.bias", "classifier.out_proj.weight"], report.NewlyInitialized.Order(StringComparer.Ordinal));
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Contains(report.Ignored, k => k.StartsWith("lm_head.", StringComparison.Ordinal));
        Assert.Contains(report.Ignored, k => k.StartsWith("roberta.pooler.", StringComparison.Ordinal));

        var weights = new Dictionary<string, Tensor>(HfCheckpoint.ReadWeights(folder));
        foreach (var (name, t) in model.state_dict().Where(p => p.Key.StartsWith("classifier.", StringComparison.Ordinal))) weights[name] = t.detach().clone();
        // Row 2 is padded: its real tokens must give what they give alone.
        long[][] rows = [[0, 270, 17, 45, 2], [0, 88, 2, 1, 1]];
        using var ids = tensor(rows.SelectMany(r => r).ToArray(), [2, 5]);
        using var mask = ids.ne(1).to(ScalarType.Int64);
        using var __ = no_grad();
        var logits = model.forward(ids, mask, null).to(ScalarType.Float64);
        double worst = 0;
        for (int r = 0; r < rows.Length; r++)
        {
            var real = rows[r].Where(i => i != 1).ToArray();
            var expected = Reference(weights, real, pad: 1, numLabels: 3);
            for (int j = 0; j < 3; j++) worst = Math.Max(worst, Math.Abs(expected[j] - logits[r, j].item<double>()));
        }
        Assert.True(worst < 1e-4, $"RoBERTa logits differ from the plain computation by {worst}");
        // Without the offset (BERT's positions 0, 1, ...) the result is different: the test would see a wrong offset.
        Assert.True(Math.Abs(Reference(weights, rows[0], 1, 3)[0] - Reference(weights.ToDictionary(p => p.Key, p => p.Key == "roberta.embeddings.position_embeddings.weight" ? p.Value.roll(1, 0) : p.Value), rows[0], 1, 3)[0]) > 1e-3);
    }

    [Fact]
    public void TokenizerWritesRobertasSingleAndPairLayouts()
    {
        var encoder = RobertaTextEncoder.FromFolder(folder);
        var vocab = TinyRoberta.Vocab();
        Assert.Equal((0, 2, 1), (encoder.ClsTokenId, encoder.SepTokenId, encoder.PadTokenId));
        int hello = vocab["hello"], world = vocab["Ġworld"], the = vocab["Ġthe"];
        using var pair = encoder.Encode(["hello world", "hello"], ["hello the world", "world"], maxLength: 32);
        Assert.Equal(new long[] { 0, hello, world, 2, 2, hello, the, world, 2, 0, hello, 2, 2, vocab["w"], vocab["or"], vocab["ld"], 2, 1 },
            pair.InputIds.data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }, pair.AttentionMask.data<long>().ToArray());
        Assert.All(pair.TokenTypeIds.data<long>().ToArray(), t => Assert.Equal(0L, t));
        using var single = encoder.Encode(["hello world"]);
        Assert.Equal(new long[] { 0, hello, world, 2 }, single.InputIds.data<long>().ToArray());
        // longest_first: 4 special tokens + 4 of the 2 + 3 text tokens; the longer (second) text loses one.
        using var cut = encoder.Encode(["hello world"], ["hello the world"], maxLength: 8);
        Assert.Equal(new long[] { 0, hello, world, 2, 2, hello, the, 2 }, cut.InputIds.data<long>().ToArray());
    }

    [Fact]
    public void PaddedAndUnpaddedBatchesGiveTheSameLogits()
    {
        using var classifier = new TextClassifier(folder, 2, new FineTuneSpec { Method = "lora", Rank = 2, Seed = 3 }, maxLength: 32);
        classifier.SetTraining(false);
        TextExample[] examples = [new("hello world, hello the world", "the world", 0), new("hello", "world", 1)];
        using var _ = no_grad();
        var together = classifier.Forward(examples);
        for (int i = 0; i < examples.Length; i++)
        {
            var alone = classifier.Forward([examples[i]]);
            Assert.True((together[i] - alone[0]).abs().max().item<float>() < 1e-5f);
        }
    }

    [Fact]
    public void HeadsAndTargetsFollowTheArchitecture()
    {
        using var head = new TextClassifier(folder, 3, new FineTuneSpec { Method = "head" }, maxLength: 16);
        Assert.Equal(TinyRoberta.Hidden * TinyRoberta.Hidden + TinyRoberta.Hidden + TinyRoberta.Hidden * 3 + 3, head.Counts().Head);
        Assert.Equal(0, head.Counts().Adapter);
        Assert.Equal("classifier", head.Head);

        using var all = new TextClassifier(folder, 3, new FineTuneSpec { Method = "lora", Rank = 2 }, maxLength: 16);
        var adapted = all.Peft!.AdaptedLayers.Select(l => l.Path).ToList();
        Assert.Equal(6 * TinyRoberta.Layers, adapted.Count);
        Assert.DoesNotContain(adapted, p => p.StartsWith("classifier", StringComparison.Ordinal));

        using var paper = new TextClassifier(folder, 3, new FineTuneSpec { Method = "lora", Rank = 2, Targets = "paper" }, maxLength: 16);
        Assert.Equal(adapted, paper.Peft!.AdaptedLayers.Select(l => l.Path).ToList());
        // LoRA r = 2 on the six matrices: 2 (in + out) per matrix.
        long perLayer = 4 * 2 * (16 + 16) + 2 * (16 + 24) + 2 * (24 + 16);
        Assert.Equal(perLayer * TinyRoberta.Layers, paper.Counts().Adapter);

        // One meaning of "paper": params --model DIR --targets paper counts the same matrices from config.json alone.
        using var paper4 = new TextClassifier(folder, 3, new FineTuneSpec { Method = "lora", Rank = 4, Targets = "paper" }, maxLength: 16);
        var row = QuantumPeft.Tuners.ParameterTable.Rows(QuantumPeft.Models.Shapes.FolderShapes.FromFolder(folder, "paper")).Single(r => r.Method == "lora" && r.Rank == 4);
        Assert.Equal(row.TrainableParams, paper4.Counts().Adapter);
    }

    [Fact]
    public void AFewStepsLowerTheLossAndTheAdapterSavesReloadsAndMerges()
    {
        TextExample[] batch = [new("hello world", "the world", 0), new("hello", "hello the world", 1), new("world world", "hello", 2), new("the hello", "world", 1)];
        using var labels = tensor(batch.Select(b => (long)b.Label).ToArray());
        using var classifier = new TextClassifier(folder, 3, new FineTuneSpec { Method = "lora", Rank = 4, Seed = 4 }, maxLength: 32);
        var parameters = classifier.AdapterParameters.Concat(classifier.HeadParameters).ToList();
        using var optimizer = optim.AdamW(parameters, lr: 0.01);
        classifier.SetTraining(false);
        float Loss() { using var _ = no_grad(); return nn.functional.cross_entropy(classifier.Forward(batch), labels).item<float>(); }
        var before = Loss();
        // Dropout stays off, so the steps (and the test) do not depend on the global random stream other tests share.
        for (int step = 0; step < 15; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            nn.functional.cross_entropy(classifier.Forward(batch), labels).backward();
            optimizer.step();
        }
        var after = Loss();
        Assert.True(after < 0.7 * before, $"loss {before} -> {after}");

        using var ___ = no_grad();
        var trained = classifier.Forward(batch).clone();
        var adapterDir = Path.Combine(dir, "adapter");
        classifier.SaveAdapter(adapterDir);
        Assert.Equal((3, "classifier"), TextClassifier.ReadAdapterHead(adapterDir, folder));
        using (var reloaded = TextClassifier.FromAdapter(folder, adapterDir, maxLength: 32))
            Assert.True((reloaded.Forward(batch) - trained).abs().max().item<float>() < 1e-5f);

        var merged = Path.Combine(dir, "merged");
        classifier.SaveMerged(merged);
        Assert.Contains("RobertaForSequenceClassification", File.ReadAllText(Path.Combine(merged, "config.json")));
        Assert.True(File.Exists(Path.Combine(merged, "vocab.json")) && File.Exists(Path.Combine(merged, "merges.txt")));
        using var fromMerged = TextClassifier.FromClassifierFolder(merged, maxLength: 32);
        Assert.Null(fromMerged.Peft);
        Assert.True((fromMerged.Forward(batch) - trained).abs().max().item<float>() < 1e-4f);
    }

    [Fact]
    public void XlmRobertaSharesTheArchitectureAndAnUnknownModelTypeListsTheSupportedOnes()
    {
        var xlm = TinyRoberta.Write(Path.Combine(dir, "xlm"), modelType: "xlm-roberta");
        Assert.Same(TextEncoders.Roberta, TextEncoders.For(xlm));
        var other = Path.Combine(dir, "other");
        Directory.CreateDirectory(other);
        File.WriteAllText(Path.Combine(other, "config.json"), """{"model_type": "electra", "vocab_size": 10}""");
        var e = Assert.Throws<NotSupportedException>(() => new TextClassifier(other, 2, new FineTuneSpec()));
        Assert.Contains("model_type 'electra' is not a supported text encoder", e.Message);
        Assert.Contains("bert, roberta, xlm-roberta", e.Message);
    }

    [Fact]
    public void ARobertaFolderIsNotReadAsBertAndAMissingPadTokenIsRobertasOne()
    {
        var e = Assert.Throws<NotSupportedException>(() => QuantumPeft.Models.Bert.HfBertLoader.LoadModel(folder));
        Assert.Contains("architecture 'roberta' is not supported yet (supported: bert)", e.Message);
        var config = File.ReadAllText(Path.Combine(folder, "config.json")).Replace("\"pad_token_id\":1,", "");
        File.WriteAllText(Path.Combine(folder, "config.json"), config);
        Assert.Equal(HfRobertaLoader.DefaultPadTokenId, HfRobertaLoader.LoadConfig(folder).PadTokenId);
    }
}

/// <summary>The DeBERTa-v2 line of the registry: a DeBERTa folder is picked by its model_type and gets the paper's six matrices.</summary>
public sealed class DebertaV2RegistryTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("qpeft-deberta-registry-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void ADebertaFolderIsPickedByModelTypeAndTakesThePapersSixMatrices()
    {
        var json = QuantumPeft.Tests.Models.DebertaV2.TinyDeberta.ConfigJson();
        var folder = Path.Combine(dir, "deberta");
        using (var source = new QuantumPeft.Models.DebertaV2.DebertaV2ForSequenceClassification(QuantumPeft.Tests.Models.DebertaV2.TinyDeberta.Config(json), 3))
            QuantumPeft.Tests.Models.DebertaV2.TinyDeberta.WriteFolder(folder, json, source.state_dict());
        var arch = TextEncoders.For(folder);
        Assert.Same(TextEncoders.DebertaV2, arch);
        Assert.Equal((3, "classifier"), arch.ReadHead(folder));
        var (model, report) = arch.Load(folder, 3, arch.DefaultHead, 0, _ => { });
        using var _m = model;
        Assert.Empty(report.Missing);
        var config = new FineTuneSpec { Method = "lora", Rank = 2, Targets = arch.PaperTargets }.AdapterConfig(folder, "SEQ_CLS", arch.HeadModules);
        var peft = QuantumPeft.Tuners.PeftModel.Inject(model, config);
        int layers = json["num_hidden_layers"]!.GetValue<int>();
        var adapted = peft.AdaptedLayers.Select(l => l.Path).ToList();
        Assert.Equal(6 * layers, adapted.Count);
        foreach (var name in new[] { "attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj", "attention.output.dense", "intermediate.dense", "output.dense" })
            Assert.Equal(layers, adapted.Count(p => p.EndsWith(name, StringComparison.Ordinal) && (name != "output.dense" || !p.Contains("attention"))));
        Assert.DoesNotContain(adapted, p => p.StartsWith("pooler", StringComparison.Ordinal) || p.StartsWith("classifier", StringComparison.Ordinal));
    }
}
