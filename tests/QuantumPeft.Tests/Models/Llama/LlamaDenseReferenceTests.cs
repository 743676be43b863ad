using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Llama;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Llama;

/// <summary>
/// One decoder layer (attention + MLP) and the head computed in double precision with explicit loops over the checkpoint's
/// matrices, sharing no code with the model: a wrong RoPE pairing, GQA mapping, scale or norm fails here.
/// </summary>
public sealed class LlamaDenseReferenceTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-llama-ref-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    const int Hidden = 16, Heads = 4, KvHeads = 2, HeadDim = 6, Inter = 24, Vocab = 40;
    const double Theta = 100.0, Eps = 1e-6;

    enum Variant { AsTransformers, InterleavedRope, GqaModulo }

    static double[][] Matrix(Dictionary<string, Tensor> w, string name)
    {
        var t = w[name].to(ScalarType.Float64);
        long rows = t.shape[0], cols = t.shape[1];
        var flat = t.data<double>().ToArray();
        return Enumerable.Range(0, (int)rows).Select(r => flat.Skip(r * (int)cols).Take((int)cols).ToArray()).ToArray();
    }

    static double[] Vector(Dictionary<string, Tensor> w, string name) => w[name].to(ScalarType.Float64).data<double>().ToArray();

    static double[] MatVec(double[][] m, double[] x, double[]? bias = null) =>
        m.Select((row, i) => row.Zip(x, (a, b) => a * b).Sum() + (bias?[i] ?? 0)).ToArray();

    static double[] RmsNorm(double[] x, double[] weight)
    {
        double rms = Math.Sqrt(x.Select(v => v * v).Average() + Eps);
        return x.Select((v, i) => v / rms * weight[i]).ToArray();
    }

    // Rotates one head vector at position p: dimension i pairs with i + d/2 (transformers' rotate_half), or with its
    // neighbour (the interleaved GPT-J/Meta convention) for the negative control.
    static double[] Rope(double[] u, int p, bool interleaved)
    {
        var r = new double[u.Length];
        int half = u.Length / 2;
        for (int i = 0; i < half; i++)
        {
            double angle = p * Math.Pow(Theta, -2.0 * i / u.Length);
            double c = Math.Cos(angle), s = Math.Sin(angle);
            int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
            r[a] = u[a] * c - u[b] * s;
            r[b] = u[b] * c + u[a] * s;
        }
        return r;
    }

    static double[,] Reference(Dictionary<string, Tensor> w, long[] ids, Variant variant)
    {
        const string p = "model.layers.0.";
        var (wq, wk, wv, wo) = (Matrix(w, p + "self_attn.q_proj.weight"), Matrix(w, p + "self_attn.k_proj.weight"),
            Matrix(w, p + "self_attn.v_proj.weight"), Matrix(w, p + "self_attn.o_proj.weight"));
        var (bq, bk, bv, bo) = (Vector(w, p + "self_attn.q_proj.bias"), Vector(w, p + "self_attn.k_proj.bias"),
            Vector(w, p + "self_attn.v_proj.bias"), Vector(w, p + "self_attn.o_proj.bias"));
        var (wg, wu, wd) = (Matrix(w, p + "mlp.gate_proj.weight"), Matrix(w, p + "mlp.up_proj.weight"), Matrix(w, p + "mlp.down_proj.weight"));
        var embed = Matrix(w, "model.embed_tokens.weight");
        var head = Matrix(w, "lm_head.weight");
        var (nIn, nPost, nFinal) = (Vector(w, p + "input_layernorm.weight"), Vector(w, p + "post_attention_layernorm.weight"), Vector(w, "model.norm.weight"));

        int T = ids.Length;
        var x = ids.Select(id => embed[id]).ToArray();
        var h = x.Select(v => RmsNorm(v, nIn)).ToArray();
        bool interleaved = variant == Variant.InterleavedRope;
        double[] HeadOf(double[] flat, int headIndex) => flat.Skip(headIndex * HeadDim).Take(HeadDim).ToArray();
        var q = h.Select((v, t) => Enumerable.Range(0, Heads).Select(i => Rope(HeadOf(MatVec(wq, v, bq), i), t, interleaved)).ToArray()).ToArray();
        var k = h.Select((v, t) => Enumerable.Range(0, KvHeads).Select(i => Rope(HeadOf(MatVec(wk, v, bk), i), t, interleaved)).ToArray()).ToArray();
        var val = h.Select(v => Enumerable.Range(0, KvHeads).Select(i => HeadOf(MatVec(wv, v, bv), i)).ToArray()).ToArray();

        var logits = new double[T, Vocab];
        for (int t = 0; t < T; t++)
        {
            var context = new double[Heads * HeadDim];
            for (int hd = 0; hd < Heads; hd++)
            {
                // Query heads 0, 1 share key/value head 0; heads 2, 3 share head 1 (repeat_kv); the control interleaves them.
                int g = variant == Variant.GqaModulo ? hd % KvHeads : hd / (Heads / KvHeads);
                var scores = Enumerable.Range(0, t + 1).Select(j => q[t][hd].Zip(k[j][g], (a, b) => a * b).Sum() / Math.Sqrt(HeadDim)).ToArray();
                double max = scores.Max();
                var e = scores.Select(s => Math.Exp(s - max)).ToArray();
                double z = e.Sum();
                for (int j = 0; j <= t; j++)
                    for (int d = 0; d < HeadDim; d++) context[hd * HeadDim + d] += e[j] / z * val[j][g][d];
            }
            var x2 = MatVec(wo, context, bo).Select((o, i) => x[t][i] + o).ToArray();
            var h2 = RmsNorm(x2, nPost);
            var gate = MatVec(wg, h2);
            var up = MatVec(wu, h2);
            var act = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
            var x3 = MatVec(wd, act).Select((m, i) => x2[i] + m).ToArray();
            var f = RmsNorm(x3, nFinal);
            var l = MatVec(head, f);
            for (int vIdx = 0; vIdx < Vocab; vIdx++) logits[t, vIdx] = l[vIdx];
        }
        return logits;
    }

    static double MaxDiff(double[,] a, Tensor b)
    {
        var flat = b.to(ScalarType.Float64).data<double>().ToArray();
        double m = 0;
        for (int t = 0; t < a.GetLength(0); t++)
            for (int v = 0; v < a.GetLength(1); v++) m = Math.Max(m, Math.Abs(a[t, v] - flat[t * a.GetLength(1) + v]));
        return m;
    }

    [Fact]
    public void OneLayerMatchesTheDenseComputation()
    {
        var c = TinyLlama.Config("llama");
        c["num_hidden_layers"] = 1;
        c["head_dim"] = HeadDim;
        c["attention_bias"] = true;
        c["rope_theta"] = Theta;
        Assert.Equal((Hidden, Heads, KvHeads, Inter, Vocab), ((int)c["hidden_size"]!, (int)c["num_attention_heads"]!, (int)c["num_key_value_heads"]!,
            (int)c["intermediate_size"]!, (int)c["vocab_size"]!));
        var folder = Path.Combine(_dir, "one-layer");
        var weights = TinyLlama.Write(folder, c, seed: 3);
        var (model, _) = HfLlamaLoader.LoadForCausalLM(folder, new DecoderLoadOptions(Log: _ => { }));
        model.eval();

        long[] ids = [4, 17, 9, 33, 4, 25, 12];
        Tensor logits;
        using (no_grad()) logits = model.Forward(tensor(ids).unsqueeze(0))[0];

        var expected = Reference(weights, ids, Variant.AsTransformers);
        double scale = expected.Cast<double>().Max(Math.Abs);
        double diff = MaxDiff(expected, logits);
        output.WriteLine($"dense reference: max |diff| = {diff:E2} (logit scale {scale:F2}); interleaved RoPE {MaxDiff(Reference(weights, ids, Variant.InterleavedRope), logits):F3}, modulo GQA {MaxDiff(Reference(weights, ids, Variant.GqaModulo), logits):F3}");
        Assert.True(diff < 1e-4 * Math.Max(1, scale), $"model vs dense reference: {diff} (logit scale {scale})");
        // The check can tell the conventions apart.
        Assert.True(MaxDiff(Reference(weights, ids, Variant.InterleavedRope), logits) > 1e-2, "interleaved RoPE must not match");
        Assert.True(MaxDiff(Reference(weights, ids, Variant.GqaModulo), logits) > 1e-2, "a modulo GQA mapping must not match");
    }
}
