using System.Text.Json.Nodes;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.DebertaV2;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.DebertaV2;

/// <summary>Tiny DeBERTa-v2 configs and folders in the Hugging Face layout, and a dense double-precision reference of the model written from the formulas.</summary>
static class TinyDeberta
{
    public const int Vocab = 40, Hidden = 32, Layers = 2, Heads = 4, Intermediate = 48;

    /// <summary>A config.json as transformers writes one for DebertaV2ForSequenceClassification (v3-like: buckets 8, max distance 16).</summary>
    public static JsonObject ConfigJson(bool shareAttKey = true, bool positionBiasedInput = false, int buckets = 8, int typeVocab = 0,
        int convKernel = 0, int? embeddingSize = null, JsonNode? posAttType = null, int numLabels = 3)
    {
        var labels = new JsonObject();
        var ids = new JsonObject();
        for (int i = 0; i < numLabels; i++) { labels[$"{i}"] = $"LABEL_{i}"; ids[$"LABEL_{i}"] = i; }
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("DebertaV2ForSequenceClassification"),
            ["attention_probs_dropout_prob"] = 0.1,
            ["hidden_act"] = "gelu",
            ["hidden_dropout_prob"] = 0.1,
            ["hidden_size"] = Hidden,
            ["id2label"] = labels,
            ["label2id"] = ids,
            ["initializer_range"] = 0.02,
            ["intermediate_size"] = Intermediate,
            ["layer_norm_eps"] = 1e-7,
            ["max_position_embeddings"] = 32,
            ["max_relative_positions"] = 16,
            ["model_type"] = "deberta-v2",
            ["norm_rel_ebd"] = "layer_norm",
            ["num_attention_heads"] = Heads,
            ["num_hidden_layers"] = Layers,
            ["pad_token_id"] = 0,
            ["pooler_dropout"] = 0,
            ["pooler_hidden_act"] = "gelu",
            ["pooler_hidden_size"] = Hidden,
            ["pos_att_type"] = posAttType ?? new JsonArray("p2c", "c2p"),
            ["position_biased_input"] = positionBiasedInput,
            ["position_buckets"] = buckets,
            ["relative_attention"] = true,
            ["share_att_key"] = shareAttKey,
            ["torch_dtype"] = "float32",
            ["transformers_version"] = "4.46.0",
            ["type_vocab_size"] = typeVocab,
            ["vocab_size"] = Vocab,
        };
        if (convKernel > 0) { json["conv_kernel_size"] = convKernel; json["conv_act"] = "gelu"; }
        if (embeddingSize is { } e) json["embedding_size"] = e;
        return json;
    }

    public static DebertaV2Config Config(JsonObject json) => DebertaV2Config.FromJson(json.ToJsonString());

    /// <summary>Sets every parameter to seeded random values big enough that each term of the attention matters (LayerNorm weights near 1).</summary>
    public static void Randomize(nn.Module model, long seed)
    {
        using var noGrad = no_grad();
        using var g = new Generator((ulong)seed, CPU);
        foreach (var (name, p) in model.named_parameters())
        {
            using var cpu = empty(p.shape, p.dtype, CPU).normal_(0, name.Contains("LayerNorm") ? 0.1 : 0.3, g);
            if (name.EndsWith("LayerNorm.weight", StringComparison.Ordinal)) cpu.add_(1.0);
            p.copy_(cpu);
        }
    }

    /// <summary>Writes config.json and model.safetensors with the given Hugging Face names, as save_pretrained does.</summary>
    public static string WriteFolder(string folder, JsonObject config, IReadOnlyDictionary<string, Tensor> tensors)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        return folder;
    }

    /// <summary>Two rows: the first 7 tokens long, the second 4 tokens then [PAD].</summary>
    public static (Tensor Ids, Tensor Mask, Tensor Types) Batch()
    {
        var ids = tensor(new long[,] { { 1, 11, 12, 13, 2, 14, 2 }, { 1, 21, 22, 2, 0, 0, 0 } });
        var mask = tensor(new long[,] { { 1, 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 0, 0, 0 } });
        var types = tensor(new long[,] { { 0, 0, 0, 0, 0, 1, 1 }, { 0, 0, 0, 0, 0, 0, 0 } });
        return (ids, mask, types);
    }

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();

    // ---------------- the reference: plain loops over double arrays, from the paper's and transformers' formulas ----------------

    /// <summary>DeBERTa's relative position of query i and key j: i - j, log-bucketed beyond half the bucket count.</summary>
    public static int Bucket(int d, int buckets, int maxPosition)
    {
        if (buckets <= 0) return d;
        int mid = buckets / 2;
        if (Math.Abs(d) <= mid) return d;
        double logPos = Math.Ceiling(Math.Log(Math.Abs(d) / (double)mid) / Math.Log((maxPosition - 1) / (double)mid) * (mid - 1)) + mid;
        return Math.Sign(d) * (int)logPos;
    }

    /// <summary>The classifier's logits [B][labels] in double precision from the model's weights (state-dict names).</summary>
    public static double[][] ReferenceLogits(IReadOnlyDictionary<string, Tensor> sd, DebertaV2Config c, long[,] ids, long[,] mask, long[,] types)
    {
        double[][] W(string n) => Matrix(sd[n]);
        double[] V(string n) => Vector(sd[n]);
        int b = ids.GetLength(0), t = ids.GetLength(1), h = c.HiddenSize, heads = c.NumAttentionHeads, d = c.HeadSize;
        int span = c.PositionBuckets > 0 ? c.PositionBuckets : c.MaxRelativePositionsInEffect;
        var logits = new double[b][];
        for (int r = 0; r < b; r++)
        {
            // Embeddings.
            var x = new double[t][];
            for (int i = 0; i < t; i++)
            {
                var e = W("deberta.embeddings.word_embeddings.weight")[ids[r, i]];
                if (c.PositionBiasedInput) Add(e, W("deberta.embeddings.position_embeddings.weight")[i]);
                if (c.TypeVocabSize > 0) Add(e, W("deberta.embeddings.token_type_embeddings.weight")[types[r, i]]);
                if (c.EmbeddingWidth != h) e = MatVec(W("deberta.embeddings.embed_proj.weight"), e, null);
                e = LayerNorm(e, V("deberta.embeddings.LayerNorm.weight"), V("deberta.embeddings.LayerNorm.bias"), c.LayerNormEps);
                x[i] = e.Select(v => v * mask[r, i]).ToArray();
            }
            var input = x;
            // Relative embeddings (LayerNorm'd) and each query-key pair's row in them.
            var rel = W("deberta.encoder.rel_embeddings.weight");
            if (c.NormalizeRelativeEmbeddings)
                rel = rel.Select(row => LayerNorm(row, V("deberta.encoder.LayerNorm.weight"), V("deberta.encoder.LayerNorm.bias"), c.LayerNormEps)).ToArray();
            int Delta(int i, int j) => Math.Clamp(Bucket(i - j, c.PositionBuckets, c.MaxRelativePositionsInEffect) + span, 0, 2 * span - 1);
            int factor = 1 + (c.C2P ? 1 : 0) + (c.P2C ? 1 : 0);
            double scale = Math.Sqrt(d * factor);

            for (int l = 0; l < c.NumHiddenLayers; l++)
            {
                string p = $"deberta.encoder.layer.{l}.";
                string a = p + "attention.self.";
                double[][] Proj(string name, double[][] rows)
                {
                    var (weight, bias) = (W(a + name + ".weight"), V(a + name + ".bias"));
                    return rows.Select(v => MatVec(weight, v, bias)).ToArray();
                }
                var q = Proj("query_proj", x);
                var k = Proj("key_proj", x);
                var v = Proj("value_proj", x);
                var posKey = c.ShareAttKey ? Proj("key_proj", rel) : c.C2P ? Proj("pos_key_proj", rel) : null;
                var posQuery = c.ShareAttKey ? Proj("query_proj", rel) : c.P2C ? Proj("pos_query_proj", rel) : null;
                var context = new double[t][];
                for (int i = 0; i < t; i++) context[i] = new double[heads * d];
                for (int hd = 0; hd < heads; hd++)
                {
                    int o = hd * d;
                    for (int i = 0; i < t; i++)
                    {
                        var s = new double[t];
                        for (int j = 0; j < t; j++)
                        {
                            double score = Dot(q[i], k[j], o, d);
                            if (c.C2P) score += Dot(q[i], posKey![Delta(i, j)], o, d);
                            if (c.P2C) score += Dot(k[j], posQuery![Delta(i, j)], o, d);
                            s[j] = score / scale;
                        }
                        // A padded query attends to nothing real; transformers then spreads its weight evenly (all scores at finfo.min).
                        bool[] allowed = Enumerable.Range(0, t).Select(j => mask[r, i] == 1 && mask[r, j] == 1).ToArray();
                        var prob = allowed.Any(z => z) ? Softmax(s, allowed) : Enumerable.Repeat(1.0 / t, t).ToArray();
                        for (int j = 0; j < t; j++)
                            for (int z = 0; z < d; z++) context[i][o + z] += prob[j] * v[j][o + z];
                    }
                }
                var attended = new double[t][];
                for (int i = 0; i < t; i++)
                {
                    var y = MatVec(W(p + "attention.output.dense.weight"), context[i], V(p + "attention.output.dense.bias"));
                    Add(y, x[i]);
                    attended[i] = LayerNorm(y, V(p + "attention.output.LayerNorm.weight"), V(p + "attention.output.LayerNorm.bias"), c.LayerNormEps);
                }
                var next = new double[t][];
                for (int i = 0; i < t; i++)
                {
                    var m = MatVec(W(p + "intermediate.dense.weight"), attended[i], V(p + "intermediate.dense.bias")).Select(Gelu).ToArray();
                    var y = MatVec(W(p + "output.dense.weight"), m, V(p + "output.dense.bias"));
                    Add(y, attended[i]);
                    next[i] = LayerNorm(y, V(p + "output.LayerNorm.weight"), V(p + "output.LayerNorm.bias"), c.LayerNormEps);
                }
                if (l == 0 && c.ConvKernelSize > 0) next = Conv(sd, c, input, next, mask, r);
                x = next;
            }
            var pooled = MatVec(W("pooler.dense.weight"), x[0], V("pooler.dense.bias")).Select(Gelu).ToArray();
            logits[r] = MatVec(W("classifier.weight"), pooled, V("classifier.bias"));
        }
        return logits;
    }

    // ConvLayer: a same-length 1-D convolution over the encoder input, zero at padding, the activation, added to the layer output, LayerNorm, masked.
    static double[][] Conv(IReadOnlyDictionary<string, Tensor> sd, DebertaV2Config c, double[][] input, double[][] layerOut, long[,] mask, int r)
    {
        var w = sd["deberta.encoder.conv.conv.weight"].to(ScalarType.Float64).data<double>().ToArray(); // [out, in / groups, k]
        var bias = Vector(sd["deberta.encoder.conv.conv.bias"]);
        int t = input.Length, h = c.HiddenSize, k = c.ConvKernelSize, pad = (k - 1) / 2, per = h / c.ConvGroups;
        var result = new double[t][];
        for (int i = 0; i < t; i++)
        {
            var y = new double[h];
            for (int oc = 0; oc < h; oc++)
            {
                double s = bias[oc];
                int g = oc / per;
                for (int ic = 0; ic < per; ic++)
                    for (int j = 0; j < k; j++)
                    {
                        int src = i + j - pad;
                        if (src >= 0 && src < t) s += w[(oc * per + ic) * k + j] * input[src][g * per + ic];
                    }
                y[oc] = mask[r, i] == 1 ? Gelu(s) : 0;
            }
            Add(y, layerOut[i]);
            y = LayerNorm(y, Vector(sd["deberta.encoder.conv.LayerNorm.weight"]), Vector(sd["deberta.encoder.conv.LayerNorm.bias"]), c.LayerNormEps);
            result[i] = y.Select(z => z * mask[r, i]).ToArray();
        }
        return result;
    }

    static double[][] Matrix(Tensor m)
    {
        var flat = m.to(ScalarType.Float64).cpu().data<double>().ToArray();
        int rows = (int)m.shape[0], cols = (int)m.shape[1];
        return Enumerable.Range(0, rows).Select(i => flat.AsSpan(i * cols, cols).ToArray()).ToArray();
    }

    static double[] Vector(Tensor v) => v.to(ScalarType.Float64).cpu().data<double>().ToArray();

    static double[] MatVec(double[][] w, double[] x, double[]? bias)
    {
        var y = new double[w.Length];
        for (int i = 0; i < w.Length; i++)
        {
            double s = bias?[i] ?? 0;
            for (int j = 0; j < x.Length; j++) s += w[i][j] * x[j];
            y[i] = s;
        }
        return y;
    }

    static void Add(double[] a, double[] b) { for (int i = 0; i < a.Length; i++) a[i] += b[i]; }

    static double Dot(double[] a, double[] b, int offset, int length)
    {
        double s = 0;
        for (int i = offset; i < offset + length; i++) s += a[i] * b[i];
        return s;
    }

    static double[] LayerNorm(double[] x, double[] w, double[] b, double eps)
    {
        double mean = x.Average(), variance = x.Select(v => (v - mean) * (v - mean)).Average();
        return x.Select((v, i) => (v - mean) / Math.Sqrt(variance + eps) * w[i] + b[i]).ToArray();
    }

    static double[] Softmax(double[] s, bool[] allowed)
    {
        double max = s.Where((_, j) => allowed[j]).Max();
        var e = s.Select((v, j) => allowed[j] ? Math.Exp(v - max) : 0).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }

    /// <summary>The exact GELU, x Phi(x).</summary>
    public static double Gelu(double x) => 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));

    /// <summary>erf by its Taylor series below 2.5 and erfc's continued fraction above (both far below float32 precision).</summary>
    public static double Erf(double z)
    {
        double a = Math.Abs(z);
        double result;
        if (a < 2.5)
        {
            double term = a, sum = a;
            for (int n = 1; n < 200 && Math.Abs(term) > 1e-18; n++)
            {
                term *= -a * a / n;
                sum += term / (2 * n + 1);
            }
            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            double f = a;
            for (int n = 80; n >= 1; n--) f = a + n / 2.0 / f;
            result = 1 - Math.Exp(-a * a) / Math.Sqrt(Math.PI) / f;
        }
        return z < 0 ? -result : result;
    }
}
