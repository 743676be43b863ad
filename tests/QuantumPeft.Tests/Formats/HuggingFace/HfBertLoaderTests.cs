using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using QuantumPeft.Tests.Models.Bert;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Formats.HuggingFace;

public sealed class HfBertLoaderTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-hf-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Folder(string name) => Path.Combine(_dir, name);

    static Tensor Hidden(nn.Module<Tensor, Tensor?, Tensor?, Tensor> model)
    {
        model.eval();
        var (ids, mask, types) = TinyBert.Batch();
        using var noGrad = no_grad();
        return model.call(ids, mask, types);
    }

    /// <summary>A base checkpoint folder in the real layout: config.json + model.safetensors (names embeddings.*, ...).</summary>
    (BertModel Model, string Folder) SavedBase(string name, long? maxShardBytes = null)
    {
        var model = new BertModel(TinyBert.Config(), seed: 11);
        var folder = Folder(name);
        HfBertLoader.Save(folder, model, maxShardBytes: maxShardBytes);
        return (model, folder);
    }

    [Fact]
    public void BaseFolderRoundTripsWithEqualForward()
    {
        var (original, folder) = SavedBase("base");
        Assert.True(File.Exists(Path.Combine(folder, "config.json")));
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors")));
        Assert.Contains("\"model_type\": \"bert\"", File.ReadAllText(Path.Combine(folder, "config.json")));
        var messages = new List<string>();
        var (loaded, report) = HfBertLoader.LoadModelWithReport(folder, log: messages.Add);
        Assert.True(report.IsClean);
        Assert.Equal(original.state_dict().Count, report.Loaded.Count);
        Assert.Empty(messages);
        Assert.True(loaded.HasPooler);
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(original), Hidden(loaded)));
    }

    [Fact]
    public void ShardedFolderLoadsThroughItsIndex()
    {
        var (original, folder) = SavedBase("sharded", maxShardBytes: 8_000);
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors")));
        var weightMap = HfCheckpoint.ReadWeightMap(Path.Combine(folder, "model.safetensors.index.json"));
        var shards = weightMap.Values.Distinct().ToList();
        Assert.True(shards.Count > 2, $"expected several shards, got {shards.Count}");
        Assert.All(shards, s => Assert.Matches(@"^model-\d{5}-of-\d{5}\.safetensors$", s));
        Assert.Equal(original.state_dict().Keys.Order(), weightMap.Keys.Order());
        var loaded = HfBertLoader.LoadModel(folder);
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(original), Hidden(loaded)));
    }

    [Fact]
    public void MissingShardIsNamed()
    {
        var (_, folder) = SavedBase("sharded-broken", maxShardBytes: 8_000);
        var shard = Path.Combine(folder, "model-00002-of-" + Directory.GetFiles(folder, "model-00001-of-*")[0][^17..]);
        File.Delete(shard);
        var e = Assert.Throws<FileNotFoundException>(() => HfBertLoader.LoadModel(folder));
        Assert.Contains(Path.GetFileName(shard), e.Message);
    }

    [Fact]
    public void TaskCheckpointWithBertPrefixLoadsIntoABaseModel()
    {
        using var classifier = new BertForSequenceClassification(TinyBert.Config(), 3, head: "pooler", seed: 4);
        var folder = Folder("task");
        HfBertLoader.Save(folder, classifier);
        using var weights = new DisposableDict(SafetensorsFile.Read(Path.Combine(folder, "model.safetensors")));
        Assert.Contains("bert.encoder.layer.0.attention.self.query.weight", weights.Tensors.Keys);
        Assert.Contains("classifier.weight", weights.Tensors.Keys);

        var messages = new List<string>();
        var (model, report) = HfBertLoader.LoadModelWithReport(folder, log: messages.Add);
        Assert.True(report.IsClean, string.Join("; ", messages));
        Assert.Equal(["classifier.bias", "classifier.weight"], report.Ignored.Order());
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(classifier.Bert), Hidden(model)));
    }

    [Fact]
    public void BaseCheckpointGivesAClassifierWhoseOnlyNewPartIsTheHead()
    {
        var (original, folder) = SavedBase("base-for-task");
        var messages = new List<string>();
        var (model, report) = HfBertLoader.LoadForSequenceClassification(folder, numLabels: 2, head: "mean", seed: 3, log: messages.Add);
        Assert.True(report.IsClean);
        Assert.Equal(["classifier.bias", "classifier.weight"], report.NewlyInitialized.Order());
        Assert.Equal(["pooler.dense.bias", "pooler.dense.weight"], report.Ignored.Order());
        Assert.DoesNotContain(messages, m => m.StartsWith("warning"));
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(original), Hidden(model.Bert)));
        // The seed decides the new head.
        var again = BertForSequenceClassification.FromPretrained(folder, 2, "mean", seed: 3);
        var other = BertForSequenceClassification.FromPretrained(folder, 2, "mean", seed: 4);
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(model), Hidden(again)));
        Assert.True(TinyBert.MaxAbsDiff(Hidden(model), Hidden(other)) > 1e-4);
    }

    [Fact]
    public void ClassifierRoundTripsWithEqualLogits()
    {
        using var classifier = new BertForSequenceClassification(TinyBert.Config(), 1, head: "mean", seed: 9);
        var folder = Folder("regression");
        HfBertLoader.Save(folder, classifier);
        var config = File.ReadAllText(Path.Combine(folder, "config.json"));
        Assert.Contains("BertForSequenceClassification", config);
        Assert.Contains("\"problem_type\": \"regression\"", config);
        var (loaded, report) = HfBertLoader.LoadForSequenceClassification(folder, 1, "mean", seed: 100, log: _ => { });
        Assert.True(report.IsClean);
        Assert.Empty(report.NewlyInitialized);
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(classifier), Hidden(loaded)));
    }

    [Fact]
    public void LegacyGammaBetaNamesLoad()
    {
        var (original, folder) = SavedBase("legacy");
        var path = Path.Combine(folder, "model.safetensors");
        var renamed = SafetensorsFile.Read(path).ToDictionary(
            p => p.Key.Replace("LayerNorm.weight", "LayerNorm.gamma").Replace("LayerNorm.bias", "LayerNorm.beta"), p => p.Value);
        Assert.Contains("embeddings.LayerNorm.gamma", renamed.Keys);
        SafetensorsFile.Write(path, renamed);
        var (loaded, report) = HfBertLoader.LoadModelWithReport(folder, log: _ => { });
        Assert.True(report.IsClean);
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(original), Hidden(loaded)));
    }

    [Fact]
    public void PytorchModelBinLoads()
    {
        var (original, folder) = SavedBase("bin");
        var tensors = SafetensorsFile.Read(Path.Combine(folder, "model.safetensors"));
        File.Delete(Path.Combine(folder, "model.safetensors"));
        PyTorchPickler.PickleStateDict(Path.Combine(folder, "pytorch_model.bin"), tensors);
        var loaded = HfBertLoader.LoadModel(folder);
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(original), Hidden(loaded)));
    }

    [Fact]
    public void MissingAndUnexpectedKeysAreReportedByNameAndWarnedOnce()
    {
        var (_, folder) = SavedBase("partial");
        var path = Path.Combine(folder, "model.safetensors");
        var tensors = SafetensorsFile.Read(path);
        tensors.Remove("encoder.layer.1.output.dense.bias");
        tensors["encoder.layer.9.surprise.weight"] = ones(2);
        SafetensorsFile.Write(path, tensors);
        var messages = new List<string>();
        var (_, report) = HfBertLoader.LoadModelWithReport(folder, log: messages.Add);
        Assert.Equal(["encoder.layer.1.output.dense.bias"], report.Missing);
        Assert.Equal(["encoder.layer.9.surprise.weight"], report.Unexpected);
        Assert.False(report.IsClean);
        Assert.Equal(2, messages.Count);
        Assert.Contains(messages, m => m.StartsWith("warning") && m.Contains("encoder.layer.1.output.dense.bias"));
        Assert.Contains(messages, m => m.StartsWith("warning") && m.Contains("encoder.layer.9.surprise.weight"));
        // The same load again says nothing new.
        var again = new List<string>();
        HfBertLoader.LoadModelWithReport(folder, log: again.Add);
        Assert.Empty(again);
    }

    [Fact]
    public void ShapeMismatchNamesTheKeyAndBothShapes()
    {
        var (_, folder) = SavedBase("mismatch");
        var path = Path.Combine(folder, "model.safetensors");
        var tensors = SafetensorsFile.Read(path);
        tensors["encoder.layer.0.attention.self.key.weight"] = zeros(16, 8);
        SafetensorsFile.Write(path, tensors);
        var e = Assert.Throws<InvalidDataException>(() => HfBertLoader.LoadModel(folder));
        Assert.Contains("'encoder.layer.0.attention.self.key.weight'", e.Message);
        Assert.Contains("[16, 8]", e.Message);
        Assert.Contains("[16, 16]", e.Message);
    }

    [Fact]
    public void MissingConfigIsAFileNotFoundNamingThePath()
    {
        var (_, folder) = SavedBase("no-config");
        File.Delete(Path.Combine(folder, "config.json"));
        var e = Assert.Throws<FileNotFoundException>(() => HfBertLoader.LoadModel(folder));
        Assert.Equal(Path.Combine(folder, "config.json"), e.FileName);
        Assert.Contains("config.json", e.Message);
        Assert.Throws<FileNotFoundException>(() => ModelResolver.Resolve(folder));
    }

    [Fact]
    public void MissingWeightsIsAFileNotFoundListingTheExpectedFiles()
    {
        var (_, folder) = SavedBase("no-weights");
        File.Delete(Path.Combine(folder, "model.safetensors"));
        var e = Assert.Throws<FileNotFoundException>(() => HfBertLoader.LoadModel(folder));
        Assert.Contains(folder, e.Message);
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("pytorch_model.bin", e.Message);
    }

    [Fact]
    public void MissingFolderIsNamed()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => HfBertLoader.LoadModel(Folder("nowhere")));
        Assert.Contains("nowhere", e.Message);
    }

    [Fact]
    public void UnsupportedArchitectureIsAClearError()
    {
        var (_, folder) = SavedBase("gpt2");
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "gpt2", "n_embd": 16, "n_layer": 2}""");
        var e = Assert.Throws<NotSupportedException>(() => HfBertLoader.LoadModel(folder));
        Assert.Contains("architecture 'gpt2' is not supported yet (supported: bert)", e.Message);
    }

    [Fact]
    public void ResolverAcceptsAFolderAndRejectsUnknownNames()
    {
        var (_, folder) = SavedBase("resolve");
        Assert.Equal(Path.GetFullPath(folder), ModelResolver.Resolve(folder));
        var e = Assert.Throws<ArgumentException>(() => ModelResolver.Resolve("bert-base-uncased"));
        Assert.Contains("unknown model 'bert-base-uncased'", e.Message);
        Assert.Contains("minilm", e.Message);
    }

    [Fact]
    public void WritingAnotherLayoutRemovesStaleWeightFiles()
    {
        var (model, folder) = SavedBase("relayout", maxShardBytes: 8_000);
        HfBertLoader.Save(folder, model);
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors")));
        Assert.Empty(Directory.GetFiles(folder, "model-*-of-*.safetensors"));
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors.index.json")));
    }

    [Fact]
    public void AStateDictWritesWithItsConfigAndTheSourceTokenizerFiles()
    {
        var (original, source) = SavedBase("with-vocab");
        File.WriteAllText(Path.Combine(source, "vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n");
        File.WriteAllText(Path.Combine(source, "tokenizer_config.json"), """{"do_lower_case": false}""");
        var folder = Folder("copy");
        HfBertLoader.Save(folder, original.Config, original.state_dict(), copyTokenizerFrom: source);
        Assert.Equal(File.ReadAllText(Path.Combine(source, "vocab.txt")), File.ReadAllText(Path.Combine(folder, "vocab.txt")));
        Assert.False(BertTextEncoder.FromFolder(folder).LowerCase);
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(Hidden(original), Hidden(HfBertLoader.LoadModel(folder))));
        Assert.Empty(Directory.GetFiles(folder, "*.tmp"));

        File.WriteAllText(Path.Combine(folder, "vocab.txt"), "[PAD]\nhello\n");
        var e = Assert.Throws<InvalidDataException>(() => BertTextEncoder.FromFolder(folder));
        Assert.Contains("vocab.txt", e.Message);
    }

    [Fact]
    public void SentenceEncoderLoadsWithoutPoolerAndGivesUnitVectors()
    {
        var (original, folder) = SavedBase("sentence");
        var messages = new List<string>();
        using var encoder = BertForSentenceEmbedding.FromPretrained(folder);
        Assert.False(encoder.Bert.HasPooler);
        var (ids, mask, types) = TinyBert.Batch();
        encoder.eval();
        using var embeddings = encoder.call(ids, mask, types);
        Assert.Equal(new long[] { 2, 16 }, embeddings.shape);
        Assert.True((embeddings.norm(1) - 1).abs().max().item<float>() < 1e-5);
        using var expected = BertPooling.Normalize(BertPooling.MeanPool(Hidden(original), mask));
        Assert.True(TinyBert.MaxAbsDiff(expected, embeddings) < 1e-6);
    }

    sealed class DisposableDict(Dictionary<string, Tensor> tensors) : IDisposable
    {
        public Dictionary<string, Tensor> Tensors { get; } = tensors;
        public void Dispose() { foreach (var t in Tensors.Values) t.Dispose(); }
    }
}
