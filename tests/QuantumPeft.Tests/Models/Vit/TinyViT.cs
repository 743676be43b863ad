using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Safetensors;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Vit;

/// <summary>Tiny ViT checkpoints written in the exact Hugging Face layout, with names and shapes spelled out here from
/// transformers' module tree, and a plain double-precision forward pass to check the model against (not the model's code).</summary>
static class TinyViT
{
    public const int Hidden = 32, Layers = 2, Heads = 4, Intermediate = 48, Image = 16, Patch = 4, Channels = 3, Classes = 5;
    public const double Eps = 1e-12;
    public static readonly string[] ClassNames = ["cat", "dog", "fish", "bird", "frog"];

    /// <summary>config.json as save_pretrained writes it for a ViTForImageClassification with tiny sizes.</summary>
    public static Dictionary<string, object?> Config(string act = "gelu") => new()
    {
        ["architectures"] = new[] { "ViTForImageClassification" },
        ["attention_probs_dropout_prob"] = 0.0,
        ["encoder_stride"] = Patch,
        ["hidden_act"] = act,
        ["hidden_dropout_prob"] = 0.0,
        ["hidden_size"] = Hidden,
        ["id2label"] = ClassNames.Select((n, i) => (n, i)).ToDictionary(p => p.i.ToString(), p => p.n),
        ["image_size"] = Image,
        ["initializer_range"] = 0.02,
        ["intermediate_size"] = Intermediate,
        ["label2id"] = ClassNames.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i),
        ["layer_norm_eps"] = Eps,
        ["model_type"] = "vit",
        ["num_attention_heads"] = Heads,
        ["num_channels"] = Channels,
        ["num_hidden_layers"] = Layers,
        ["patch_size"] = Patch,
        ["qkv_bias"] = true,
        ["torch_dtype"] = "float32",
        ["transformers_version"] = "4.46.0",
    };

    /// <summary>The tensors of transformers' ViTForImageClassification (names vit.*, classifier.*): name to shape.</summary>
    public static SortedDictionary<string, long[]> Shapes(int classes = Classes)
    {
        int tokens = (Image / Patch) * (Image / Patch) + 1;
        var s = new SortedDictionary<string, long[]>(StringComparer.Ordinal)
        {
            ["vit.embeddings.cls_token"] = [1, 1, Hidden],
            ["vit.embeddings.position_embeddings"] = [1, tokens, Hidden],
            ["vit.embeddings.patch_embeddings.projection.weight"] = [Hidden, Channels, Patch, Patch],
            ["vit.embeddings.patch_embeddings.projection.bias"] = [Hidden],
            ["vit.layernorm.weight"] = [Hidden],
            ["vit.layernorm.bias"] = [Hidden],
            ["classifier.weight"] = [classes, Hidden],
            ["classifier.bias"] = [classes],
        };
        for (int i = 0; i < Layers; i++)
        {
            var p = $"vit.encoder.layer.{i}.";
            foreach (var name in new[] { "attention.attention.query", "attention.attention.key", "attention.attention.value", "attention.output.dense" })
            {
                s[p + name + ".weight"] = [Hidden, Hidden];
                s[p + name + ".bias"] = [Hidden];
            }
            s[p + "intermediate.dense.weight"] = [Intermediate, Hidden];
            s[p + "intermediate.dense.bias"] = [Intermediate];
            s[p + "output.dense.weight"] = [Hidden, Intermediate];
            s[p + "output.dense.bias"] = [Hidden];
            foreach (var norm in new[] { "layernorm_before", "layernorm_after" })
            {
                s[p + norm + ".weight"] = [Hidden];
                s[p + norm + ".bias"] = [Hidden];
            }
        }
        return s;
    }

    /// <summary>Random tensors for every name: weights N(0, 0.25), biases N(0, 0.1), norms 1 + N(0, 0.1), cls and positions N(0, 0.5).</summary>
    public static Dictionary<string, Tensor> Weights(long seed = 1, int classes = Classes)
    {
        using var generator = new Generator((ulong)seed, CPU);
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, shape) in Shapes(classes))
        {
            var t = empty(shape, ScalarType.Float32).normal_(0, 1, generator);
            result[name] = name.Contains("layernorm") && name.EndsWith("weight") ? 1 + 0.1 * t
                : name.EndsWith("bias") ? 0.1 * t
                : name.Contains("cls_token") || name.Contains("position_embeddings") ? 0.5 * t
                : 0.25 * t;
        }
        return result;
    }

    /// <summary>The bare ViTModel layout of <paramref name="weights"/>: vit. stripped, no classifier, plus a pooler.</summary>
    public static Dictionary<string, Tensor> BareWithPooler(Dictionary<string, Tensor> weights, long seed = 9)
    {
        using var generator = new Generator((ulong)seed, CPU);
        var bare = weights.Where(p => p.Key.StartsWith("vit.")).ToDictionary(p => p.Key["vit.".Length..], p => p.Value);
        bare["pooler.dense.weight"] = 0.25 * empty([Hidden, Hidden]).normal_(0, 1, generator);
        bare["pooler.dense.bias"] = 0.1 * empty([Hidden]).normal_(0, 1, generator);
        return bare;
    }

    public static string Json(Dictionary<string, object?> c) => JsonSerializer.Serialize(c, new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Writes config.json and model.safetensors (or shards with an index) into <paramref name="folder"/>.</summary>
    public static string Write(string folder, Dictionary<string, object?> config, IReadOnlyDictionary<string, Tensor> weights, long? maxShardBytes = null)
    {
        Directory.CreateDirectory(folder);
        if (maxShardBytes is null)
        {
            File.WriteAllText(Path.Combine(folder, "config.json"), Json(config));
            SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        }
        else HfFolderWriter.Write(folder, Json(config), weights, maxShardBytes);
        return folder;
    }

    /// <summary>Pixel values [B, 3, H, W], N(0, 1).</summary>
    public static Tensor Pixels(int batch, int height = Image, int width = Image, long seed = 4, int channels = Channels)
    {
        using var generator = new Generator((ulong)seed, CPU);
        return empty([batch, channels, height, width]).normal_(0, 1, generator);
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var d = (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max();
        return d.item<double>();
    }

    // ---- the reference: transformers' ViT forward, one formula at a time, in double precision ----

    static Tensor D(IReadOnlyDictionary<string, Tensor> w, string name) => w[name].to(ScalarType.Float64);

    /// <summary>The last hidden state [B, T, hidden] (after the final LayerNorm) for ViTForImageClassification names.</summary>
    public static Tensor ReferenceHidden(IReadOnlyDictionary<string, Tensor> w, Tensor pixels)
    {
        var x = pixels.to(ScalarType.Float64);
        long b = x.shape[0], h = x.shape[2] / Patch, wd = x.shape[3] / Patch;
        // Patches in row-major order, each flattened (channel, row, column) like the conv kernel: the convolution as a matmul.
        var patches = x.reshape(b, Channels, h, Patch, wd, Patch).permute(0, 2, 4, 1, 3, 5).reshape(b, h * wd, Channels * Patch * Patch);
        var kernel = D(w, "vit.embeddings.patch_embeddings.projection.weight").reshape(Hidden, -1);
        var emb = patches.matmul(kernel.t()) + D(w, "vit.embeddings.patch_embeddings.projection.bias");
        var cls = D(w, "vit.embeddings.cls_token").expand(b, 1, Hidden);
        var pos = ReferencePositions(D(w, "vit.embeddings.position_embeddings"), (int)h, (int)wd);
        var hidden = cat([cls, emb], 1) + pos;
        for (int i = 0; i < Layers; i++)
        {
            var p = $"vit.encoder.layer.{i}.";
            var normed = Norm(hidden, D(w, p + "layernorm_before.weight"), D(w, p + "layernorm_before.bias"));
            var attended = Attention(normed, w, p + "attention.");
            hidden = hidden + attended;
            var inner = Dense(Norm(hidden, D(w, p + "layernorm_after.weight"), D(w, p + "layernorm_after.bias")), w, p + "intermediate.dense");
            var gelu = 0.5 * inner * (1 + (inner / Math.Sqrt(2)).erf());
            hidden = hidden + Dense(gelu, w, p + "output.dense");
        }
        return Norm(hidden, D(w, "vit.layernorm.weight"), D(w, "vit.layernorm.bias"));
    }

    /// <summary>The classifier's logits [B, classes] on the [CLS] token.</summary>
    public static Tensor ReferenceLogits(IReadOnlyDictionary<string, Tensor> w, Tensor pixels) =>
        Dense(ReferenceHidden(w, pixels).select(1, 0), w, "classifier");

    static Tensor Dense(Tensor x, IReadOnlyDictionary<string, Tensor> w, string name) => x.matmul(D(w, name + ".weight").t()) + D(w, name + ".bias");

    static Tensor Norm(Tensor x, Tensor weight, Tensor bias)
    {
        var mean = x.mean([-1], keepdim: true);
        var variance = (x - mean).pow(2).mean([-1], keepdim: true);
        return (x - mean) / (variance + Eps).sqrt() * weight + bias;
    }

    static Tensor Attention(Tensor x, IReadOnlyDictionary<string, Tensor> w, string p)
    {
        long b = x.shape[0], t = x.shape[1], d = Hidden / Heads;
        Tensor Split(Tensor y) => y.reshape(b, t, Heads, d).permute(0, 2, 1, 3);
        var q = Split(Dense(x, w, p + "attention.query"));
        var k = Split(Dense(x, w, p + "attention.key"));
        var v = Split(Dense(x, w, p + "attention.value"));
        var scores = q.matmul(k.transpose(-1, -2)) / Math.Sqrt(d);
        var e = (scores - scores.amax([-1], keepdim: true)).exp();
        var context = (e / e.sum([-1], keepdim: true)).matmul(v);
        return Dense(context.permute(0, 2, 1, 3).reshape(b, t, Hidden), w, p + "output.dense");
    }

    /// <summary>Position embeddings for a rows x cols patch grid: unchanged at the checkpoint's grid, else the hand-written bicubic below.</summary>
    public static Tensor ReferencePositions(Tensor positions, int rows, int cols)
    {
        int grid = Image / Patch;
        if (rows == grid && cols == grid) return positions;
        var patchGrid = positions.narrow(1, 1, grid * grid).reshape(grid, grid, Hidden);
        return cat([positions.narrow(1, 0, 1), Bicubic(patchGrid, rows, cols).reshape(1, rows * cols, Hidden)], 1);
    }

    /// <summary>
    /// PyTorch's bicubic resize with align_corners=False, written out: source coordinate (dst + 0.5) in / out - 0.5 (not
    /// clamped, unlike bilinear), Keys' cubic convolution with A = -0.75 over the 4 nearest source samples, indices clamped
    /// to the border; rows and columns separately. <paramref name="src"/> is [inH, inW, C]; the result [outH, outW, C].
    /// </summary>
    public static Tensor Bicubic(Tensor src, int outH, int outW)
    {
        int inH = (int)src.shape[0], inW = (int)src.shape[1], c = (int)src.shape[2];
        var s = src.to(ScalarType.Float64).contiguous().data<double>().ToArray();
        var result = new double[outH * outW * c];
        for (int oy = 0; oy < outH; oy++)
        for (int ox = 0; ox < outW; ox++)
        {
            var (y0, wy) = Taps(oy, inH, outH);
            var (x0, wx) = Taps(ox, inW, outW);
            for (int ch = 0; ch < c; ch++)
            {
                double sum = 0;
                for (int i = 0; i < 4; i++)
                {
                    int yy = Math.Clamp(y0 - 1 + i, 0, inH - 1);
                    double row = 0;
                    for (int j = 0; j < 4; j++)
                    {
                        int xx = Math.Clamp(x0 - 1 + j, 0, inW - 1);
                        row += wx[j] * s[(yy * inW + xx) * c + ch];
                    }
                    sum += wy[i] * row;
                }
                result[(oy * outW + ox) * c + ch] = sum;
            }
        }
        return tensor(result, [outH, outW, c], ScalarType.Float64);
    }

    static (int Floor, double[] Weights) Taps(int dst, int inSize, int outSize)
    {
        const double A = -0.75;
        double real = (dst + 0.5) * inSize / outSize - 0.5;
        int floor = (int)Math.Floor(real);
        double t = real - floor;
        static double Near(double x, double a) => ((a + 2) * x - (a + 3)) * x * x + 1;       // |x| <= 1
        static double Far(double x, double a) => ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;  // 1 < |x| < 2
        return (floor, [Far(t + 1, A), Near(t, A), Near(1 - t, A), Far(2 - t, A)]);
    }
}
