using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Google.Protobuf;
using QuantumPeft.Formats.Onnx;
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using Xunit.Abstractions;
using static TorchSharp.torch;
using OrtTensors = Microsoft.ML.OnnxRuntime.Tensors;

namespace QuantumPeft.Tests.Models;

[Collection("MiniLM")]
public sealed class MiniLmTests(MiniLmFixture minilm, ITestOutputHelper output)
{
    static readonly string[] Sentences =
    [
        "A man is playing a guitar.",
        "The new movie is awesome, I loved every minute of it!",
        "Quantum circuits parameterise orthonormal matrices with very few angles.",
    ];

    [Fact]
    public void ImportedFolderIsAStandardBertFolderWithEveryInitializerAccountedFor()
    {
        var config = HfBertLoader.LoadConfig(minilm.Folder);
        Assert.Equal((30522, 384, 6, 12, 1536, "gelu", 512, 1e-12), (config.VocabSize, config.HiddenSize, config.NumHiddenLayers,
            config.NumAttentionHeads, config.IntermediateSize, config.HiddenAct, config.MaxPositionEmbeddings, config.LayerNormEps));
        Assert.Equal(22_713_216, minilm.Model.parameters().Sum(p => p.numel()));
        Assert.True(File.Exists(Path.Combine(minilm.Folder, "vocab.txt")));
        Assert.True(File.Exists(Path.Combine(minilm.Folder, "tokenizer_config.json")));

        using var marker = JsonDocument.Parse(File.ReadAllText(Path.Combine(minilm.Folder, "qpeft-import.json")));
        var accounting = marker.RootElement.GetProperty("initializers").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        Assert.Equal(148, accounting.Count);
        var weights = accounting.Values.Where(v => v.Contains(".weight") || v.Contains(".bias")).ToList();
        Assert.Equal(103, weights.Count);
        Assert.Equal(weights.Count, weights.Distinct().Count());
        // The 36 anonymous MatMul initializers became the linear weights of the six layers.
        var linear = accounting.Where(p => p.Key.All(char.IsDigit) && p.Value.EndsWith(".weight")).Select(p => p.Value).ToList();
        Assert.Equal(36, linear.Count);
        Assert.Contains("encoder.layer.5.attention.self.query.weight", linear);
        Assert.Contains("encoder.layer.0.output.dense.weight", linear);
    }

    [Fact]
    public void LastHiddenStateMatchesOnnxRuntime()
    {
        using var batch = minilm.Text.Encode(Sentences, maxLength: 128);
        long b = batch.InputIds.shape[0], t = batch.InputIds.shape[1];
        Assert.True(batch.AttentionMask.sum().item<long>() < b * t, "the batch should contain padding");

        byte[] onnx;
        using (var stream = BundledModels.OpenMiniLmOnnx()) using (var memory = new MemoryStream()) { stream.CopyTo(memory); onnx = memory.ToArray(); }
        using var session = new InferenceSession(onnx);
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], session.InputMetadata.Keys);
        int[] dims = [(int)b, (int)t];
        NamedOnnxValue Input(string name, Tensor x) => NamedOnnxValue.CreateFromTensor(name, new OrtTensors.DenseTensor<long>(x.data<long>().ToArray(), dims));
        using var results = session.Run([Input("input_ids", batch.InputIds), Input("attention_mask", batch.AttentionMask), Input("token_type_ids", batch.TokenTypeIds)]);
        var expected = results.First(r => r.Name == "last_hidden_state").AsTensor<float>().ToArray();
        var expectedPooled = results.First(r => r.Name != "last_hidden_state").AsTensor<float>().ToArray();

        using var noGrad = no_grad();
        using var hidden = minilm.Model.call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        using var pooled = minilm.Model.Pool(hidden);
        using var reference = tensor(expected, [b, t, 384]);
        using var referencePooled = tensor(expectedPooled, [b, 384]);
        double diff = (hidden - reference).abs().max().item<float>();
        double pooledDiff = (pooled - referencePooled).abs().max().item<float>();
        output.WriteLine($"max |TorchSharp - ONNX Runtime|: last_hidden_state {diff:E2} over [{b}, {t}, 384], pooler output {pooledDiff:E2}");
        Assert.True(diff < 1e-4, $"last hidden state differs from ONNX Runtime by {diff}");
        Assert.True(pooledDiff < 1e-4, $"pooled output differs from ONNX Runtime by {pooledDiff}");
    }

    [Fact]
    public void ParaphrasesScoreHighAndUnrelatedSentencesNearZero()
    {
        string[] texts = ["A man is playing a guitar.", "Someone is strumming a guitar.", "The stock market fell sharply today."];
        using var batch = minilm.Text.Encode(texts);
        using var noGrad = no_grad();
        // Not disposed: the wrapper would dispose the shared model with it.
        var encoder = new BertForSentenceEmbedding(minilm.Model);
        using var embeddings = encoder.call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        Assert.True((embeddings.norm(1) - 1).abs().max().item<float>() < 1e-5);
        using var similarity = BertPooling.CosineSimilarity(embeddings);
        float paraphrase = similarity[0, 1].item<float>(), unrelated = similarity[0, 2].item<float>();
        output.WriteLine($"paraphrase {paraphrase:F3}, unrelated {unrelated:F3}");
        Assert.True(paraphrase > 0.6f, $"paraphrase similarity {paraphrase}");
        Assert.True(Math.Abs(unrelated) < 0.15f, $"unrelated similarity {unrelated}");
    }

    [Fact]
    public void AnInitializerThatIsNeitherWeightNorConstantFailsTheImport()
    {
        Onnx.ModelProto model;
        using (var stream = BundledModels.OpenMiniLmOnnx()) model = Onnx.ModelProto.Parser.ParseFrom(stream);
        var stray = new Onnx.TensorProto { Name = "stray_tensor", DataType = (int)Onnx.TensorProto.Types.DataType.Float };
        stray.Dims.Add(2);
        stray.FloatData.Add([1f, 2f]);
        model.Graph.Initializer.Add(stray);
        using var modified = new MemoryStream(model.ToByteArray());
        var e = Assert.Throws<InvalidDataException>(() => OnnxBertReader.Read(modified));
        Assert.Contains("stray_tensor [2] used by nothing", e.Message);

        using var garbage = new MemoryStream([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        Assert.Throws<InvalidDataException>(() => OnnxBertReader.Read(garbage));
    }
}
