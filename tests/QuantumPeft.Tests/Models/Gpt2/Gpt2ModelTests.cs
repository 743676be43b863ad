using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Gpt2;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Gpt2;

public sealed class Gpt2ModelTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-gpt2-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    // GPT-2 written out with explicit matrices from the checkpoint's tensors (no code shared with the model):
    // pre-LN blocks, Conv1D weights [in, out], tanh GELU, learned positions, the tied head.
    static Tensor Reference(IReadOnlyDictionary<string, Tensor> w, Tensor ids, bool inverseLayerScale = false)
    {
        Tensor Ln(Tensor x, string name)
        {
            var mean = x.mean([-1], keepdim: true);
            var variance = (x - mean).pow(2).mean([-1], keepdim: true);
            return (x - mean) / (variance + 1e-5).sqrt() * w[name + ".weight"] + w[name + ".bias"];
        }
        Tensor Gelu(Tensor x) => 0.5 * x * (1 + (Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x.pow(3))).tanh());
        long b = ids.shape[0], t = ids.shape[1];
        int d = TinyGpt2.Embd / TinyGpt2.Heads;
        var h = w["transformer.wte.weight"].index_select(0, ids.flatten()).view(b, t, -1) + w["transformer.wpe.weight"][TensorIndex.Slice(0, t)];
        var future = triu(ones(t, t), 1).to(ScalarType.Bool);
        for (int l = 0; l < TinyGpt2.Layers; l++)
        {
            var p = $"transformer.h.{l}.";
            var a = Ln(h, p + "ln_1");
            var qkv = a.matmul(w[p + "attn.c_attn.weight"]) + w[p + "attn.c_attn.bias"];
            Tensor Head(int part, int head) => qkv[.., .., TensorIndex.Slice(part * TinyGpt2.Embd + head * d, part * TinyGpt2.Embd + (head + 1) * d)];
            var outputs = new List<Tensor>();
            for (int hd = 0; hd < TinyGpt2.Heads; hd++)
            {
                var scores = Head(0, hd).matmul(Head(1, hd).transpose(1, 2)) / Math.Sqrt(d) / (inverseLayerScale ? l + 1 : 1);
                outputs.Add(scores.masked_fill(future, double.NegativeInfinity).softmax(-1).matmul(Head(2, hd)));
            }
            h = h + cat(outputs, 2).matmul(w[p + "attn.c_proj.weight"]) + w[p + "attn.c_proj.bias"];
            var m = Ln(h, p + "ln_2");
            h = h + Gelu(m.matmul(w[p + "mlp.c_fc.weight"]) + w[p + "mlp.c_fc.bias"]).matmul(w[p + "mlp.c_proj.weight"]) + w[p + "mlp.c_proj.bias"];
        }
        return Ln(h, "transformer.ln_f").matmul(w["transformer.wte.weight"].t());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Forward_matches_an_independent_dense_computation(bool inverseLayerScale)
    {
        using var model = TinyGpt2.Model(inverseLayerScale: inverseLayerScale);
        using var _ = no_grad();
        var ids = TinyGpt2.Ids([1, 5, 9, 3, 17, 22, 8], [4, 4, 30, 2, 11, 0, 39]);
        var expected = Reference(model.state_dict(), ids, inverseLayerScale);
        var actual = model.Forward(ids);
        Assert.Equal(new long[] { 2, 7, TinyGpt2.Vocab }, actual.shape);
        Assert.True(MaxDiff(actual, expected) < 1e-4, $"max diff {MaxDiff(actual, expected)}");
        Assert.True(expected.std().item<float>() > 0.1);   // the check is not trivially small numbers
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Folder_in_the_transformers_layout_loads_with_the_same_logits(bool tied, bool lmHeadLayout)
    {
        using var model = TinyGpt2.Model(tied);
        TinyGpt2.Write(model, dir, tied, basePrefix: lmHeadLayout);
        var (loaded, report) = CausalLMs.LoadWithReport(dir);
        using var _ = no_grad();
        var ids = TinyGpt2.Ids([3, 1, 4, 1, 5, 9, 2, 6]);
        Assert.True(MaxDiff(model.Forward(ids), loaded.Forward(ids)) < 1e-6);
        Assert.Empty(report.Unexpected);
        Assert.Equal(2, report.Ignored.Count);   // the h.N.attn.bias mask buffers
        Assert.Equal("gpt2", loaded.Info.ModelType);
        Assert.Equal([2], loaded.Info.EosTokenIds);
        Assert.Equal(1, loaded.Info.BosTokenId);
        var gpt2 = (Gpt2LMHeadModel)loaded;
        Assert.Equal(tied, gpt2.TiedHead);
        // A tied head is the embedding itself: one tensor, not a copy.
        var sd = gpt2.state_dict();
        using (no_grad())
        {
            var saved = sd["transformer.wte.weight"].clone();
            sd["transformer.wte.weight"].add_(1);
            Assert.Equal(tied, MaxDiff(sd["lm_head.weight"], sd["transformer.wte.weight"]) == 0);
            sd["transformer.wte.weight"].copy_(saved);
        }

        // Save and load again: the same numbers, lm_head.weight left out when tied.
        var again = Path.Combine(dir, "saved");
        HfGpt2Loader.Save(again, gpt2.Config, gpt2.state_dict());
        var keys = QuantumPeft.Formats.Safetensors.SafetensorsFile.ReadHeader(Path.Combine(again, "model.safetensors")).Entries.Select(e => e.Name).ToList();
        Assert.Equal(!tied, keys.Contains("lm_head.weight"));
        var reloaded = CausalLMs.Load(again);
        Assert.True(MaxDiff(model.Forward(ids), reloaded.Forward(ids)) < 1e-6);
    }

    [Fact]
    public void Pytorch_model_bin_in_the_original_gpt2_layout_loads()
    {
        // The hub's original gpt2 folder: bare GPT2Model keys (wte.weight, h.0...), the mask buffers, a pickled pytorch_model.bin.
        using var model = TinyGpt2.Model();
        Directory.CreateDirectory(dir);
        var tensors = new System.Collections.Hashtable();
        foreach (var (name, t) in model.state_dict())
            if (name != "lm_head.weight") tensors[name["transformer.".Length..]] = t.detach().clone();
        tensors["h.0.attn.masked_bias"] = tensor(-1e4f);
        TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(Path.Combine(dir, "pytorch_model.bin"), tensors);
        File.WriteAllText(Path.Combine(dir, "config.json"), TinyGpt2.ConfigJson());
        var loaded = CausalLMs.Load(dir);
        using var _ = no_grad();
        var ids = TinyGpt2.Ids([3, 1, 4, 1, 5]);
        Assert.True(MaxDiff(model.Forward(ids), loaded.Forward(ids)) < 1e-6);
    }

    [Fact]
    public void Cached_incremental_forward_equals_the_full_forward()
    {
        using var model = TinyGpt2.Model();
        using var _ = no_grad();
        var ids = TinyGpt2.Ids([1, 5, 9, 3, 17, 22, 8, 13, 2, 7], [2, 8, 8, 31, 6, 0, 12, 33, 21, 5]);
        var full = model.Forward(ids);
        using var cache = ((ICausalLM)model).NewCache();
        var steps = new List<Tensor> { model.Forward(ids[.., ..4], cache: cache) };
        for (int t = 4; t < 10; t++) steps.Add(model.Forward(ids[.., t..(t + 1)], cache: cache));
        Assert.Equal(10, cache.Length);
        Assert.True(MaxDiff(cat(steps, 1), full) < 1e-5, $"max diff {MaxDiff(cat(steps, 1), full)}");
    }

    [Fact]
    public void Left_padded_row_gives_the_logits_of_the_sequence_alone()
    {
        using var model = TinyGpt2.Model();
        using var _ = no_grad();
        var alone = model.Forward(TinyGpt2.Ids([7, 3, 9]));
        var batch = TinyGpt2.Ids([0, 0, 7, 3, 9], [4, 5, 6, 7, 8]);
        var mask = TinyGpt2.Ids([0, 0, 1, 1, 1], [1, 1, 1, 1, 1]);
        var logits = model.Forward(batch, mask, CausalMask.PositionsFromMask(mask));
        Assert.True(MaxDiff(logits[0, 2..], alone[0]) < 1e-5);
        Assert.False(logits.isnan().any().item<bool>());   // fully hidden padding rows stay finite
        Assert.True(MaxDiff(logits[1], model.Forward(TinyGpt2.Ids([4, 5, 6, 7, 8]))[0]) < 1e-5);
    }

    [Fact]
    public void Sharded_bf16_checkpoint_computes_in_float32_from_the_rounded_weights()
    {
        using var model = TinyGpt2.Model();
        TinyGpt2.Write(model, dir, bf16: true, shardBytes: 6000);
        Assert.True(File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(dir, "model-*-of-*.safetensors").Length > 1);
        var loaded = CausalLMs.Load(dir);
        using (no_grad())
            foreach (var p in model.parameters()) p.copy_(p.to(ScalarType.BFloat16).to(ScalarType.Float32));
        using var _ = no_grad();
        var ids = TinyGpt2.Ids([3, 1, 4, 1, 5, 9, 2, 6]);
        Assert.All(((Gpt2LMHeadModel)loaded).parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.True(MaxDiff(model.Forward(ids), loaded.Forward(ids)) < 1e-5);

        var bf = CausalLMs.Load(dir, new DecoderLoadOptions(DType: ScalarType.BFloat16));
        var bfLogits = bf.Forward(ids);
        Assert.Equal(ScalarType.Float32, bfLogits.dtype);
        Assert.True(MaxDiff(bfLogits, model.Forward(ids)) < 0.5 * model.Forward(ids).abs().max().item<float>() + 1e-3);
        Assert.Equal(ScalarType.BFloat16, ((Gpt2LMHeadModel)bf).parameters().First().dtype);
    }

    [Fact]
    public void Bad_folders_get_errors_that_name_the_key_or_file()
    {
        using var model = TinyGpt2.Model();
        string Folder(string name) => Path.Combine(dir, name);

        TinyGpt2.Write(model, Folder("missing"), tensorsEdit: t => { t.Remove("transformer.h.1.mlp.c_fc.weight"); return t; });
        var e1 = Assert.Throws<InvalidDataException>(() => CausalLMs.Load(Folder("missing")));
        Assert.Contains("transformer.h.1.mlp.c_fc.weight", e1.Message);

        TinyGpt2.Write(model, Folder("untied"), tied: true, configEdit: c => c.Replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false"));
        var e2 = Assert.Throws<InvalidDataException>(() => CausalLMs.Load(Folder("untied")));
        Assert.Contains("lm_head.weight", e2.Message);
        Assert.Contains("tie_word_embeddings", e2.Message);

        TinyGpt2.Write(model, Folder("shape"), tensorsEdit: t => { t["transformer.wpe.weight"] = zeros(16, TinyGpt2.Embd); return t; });
        var e3 = Assert.Throws<InvalidDataException>(() => CausalLMs.Load(Folder("shape")));
        Assert.Contains("transformer.wpe.weight", e3.Message);
        Assert.Contains("[32, 16]", e3.Message);

        TinyGpt2.Write(model, Folder("shard"), shardBytes: 6000);
        File.Delete(Directory.GetFiles(Folder("shard"), "model-*-of-*.safetensors").Order().Last());
        var e4 = Assert.Throws<FileNotFoundException>(() => CausalLMs.Load(Folder("shard")));
        Assert.Contains("shard", e4.Message);

        TinyGpt2.Write(model, Folder("type"), configEdit: c => c.Replace("\"model_type\": \"gpt2\"", "\"model_type\": \"gpt_neox\""));
        var e5 = Assert.Throws<NotSupportedException>(() => CausalLMs.Load(Folder("type")));
        Assert.Contains("gpt_neox", e5.Message);
        Assert.Contains("gpt2", e5.Message);

        TinyGpt2.Write(model, Folder("act"), configEdit: c => c.Replace("\"activation_function\": \"gelu_new\"", "\"activation_function\": \"quick_gelu\""));
        var e6 = Assert.Throws<NotSupportedException>(() => CausalLMs.Load(Folder("act")));
        Assert.Contains("activation_function 'quick_gelu'", e6.Message);

        var e7 = Assert.Throws<ArgumentException>(() => model.Forward(zeros(1, TinyGpt2.Positions + 1, dtype: ScalarType.Int64)));
        Assert.Contains("n_positions 32", e7.Message);
    }
}
