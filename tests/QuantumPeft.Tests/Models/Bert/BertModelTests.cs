using System.Reflection;
using QuantumPeft.Models.Bert;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Bert;

public sealed class BertModelTests
{
    [Fact]
    public void StateDictNamesAreTheHuggingFaceNames()
    {
        using var model = new BertModel(TinyBert.Config());
        var names = model.state_dict().Keys.ToHashSet();
        string[] expected =
        [
            "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
            "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
            "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.bias", "encoder.layer.0.attention.self.value.weight",
            "encoder.layer.0.attention.output.dense.weight", "encoder.layer.0.attention.output.LayerNorm.weight",
            "encoder.layer.1.intermediate.dense.weight", "encoder.layer.1.output.dense.bias", "encoder.layer.1.output.LayerNorm.bias",
            "pooler.dense.weight", "pooler.dense.bias",
        ];
        foreach (var name in expected) Assert.Contains(name, names);
        // 5 embedding tensors + 16 per layer x 2 + 2 pooler.
        Assert.Equal(5 + 16 * 2 + 2, names.Count);
    }

    [Fact]
    public void EveryLinearLayerIsASwappableModuleField()
    {
        using var model = new BertForSequenceClassification(TinyBert.Config(), 3, head: "pooler");
        var linears = model.named_modules().Where(m => m.module is Linear).Select(m => m.name).ToList();
        Assert.Equal(2 * 6 + 2, linears.Count); // q, k, v, attention.output.dense, intermediate.dense, output.dense per layer; pooler; classifier
        foreach (var (name, module) in model.named_modules().Where(m => m.module is Linear))
        {
            var dot = name.LastIndexOf('.');
            var parentName = dot < 0 ? "" : name[..dot];
            var parent = parentName.Length == 0 ? model : model.named_modules().Single(m => m.name == parentName).module;
            var field = parent.GetType().GetField(name[(dot + 1)..], BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);
            Assert.NotNull(field);
            Assert.Equal(typeof(nn.Module<Tensor, Tensor>), field!.FieldType);
            Assert.False(field.IsInitOnly, $"{name} must be assignable so an adapter can replace it");
            Assert.Same(module, field.GetValue(parent));
        }
    }

    [Fact]
    public void ForwardMatchesAHandWrittenBertOnTheSameWeights()
    {
        var config = TinyBert.Config();
        using var model = new BertModel(config, seed: 3);
        model.eval();
        var (ids, mask, types) = TinyBert.Batch();
        using var actual = model.call(ids, mask, types);
        using var expected = Reference(model.state_dict(), config, ids, mask, types);
        Assert.Equal(new long[] { 2, 7, 16 }, actual.shape);
        Assert.True(TinyBert.MaxAbsDiff(actual, expected) < 1e-5, $"max diff {TinyBert.MaxAbsDiff(actual, expected)}");
    }

    [Fact]
    public void PaddingDoesNotChangeTheRealTokens()
    {
        using var model = new BertModel(TinyBert.Config(), seed: 5);
        model.eval();
        var (ids, mask, types) = TinyBert.Batch();
        using var padded = model.call(ids, mask, types);
        using var alone = model.call(ids[1..2, ..4], mask[1..2, ..4], types[1..2, ..4]);
        Assert.True(TinyBert.MaxAbsDiff(padded[1..2, ..4], alone) < 1e-5);
    }

