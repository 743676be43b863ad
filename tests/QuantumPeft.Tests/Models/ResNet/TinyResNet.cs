using System.Text.Json;
using QuantumPeft.Formats.Safetensors;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.ResNet;

/// <summary>
/// Tiny ResNet folders in the Hugging Face layout, written from names this file spells out itself (not from the model
/// under test), and a forward pass computed directly from those tensors.
/// </summary>
static class TinyResNet
{
    public const int Channels = 3, Embedding = 8;
    public static readonly int[] HiddenSizes = [8, 16];
    public static readonly int[] Depths = [1, 2];

    /// <summary>The residual layers of the tiny model: state-dict prefix, input and output width, stride.</summary>
    public static IEnumerable<(string Prefix, int In, int Out, int Stride)> Layers(bool downsampleInFirstStage = false)
    {
        for (int s = 0; s < HiddenSizes.Length; s++)
            for (int j = 0; j < Depths[s]; j++)
            {
                int inChannels = j > 0 ? HiddenSizes[s] : s == 0 ? Embedding : HiddenSizes[s - 1];
                int stride = j > 0 ? 1 : s == 0 ? (downsampleInFirstStage ? 2 : 1) : 2;
                yield return ($"resnet.encoder.stages.{s}.layers.{j}", inChannels, HiddenSizes[s], stride);
            }
    }

    /// <summary>The convolution layers (prefix, in, out, kernel) a checkpoint of this shape has, shortcuts included.</summary>
    public static IEnumerable<(string Prefix, int In, int Out, int Kernel)> ConvLayers(string layerType)
    {
        yield return ("resnet.embedder.embedder", Channels, Embedding, 7);
        foreach (var (p, i, o, stride) in Layers())
        {
            if (layerType == "basic")
            {
                yield return ($"{p}.layer.0", i, o, 3);
                yield return ($"{p}.layer.1", o, o, 3);
            }
            else
            {
                yield return ($"{p}.layer.0", i, o / 4, 1);
                yield return ($"{p}.layer.1", o / 4, o / 4, 3);
                yield return ($"{p}.layer.2", o / 4, o, 1);
            }
            if (i != o || stride != 1) yield return ($"{p}.shortcut", i, o, 1);
        }
    }

    /// <summary>Random weights under Hugging Face's names: convolutions, BatchNorm with non-trivial statistics, and (when numLabels > 0) classifier.1.</summary>
    public static Dictionary<string, Tensor> Weights(string layerType, int numLabels, long seed)
    {
        var g = new Generator((ulong)seed, CPU);
        var w = new Dictionary<string, Tensor>();
        foreach (var (p, i, o, k) in ConvLayers(layerType))
        {
            w[$"{p}.convolution.weight"] = randn([o, i, k, k], generator: g) * (1.0 / Math.Sqrt(i * k * k));
            w[$"{p}.normalization.weight"] = rand([o], generator: g) + 0.5;
            w[$"{p}.normalization.bias"] = randn([o], generator: g) * 0.1;
            w[$"{p}.normalization.running_mean"] = randn([o], generator: g) * 0.1;
            w[$"{p}.normalization.running_var"] = rand([o], generator: g) + 0.5;
            w[$"{p}.normalization.num_batches_tracked"] = tensor(7L);
        }
        if (numLabels > 0)
        {
            w["classifier.1.weight"] = randn([numLabels, HiddenSizes[^1]], generator: g) * 0.3;
            w["classifier.1.bias"] = randn([numLabels], generator: g) * 0.1;
        }
        return w;
    }

