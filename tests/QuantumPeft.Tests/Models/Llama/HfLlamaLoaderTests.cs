using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Llama;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Llama;

public sealed class HfLlamaLoaderTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-llama-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Folder(string name) => Path.Combine(_dir, name);

    static readonly DecoderLoadOptions Quiet = new(Log: _ => { });

    static Tensor Logits(ICausalLM model, Tensor? ids = null)
    {
        model.Module.eval();
        using var noGrad = no_grad();
        return model.Forward(ids ?? TinyLlama.Ids(9));
    }

    (LlamaForCausalLM Model, HfLoadReport Report, Dictionary<string, Tensor> Written) WriteAndLoad(string name, Dictionary<string, object?> c)
    {
        var folder = Folder(name);
        var written = TinyLlama.Write(folder, c);
        var (model, report) = HfLlamaLoader.LoadForCausalLM(folder, Quiet);
        return (model, report, written);
    }

    public static TheoryData<string> Variants => ["llama-gqa-headdim-bias", "llama-tied", "mistral-window", "qwen2-tied", "qwen2-untied"];

    static Dictionary<string, object?> Variant(string name)
    {
        var c = TinyLlama.Config(name.Split('-')[0]);
        switch (name)
        {
            case "llama-gqa-headdim-bias":
                c["head_dim"] = 6;   // != hidden 16 / 4 heads
                c["attention_bias"] = true;
                c["mlp_bias"] = true;
                break;
            case "llama-tied": c["tie_word_embeddings"] = true; break;
            case "mistral-window": c["sliding_window"] = 3; break;
            case "qwen2-untied": c["tie_word_embeddings"] = false; break;
        }
        return c;
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void CheckpointLoadsCleanAndRoundTripsWithIdenticalLogits(string variant)
    {
        var c = Variant(variant);
        var (model, report, written) = WriteAndLoad(variant, c);
        Assert.True(report.IsClean, $"missing {string.Join(", ", report.Missing)}; unexpected {string.Join(", ", report.Unexpected)}");
        Assert.Equal(written.Keys.Order(), report.Loaded.Order());
        var logits = Logits(model);
        Assert.Equal(new long[] { 1, 9, 40 }, logits.shape);
        Assert.Equal(ScalarType.Float32, logits.dtype);

        var saved = Folder(variant + "-saved");
        HfLlamaLoader.Save(saved, model);
        var savedNames = SafetensorsFile.ReadHeader(Path.Combine(saved, "model.safetensors")).Entries.Select(e => e.Name).Order();
        Assert.Equal(written.Keys.Order(), savedNames);   // a tied lm_head is left out, as save_pretrained does
        var config = File.ReadAllText(Path.Combine(saved, "config.json"));
        Assert.Contains($"\"model_type\": \"{c["model_type"]}\"", config);
        Assert.Contains("\"torch_dtype\": \"float32\"", config);
        Assert.Contains(((string[])c["architectures"]!)[0], config);

        var (again, againReport) = HfLlamaLoader.LoadForCausalLM(saved, Quiet);
        Assert.True(againReport.IsClean);
        Assert.Equal(0.0, TinyLlama.MaxAbsDiff(logits, Logits(again)));
        Assert.Equal(model.Config.ToJson(), again.Config.ToJson());
    }

    [Fact]
    public void TiedHeadIsTheEmbeddingAndUntiedHeadIsItsOwnTensor()
    {
        foreach (var tied in new[] { true, false })
        {
            var c = TinyLlama.Config("qwen2");
            c["tie_word_embeddings"] = tied;
            var (model, _, written) = WriteAndLoad($"qwen2-tie-{tied}", c);
            var ids = TinyLlama.Ids(6);
            using var noGrad = no_grad();
            var hidden = model.HiddenStates(ids);
            var head = tied ? written["model.embed_tokens.weight"] : written["lm_head.weight"];
            Assert.True(TinyLlama.MaxAbsDiff(model.Forward(ids), matmul(hidden, head.t())) < 1e-5);
            var state = model.state_dict();
            Assert.Contains("lm_head.weight", state.Keys);
            // Tied: one tensor under two names, so changing the embedding changes the head.
            state["model.embed_tokens.weight"].add_(1.0);
            Assert.Equal(tied, TinyLlama.MaxAbsDiff(state["lm_head.weight"], head + 1) == 0);
        }
    }

    [Fact]
    public void ShardedBfloat16CheckpointComputesInFloat32AndEqualsTheRoundedWeights()
    {
        var c = TinyLlama.Config("llama");
        c["torch_dtype"] = "bfloat16";
        var folder = Folder("bf16-sharded");
        var written = TinyLlama.Write(folder, c, dtype: ScalarType.BFloat16, maxShardBytes: 2_000);
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors")));
        var shards = HfCheckpoint.ReadWeightMap(Path.Combine(folder, "model.safetensors.index.json")).Values.Distinct().Count();
        Assert.True(shards > 2, $"expected several shards, got {shards}");
        Assert.All(SafetensorsFile.ReadHeader(Path.Combine(folder, "model-00001-of-" + $"{shards:D5}.safetensors")).Entries, e => Assert.Equal("BF16", e.DType));

        var (model, report) = HfLlamaLoader.LoadForCausalLM(folder, Quiet);
        Assert.True(report.IsClean);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));

        // The reference: the same architecture in float32 whose weights are the bf16 values widened.
        var reference = new LlamaForCausalLM(model.Config, seed: 99);
        using (no_grad())
        {
            var state = reference.state_dict();
            foreach (var (name, t) in written) state[name].copy_(t.to(ScalarType.Float32));
        }
        Assert.Equal(0.0, TinyLlama.MaxAbsDiff(Logits(model), Logits(reference)));
    }

    [Fact]
    public void Bfloat16DTypeRunsWithFloat32LogitsCloseToFloat32()
    {
        var c = TinyLlama.Config("qwen2");   // tied: the tie must survive the dtype move
        var folder = Folder("as-bf16");
        TinyLlama.Write(folder, c);
        var (full, _) = HfLlamaLoader.LoadForCausalLM(folder, Quiet);
        var (half, _) = HfLlamaLoader.LoadForCausalLM(folder, Quiet with { DType = ScalarType.BFloat16 });
        Assert.All(half.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        var state = half.state_dict();
        using (no_grad()) state["model.embed_tokens.weight"].mul_(2.0);
        Assert.Equal(0.0, TinyLlama.MaxAbsDiff(state["lm_head.weight"], state["model.embed_tokens.weight"]));
        using (no_grad()) state["model.embed_tokens.weight"].mul_(0.5);

        var expected = Logits(full);
        var actual = Logits(half);
        Assert.Equal(ScalarType.Float32, actual.dtype);
        double scale = expected.abs().max().item<float>();
        double diff = TinyLlama.MaxAbsDiff(expected, actual);
        output.WriteLine($"bf16 vs float32 logits: max |diff| = {diff:E2} (logit scale {scale:F2})");
        Assert.True(diff < 0.05 * scale, $"bf16 logits differ by {diff} (logit scale {scale})");
    }

    [Fact]
    public void Bfloat16ModelSavesAsBfloat16AndReloads()
    {
        var folder = Folder("bf16-source");
        TinyLlama.Write(folder, TinyLlama.Config("mistral"));
        var (half, _) = HfLlamaLoader.LoadForCausalLM(folder, Quiet with { DType = ScalarType.BFloat16 });
        Assert.False(half.training);
        var saved = Folder("bf16-saved");
        HfLlamaLoader.Save((ICausalLM)half, saved, folder);
        Assert.Contains("\"torch_dtype\": \"bfloat16\"", File.ReadAllText(Path.Combine(saved, "config.json")));
        Assert.All(SafetensorsFile.ReadHeader(Path.Combine(saved, "model.safetensors")).Entries, e => Assert.Equal("BF16", e.DType));
        var (again, report) = HfLlamaLoader.LoadForCausalLM(saved, Quiet with { DType = ScalarType.BFloat16 });
        Assert.True(report.IsClean);
        Assert.Equal(0.0, TinyLlama.MaxAbsDiff(Logits(half), Logits(again)));
    }

    [Fact]
    public void MissingTensorIsAnErrorNamingTheFolderAndTheKey()
    {
        var folder = Folder("missing");
        var weights = TinyLlama.Write(folder, TinyLlama.Config("llama"));
        weights.Remove("model.layers.1.self_attn.q_proj.weight");
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), weights);
        var e = Assert.Throws<InvalidDataException>(() => HfLlamaLoader.LoadForCausalLM(folder, Quiet));
        Assert.Contains(folder, e.Message);
        Assert.Contains("model.layers.1.self_attn.q_proj.weight", e.Message);

        // An untied model needs its head.
        var noHead = Folder("no-head");
        weights = TinyLlama.Write(noHead, TinyLlama.Config("mistral"));
        weights.Remove("lm_head.weight");
        SafetensorsFile.Write(Path.Combine(noHead, "model.safetensors"), weights);
        e = Assert.Throws<InvalidDataException>(() => CausalLMs.Load(noHead, Quiet));
        Assert.Contains("lm_head.weight", e.Message);
        Assert.Contains("tie_word_embeddings is false", e.Message);
    }

    [Fact]
    public void WrongShapeIsAnErrorNamingTheKeyAndBothShapes()
    {
        var folder = Folder("shape");
        var weights = TinyLlama.Write(folder, TinyLlama.Config("llama"));
        weights["model.layers.0.self_attn.k_proj.weight"] = zeros(16, 16);   // 4 heads' worth instead of 2 kv heads
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), weights);
        var e = Assert.Throws<InvalidDataException>(() => HfLlamaLoader.LoadForCausalLM(folder, Quiet));
        Assert.Contains("model.layers.0.self_attn.k_proj.weight", e.Message);
        Assert.Contains("[16, 16]", e.Message);
        Assert.Contains("[8, 16]", e.Message);
    }

    [Fact]
    public void MissingShardIsNamed()
    {
        var folder = Folder("shard-gone");
        TinyLlama.Write(folder, TinyLlama.Config("mistral"), maxShardBytes: 2_000);
        var shard = HfCheckpoint.ReadWeightMap(Path.Combine(folder, "model.safetensors.index.json")).Values.Distinct().Order().Skip(1).First();
        File.Delete(Path.Combine(folder, shard));
        var e = Assert.Throws<FileNotFoundException>(() => HfLlamaLoader.LoadForCausalLM(folder, Quiet));
        Assert.Contains(shard, e.Message);
    }

    [Fact]
    public void UnsupportedModelTypeNamesTheValueAndTheSupportedList()
    {
        var folder = Folder("neox");
        var c = TinyLlama.Config("llama");
        c["model_type"] = "gpt_neox";
        TinyLlama.Write(folder, c);
        var e = Assert.Throws<NotSupportedException>(() => HfLlamaLoader.LoadForCausalLM(folder, Quiet));
        Assert.Contains("'gpt_neox'", e.Message);
        Assert.Contains("llama, mistral, qwen2", e.Message);
        Assert.Contains("config.json", e.Message);
        Assert.False(CausalLMs.IsCausalLM(folder));
        Assert.Throws<NotSupportedException>(() => CausalLMs.Load(folder, Quiet));
    }

    [Fact]
    public void RegistryLoadsEveryTypeWithItsSpecialTokens()
    {
        foreach (var type in LlamaConfig.SupportedModelTypes)
        {
            var folder = Folder("registry-" + type);
            var c = TinyLlama.Config(type);
            c["pad_token_id"] = 0;
            TinyLlama.Write(folder, c);
            File.WriteAllText(Path.Combine(folder, "generation_config.json"), """{"bos_token_id": 1, "eos_token_id": [2, 7]}""");
            Assert.True(CausalLMs.IsCausalLM(folder));
            var (model, report) = CausalLMs.LoadWithReport(folder, Quiet);
            Assert.True(report.IsClean);
            Assert.IsType<LlamaForCausalLM>(model);
            Assert.Equal(new CausalLMInfo(type, 40, 2, null, 1, [2, 7], 0) with { EosTokenIds = model.Info.EosTokenIds }, model.Info);
            Assert.Equal([2, 7], model.Info.EosTokenIds);
            using var cache = model.NewCache();
            Assert.Equal(2, cache.Layers);
        }
    }

    [Fact]
    public void BaseModelCheckpointAndOldRotaryBuffersLoad()
    {
        // A LlamaModel checkpoint (names without model.) with a tied head, and the inv_freq buffers older versions saved.
        var c = TinyLlama.Config("llama");
        c["tie_word_embeddings"] = true;
        var folder = Folder("base");
        var weights = TinyLlama.Write(folder, c);
        var renamed = weights.ToDictionary(p => p.Key["model.".Length..], p => p.Value);
        renamed["layers.0.self_attn.rotary_emb.inv_freq"] = ones(2);
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), renamed);
        var messages = new List<string>();
        var (model, report) = HfLlamaLoader.LoadForCausalLM(folder, new DecoderLoadOptions(Log: messages.Add));
        Assert.True(report.IsClean, string.Join("; ", messages));
        Assert.Empty(messages);
        Assert.Equal(["layers.0.self_attn.rotary_emb.inv_freq"], report.Ignored);
        var (reference, _, _) = WriteAndLoad("base-reference", c);
        Assert.Equal(0.0, TinyLlama.MaxAbsDiff(Logits(model), Logits(reference)));
    }
}
