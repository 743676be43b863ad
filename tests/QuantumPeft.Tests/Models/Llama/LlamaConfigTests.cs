using QuantumPeft.Models.Llama;
using Xunit.Abstractions;

namespace QuantumPeft.Tests.Models.Llama;

public sealed class LlamaConfigTests(ITestOutputHelper output)
{
    static LlamaConfig Parse(Dictionary<string, object?> c) => LlamaConfig.FromJson(TinyLlama.Json(c), "/models/tiny/config.json");

    [Fact]
    public void AbsentKeysTakeTheDefaultsOfEachConfigClass()
    {
        var llama = LlamaConfig.FromJson("""{"model_type": "llama"}""");
        Assert.Equal(32, llama.KeyValueHeads);
        Assert.Equal(1, llama.BosTokenId);
        Assert.Equal([2], llama.EosTokenId!);
        Assert.False(llama.TieWordEmbeddings);
        Assert.Equal(2048, llama.MaxPositionEmbeddings);
        Assert.Null(llama.WindowOf(0));

        var mistral = LlamaConfig.FromJson("""{"model_type": "mistral"}""");
        Assert.Equal(8, mistral.KeyValueHeads);
        Assert.Equal(14336, mistral.IntermediateSize);
        Assert.Equal(131072, mistral.MaxPositionEmbeddings);
        Assert.Equal(4096, mistral.WindowOf(31));
        Assert.False(mistral.TieWordEmbeddings);
        Assert.Null(LlamaConfig.FromJson("""{"model_type": "mistral", "sliding_window": null}""").WindowOf(0));

        var qwen = LlamaConfig.FromJson("""{"model_type": "qwen2"}""");
        Assert.Equal(151936, qwen.VocabSize);
        Assert.Equal(32, qwen.KeyValueHeads);
        Assert.Null(qwen.BosTokenId);
        Assert.Null(qwen.EosTokenId);
        Assert.False(qwen.TieWordEmbeddings);
        Assert.True(qwen.QkvBias);
        Assert.False(qwen.OutputBias);
        Assert.All(Enumerable.Range(0, 32), i => Assert.Null(qwen.WindowOf(i)));   // use_sliding_window defaults to false
    }

    [Fact]
    public void WrittenConfigReadsBackTheSameAndKeepsUnknownKeys()
    {
        foreach (var type in new[] { "llama", "mistral", "qwen2" })
        {
            var c = TinyLlama.Config(type);
            if (type == "mistral") c["sliding_window"] = null;   // a null that must not become the class default
            var config = Parse(c);
            var again = LlamaConfig.FromJson(config.ToJson());
            Assert.Equal(config.ToJson(), again.ToJson());
            Assert.Equal(config.WindowOf(1), again.WindowOf(1));
            Assert.Contains("\"transformers_version\": \"4.46.0\"", again.ToJson());
            Assert.Equal(c["model_type"], again.ModelType);
            if (type == "llama")
            {
                output.WriteLine(again.ToJson());
                foreach (var key in new[] { "use_sliding_window", "max_window_layers", "rope_parameters", "layer_types" }) Assert.DoesNotContain(key, again.ToJson());
            }
        }
    }

    [Fact]
    public void Qwen2SlidesOnlyWhenAskedAndFromMaxWindowLayersOn()
    {
        var c = TinyLlama.Config("qwen2");
        c["num_hidden_layers"] = 4;
        c["sliding_window"] = 3;
        c["max_window_layers"] = 2;
        Assert.All(Enumerable.Range(0, 4), i => Assert.Null(Parse(c).WindowOf(i)));
        c["use_sliding_window"] = true;
        var config = Parse(c);
        Assert.Equal(["full_attention", "full_attention", "sliding_attention", "sliding_attention"], config.ResolvedLayerTypes());
        Assert.Equal(new int?[] { null, null, 3, 3 }, Enumerable.Range(0, 4).Select(config.WindowOf));
        c["layer_types"] = new[] { "sliding_attention", "full_attention", "full_attention", "sliding_attention" };
        Assert.Equal(new int?[] { 3, null, null, 3 }, Enumerable.Range(0, 4).Select(Parse(c).WindowOf));
    }

    [Fact]
    public void BiasSwitchesFollowTheModelType()
    {
        var llama = TinyLlama.Config("llama");
        llama["attention_bias"] = true;
        var l = Parse(llama);
        Assert.True(l.QkvBias && l.OutputBias && !l.MlpBiases);
        llama["mlp_bias"] = true;
        Assert.True(Parse(llama).MlpBiases);
        // MistralAttention has no biases whatever the config says (transformers hard-codes bias=False).
        var mistral = TinyLlama.Config("mistral");
        mistral["attention_bias"] = true;
        var m = Parse(mistral);
        Assert.False(m.QkvBias || m.OutputBias || m.MlpBiases);
    }