    /// <summary>Writes config.json (+ id2label when numLabels > 0) and model.safetensors; returns the weights written (float32).</summary>
    public static Dictionary<string, Tensor> WriteFolder(string folder, string layerType = "basic", int numLabels = 3, long seed = 1,
        ScalarType dtype = ScalarType.Float32, Dictionary<string, object>? extra = null, bool batchCounts = true, bool prefixed = true)
    {
        Directory.CreateDirectory(folder);
        var weights = Weights(layerType, numLabels, seed);
        // Older checkpoints have no num_batches_tracked; ResNetModel checkpoints may have no "resnet." prefix.
        if (!batchCounts) foreach (var k in weights.Keys.Where(k => k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList()) weights.Remove(k);
        var config = new Dictionary<string, object>
        {
            ["model_type"] = "resnet", ["num_channels"] = Channels, ["embedding_size"] = Embedding,
            ["hidden_sizes"] = HiddenSizes, ["depths"] = Depths, ["layer_type"] = layerType, ["hidden_act"] = "relu",
            ["downsample_in_first_stage"] = false,
        };
        if (numLabels > 0)
        {
            config["architectures"] = new[] { "ResNetForImageClassification" };
            config["id2label"] = Enumerable.Range(0, numLabels).ToDictionary(i => i.ToString(), i => $"class{i}");
        }
        foreach (var (k, v) in extra ?? []) config[k] = v;
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config));
        var stored = weights.ToDictionary(p => prefixed || !p.Key.StartsWith("resnet.", StringComparison.Ordinal) ? p.Key : p.Key["resnet.".Length..],
            p => p.Value.is_floating_point() ? p.Value.to_type(dtype) : p.Value);
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), stored);
        // What the model should see: the stored values read back as float32 (bf16 rounds).
        return stored.ToDictionary(p => p.Key, p => p.Value.is_floating_point() ? p.Value.to_type(ScalarType.Float32) : p.Value);
    }

    /// <summary>The forward pass written out from the tensors: conv, eval-mode BatchNorm, ReLU, max pool, residual sum, average pool, linear.</summary>
    public static Tensor Reference(Dictionary<string, Tensor> w, Tensor x, string layerType, bool downsampleInBottleneck = false)
    {
        Tensor BatchNorm(Tensor h, string p)
        {
            Tensor V(string name) => w[$"{p}.normalization.{name}"].view(1, -1, 1, 1);
            return (h - V("running_mean")) / (V("running_var") + 1e-5).sqrt() * V("weight") + V("bias");
        }
        Tensor ConvBn(Tensor h, string p, long stride)
        {
            var weight = w[$"{p}.convolution.weight"];
            long pad = weight.shape[2] / 2;
            return BatchNorm(nn.functional.conv2d(h, weight, strides: [stride, stride], padding: [pad, pad]), p);
        }
        Tensor MaxPool3x3Stride2(Tensor h)
        {
            var padded = nn.functional.pad(h, [1, 1, 1, 1], value: double.NegativeInfinity);
            long outH = (h.shape[2] - 1) / 2 + 1, outW = (h.shape[3] - 1) / 2 + 1;
            Tensor? best = null;
            for (int dy = 0; dy < 3; dy++)
                for (int dx = 0; dx < 3; dx++)
                {
                    var window = padded[.., .., TensorIndex.Slice(dy, dy + 2 * (outH - 1) + 1, 2), TensorIndex.Slice(dx, dx + 2 * (outW - 1) + 1, 2)];
                    best = best is null ? window : maximum(best, window);
                }
            return best!;
        }

        var hidden = MaxPool3x3Stride2(ConvBn(x, "resnet.embedder.embedder", 2).relu());
        foreach (var (p, i, o, stride) in Layers())
        {
            Tensor main;
            if (layerType == "basic")
                main = ConvBn(ConvBn(hidden, $"{p}.layer.0", stride).relu(), $"{p}.layer.1", 1);
            else
            {
                var a = ConvBn(hidden, $"{p}.layer.0", downsampleInBottleneck ? stride : 1).relu();
                var b = ConvBn(a, $"{p}.layer.1", downsampleInBottleneck ? 1 : stride).relu();
                main = ConvBn(b, $"{p}.layer.2", 1);
            }
            var residual = i != o || stride != 1 ? ConvBn(hidden, $"{p}.shortcut", stride) : hidden;
            hidden = (main + residual).relu();
        }
        var pooled = hidden.mean([2, 3]);
        return pooled.matmul(w["classifier.1.weight"].t()) + w["classifier.1.bias"];
    }

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