    [Fact]
    public void DropoutActsOnlyInTraining()
    {
        using var model = new BertModel(TinyBert.Config(), seed: 1);
        var (ids, mask, types) = TinyBert.Batch();
        model.train();
        using var a = model.call(ids, mask, types);
        using var b = model.call(ids, mask, types);
        Assert.True(TinyBert.MaxAbsDiff(a, b) > 1e-3, "two training passes should differ through dropout");
        model.eval();
        using var c = model.call(ids, mask, types);
        using var d = model.call(ids, mask, types);
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(c, d));
    }

    [Fact]
    public void SameSeedSameWeightsDifferentSeedDifferentWeights()
    {
        using var a = new BertModel(TinyBert.Config(), seed: 7);
        using var b = new BertModel(TinyBert.Config(), seed: 7);
        using var c = new BertModel(TinyBert.Config(), seed: 8);
        var key = "encoder.layer.1.attention.self.query.weight";
        Assert.Equal(0.0, TinyBert.MaxAbsDiff(a.state_dict()[key], b.state_dict()[key]));
        Assert.True(TinyBert.MaxAbsDiff(a.state_dict()[key], c.state_dict()[key]) > 1e-3);
        // Hugging Face init: std initializer_range, zero bias, zero padding row.
        var std = a.state_dict()[key].std().item<float>();
        Assert.InRange(std, 0.015, 0.025);
        Assert.Equal(0.0, a.state_dict()["encoder.layer.0.output.dense.bias"].abs().sum().item<float>());
        Assert.Equal(0.0, a.state_dict()["embeddings.word_embeddings.weight"][0].abs().sum().item<float>());
    }

    [Theory]
    [InlineData("mean", 3)]
    [InlineData("pooler", 3)]
    [InlineData("mean", 1)]
    public void ClassifierGivesLogitsAndGradients(string head, int labels)
    {
        using var model = new BertForSequenceClassification(TinyBert.Config(), labels, head);
        Assert.Equal(head == "pooler", model.state_dict().ContainsKey("bert.pooler.dense.weight"));
        Assert.Contains("classifier.weight", model.state_dict().Keys);
        // Hugging Face's initialisation for the new head too: normal(0, 0.02) weights, zero bias.
        Assert.Equal(0.0, model.state_dict()["classifier.bias"].abs().sum().item<float>());
        Assert.InRange(model.state_dict()["classifier.weight"].abs().max().item<float>(), 0.001, 0.1);
        var (ids, mask, types) = TinyBert.Batch();
        using var logits = model.call(ids, mask, types);
        Assert.Equal(new long[] { 2, labels }, logits.shape);
        logits.sum().backward();
        var grad = model.named_parameters().Single(p => p.name == "classifier.weight").parameter.grad;
        Assert.NotNull(grad);
        Assert.True(grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void MeanHeadAveragesOnlyRealTokens()
    {
        using var hidden = arange(2 * 3 * 2, dtype: ScalarType.Float32).reshape(2, 3, 2);
        using var mask = tensor(new long[,] { { 1, 1, 1 }, { 1, 0, 0 } });
        using var pooled = BertPooling.MeanPool(hidden, mask);
        Assert.Equal(new[] { 2f, 3f, 6f, 7f }, pooled.data<float>().ToArray());
    }

    [Theory]
    [InlineData("""{"model_type":"gpt2","vocab_size":10}""", "architecture 'gpt2' is not supported yet (supported: bert)")]
    [InlineData("""{"architectures":["GPT2LMHeadModel"]}""", "architecture 'GPT2LMHeadModel' is not supported yet")]
    [InlineData("""{"model_type":"bert","hidden_act":"mish"}""", "hidden_act 'mish'")]
    [InlineData("""{"model_type":"bert","position_embedding_type":"relative_key"}""", "position_embedding_type 'relative_key'")]
    [InlineData("""{"model_type":"bert","hidden_size":100,"num_attention_heads":12}""", "hidden_size 100 is not divisible by num_attention_heads 12")]
    [InlineData("""{"model_type":"bert","hidden_size":"big"}""", "not a valid BERT config")]
    public void ConfigItCannotHonourIsAnErrorNamingTheField(string json, string message)
    {
        var e = Assert.ThrowsAny<Exception>(() => BertConfig.FromJson(json));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void ConfigRoundTripsSnakeCaseAndKeepsUnknownKeys()
    {
        var config = BertConfig.FromJson("""{"model_type":"bert","hidden_size":32,"num_attention_heads":4,"layer_norm_eps":1e-7,"torch_dtype":"float32","id2label":{"0":"neg"}}""");
        Assert.Equal(32, config.HiddenSize);
        Assert.Equal(1e-7, config.LayerNormEps);
        var again = BertConfig.FromJson(config.ToJson());
        Assert.Equal(config.HiddenSize, again.HiddenSize);
        Assert.Contains("\"torch_dtype\": \"float32\"", config.ToJson());
        Assert.Contains("\"num_attention_heads\": 4", config.ToJson());
        Assert.Contains("\"id2label\"", again.ToJson());
    }

    // BERT written out with plain matmul + softmax from the state dict, independent of the modules under test.
    static Tensor Reference(Dictionary<string, Tensor> w, BertConfig c, Tensor ids, Tensor mask, Tensor types)
    {
        Tensor Lin(Tensor x, string p) => x.matmul(w[p + ".weight"].t()) + w[p + ".bias"];
        Tensor Ln(Tensor x, string p) => nn.functional.layer_norm(x, [c.HiddenSize], w[p + ".weight"], w[p + ".bias"], c.LayerNormEps);
        long B = ids.shape[0], T = ids.shape[1];
        var pos = arange(T);
        var h = Ln(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
                   + w["embeddings.token_type_embeddings.weight"][types], "embeddings.LayerNorm");
        var bias = (1 - mask.to(ScalarType.Float32)).view(B, 1, 1, T) * -1e9;
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            var p = $"encoder.layer.{l}";
            Tensor Heads(Tensor x) => x.view(B, T, c.NumAttentionHeads, c.HeadSize).permute(0, 2, 1, 3);
            var q = Heads(Lin(h, p + ".attention.self.query"));
            var k = Heads(Lin(h, p + ".attention.self.key"));
            var v = Heads(Lin(h, p + ".attention.self.value"));
            var scores = q.matmul(k.transpose(-1, -2)) / Math.Sqrt(c.HeadSize) + bias;
            var ctx = scores.softmax(-1).matmul(v).permute(0, 2, 1, 3).reshape(B, T, c.HiddenSize);
            var a = Ln(Lin(ctx, p + ".attention.output.dense") + h, p + ".attention.output.LayerNorm");
            var inter = Lin(a, p + ".intermediate.dense");
            inter = inter * 0.5 * (1 + special.erf(inter / Math.Sqrt(2)));
            h = Ln(Lin(inter, p + ".output.dense") + a, p + ".output.LayerNorm");
        }
        return h;
    }
}