    // Independent of the model's code: transformers' formulas written out in double precision.
    static double[] DefaultInvFreq(double theta, int dim) => Enumerable.Range(0, dim / 2).Select(i => 1.0 / Math.Pow(theta, 2.0 * i / dim)).ToArray();

    static void AssertClose(double[] expected, IReadOnlyList<float> actual)
    {
        Assert.Equal(expected.Length, actual.Count);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 2e-6 * Math.Abs(expected[i]), $"inv_freq[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
    }

    [Fact]
    public void DefaultRopeUsesHeadDimNotHiddenOverHeads()
    {
        var c = TinyLlama.Config("llama");   // hidden 16 / 4 heads = 4, head_dim 4: make them differ
        c["head_dim"] = 8;
        c["rope_theta"] = 500000.0;
        AssertClose(DefaultInvFreq(500000, 8), new LlamaRotaryEmbedding(Parse(c)).InvFreq);
    }

    [Fact]
    public void LinearRopeScalingDividesEveryFrequencyByTheFactor()
    {
        var c = TinyLlama.Config("llama");
        c["head_dim"] = 16;
        c["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "linear", ["factor"] = 4.0 };
        AssertClose(DefaultInvFreq(10000, 16).Select(f => f / 4).ToArray(), new LlamaRotaryEmbedding(Parse(c)).InvFreq);
        // The pre-4.43 spelling "type" means the same.
        c["rope_scaling"] = new Dictionary<string, object> { ["type"] = "linear", ["factor"] = 4.0 };
        AssertClose(DefaultInvFreq(10000, 16).Select(f => f / 4).ToArray(), new LlamaRotaryEmbedding(Parse(c)).InvFreq);
        // transformers 5's rope_parameters carry the base as well.
        c.Remove("rope_scaling");
        c["rope_parameters"] = new Dictionary<string, object> { ["rope_type"] = "linear", ["factor"] = 2.0, ["rope_theta"] = 500.0 };
        AssertClose(DefaultInvFreq(500, 16).Select(f => f / 2).ToArray(), new LlamaRotaryEmbedding(Parse(c)).InvFreq);
    }

    [Fact]
    public void Llama3RopeScalingMatchesTheFormulaInEveryBand()
    {
        const double factor = 8, low = 1, high = 8, original = 1024;
        var c = TinyLlama.Config("llama");
        c["head_dim"] = 16;
        c["rope_scaling"] = new Dictionary<string, object>
        {
            ["rope_type"] = "llama3", ["factor"] = factor, ["low_freq_factor"] = low, ["high_freq_factor"] = high,
            ["original_max_position_embeddings"] = (int)original,
        };
        var bands = new int[3];
        var expected = DefaultInvFreq(10000, 16).Select(f =>
        {
            double wavelength = 2 * Math.PI / f;
            if (wavelength < original / high) { bands[0]++; return f; }            // high frequencies: unchanged
            if (wavelength > original / low) { bands[2]++; return f / factor; }    // low frequencies: interpolated by factor
            bands[1]++;
            double smooth = (original / wavelength - low) / (high - low);          // in between: a smooth blend
            return (1 - smooth) * f / factor + smooth * f;
        }).ToArray();
        Assert.All(bands, n => Assert.True(n > 0, $"each band must be exercised, got {string.Join("/", bands)}"));
        Assert.True(bands[1] >= 2, "two frequencies in the smooth band");
        AssertClose(expected, new LlamaRotaryEmbedding(Parse(c)).InvFreq);
    }

    [Fact]
    public void UnsupportedRopeTypeNamesTheKeyAndTheSupportedTypes()
    {
        var c = TinyLlama.Config("llama");
        c["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "yarn", ["factor"] = 4.0 };
        var e = Assert.Throws<NotSupportedException>(() => Parse(c));
        foreach (var part in new[] { "/models/tiny/config.json", "rope_scaling", "yarn", "default", "linear", "llama3" }) Assert.Contains(part, e.Message);

        c["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "llama3", ["factor"] = 8.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192 };
        var missing = Assert.Throws<InvalidDataException>(() => Parse(c));
        Assert.Contains("low_freq_factor", missing.Message);
        Assert.Contains("rope_scaling", missing.Message);
    }

    [Fact]
    public void UnsupportedHiddenActNamesTheKeyAndTheSupportedOnes()
    {
        var c = TinyLlama.Config("mistral");
        c["hidden_act"] = "gelu";
        var e = Assert.Throws<NotSupportedException>(() => Parse(c));
        foreach (var part in new[] { "/models/tiny/config.json", "hidden_act", "'gelu'", "silu" }) Assert.Contains(part, e.Message);
    }

    [Fact]
    public void InvalidHeadCountsAreNamed()
    {
        var c = TinyLlama.Config("llama");
        c["num_key_value_heads"] = 3;
        var e = Assert.Throws<InvalidDataException>(() => Parse(c));
        Assert.Contains("num_key_value_heads 3", e.Message);
        Assert.Contains("num_attention_heads 4", e.Message);
    }
}
