using QuantumPeft.Quantization;
using QuantumPeft.Stiefel;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.Quantum;

/// <summary>Quantum-PEFT: delta y = s ((dropout(x) V) * lambda) U^T with U = map_U(), V = map_V() orthonormal, s = alpha / K.</summary>
/// <remarks>
/// U and V are computed once per forward call, in float32, and applied as two thin products, never as a dense
/// N_out x N_in matrix. File keys, relative to the module path: <c>qpeft_U.&lt;map parameter&gt;</c>,
/// <c>qpeft_V.&lt;map parameter&gt;</c>, <c>qpeft_lambda</c>; when quantized each becomes <c>&lt;key&gt;.q</c>
/// (int8/int16 codes) plus <c>&lt;key&gt;.scale</c> (float32 [1]), value = code * scale.
/// <para>On a Conv2d the kernel [out, in, kh, kw] is the out x (in * kh * kw) matrix W, U is out x K and V (in * kh * kw) x K
/// (their Stiefel maps take any N: sizes such as 27 = 3 * 9 or 576 = 64 * 9 go through the qudit or block constructions).
/// Forward is base(x) + s * conv_1x1(U diag(lambda), conv(x, V^T as [K, in, kh, kw])) with the base layer's stride, padding and
/// dilation, so per step it costs one K-channel convolution (K / out of the base layer's multiply-adds) plus a 1 x 1 one
/// (K * out per output pixel) and the maps' U and V; no out x (in * kh * kw) matrix is formed. Merging adds
/// s (U diag(lambda) V^T) viewed as [out, in, kh, kw].</para>
/// </remarks>
public sealed class QuantumBranch : AdapterBranch
{
    private readonly StiefelMap qpeft_U;
    private readonly StiefelMap qpeft_V;
    private readonly Parameter qpeft_lambda;
    private readonly Dropout? qpeft_dropout;
    private readonly StiefelMapOptions optionsU, optionsV;
    // Unregistered copies for quantization-aware forward passes (the trained maps keep their float values).
    private StiefelMap? shadowU, shadowV;
    // Per-tensor scales fixed by post-training quantization (or a quantized file), reused on save so that
    // re-quantizing values already on the grid gives back the same codes and the same scale, bit for bit.
    private readonly Dictionary<string, double> scales = new(StringComparer.Ordinal);

    /// <summary>Rank K.</summary>
    public int Rank { get; }

    /// <summary>s = alpha / K.</summary>
    public double Scaling { get; }

    /// <summary>The current quantization (from the config, or set by <see cref="Quantize"/>), or null.</summary>
    public QuantizationSettings? Quantization { get; private set; }

    public override string PeftType => QuantumPeftConfig.TypeName;

    /// <summary>Builds the maps with the config's options (seeded per side) and lambda per config.init_lambda.</summary>
    public QuantumBranch(int inFeatures, int outFeatures, QuantumPeftConfig config, long seedU, long seedV)
        : this(inFeatures, outFeatures, null, config, seedU, seedV) { }

    /// <summary>The branch for a Conv2d of geometry <paramref name="conv"/>: U is out x K, V (in * kh * kw) x K.</summary>
    public QuantumBranch(Conv2dShape conv, QuantumPeftConfig config, long seedU, long seedV)
        : this(conv.MatrixIn, conv.OutChannels, conv, config, seedU, seedV) { }

    private QuantumBranch(int inFeatures, int outFeatures, Conv2dShape? conv, QuantumPeftConfig config, long seedU, long seedV)
        : base(nameof(QuantumBranch), inFeatures, outFeatures, conv)
    {
        config.Validate();
        Rank = config.R;
        if (Rank > Math.Min(inFeatures, outFeatures))
            throw new ArgumentException($"Rank K = {Rank} exceeds min(in, out) = {Math.Min(inFeatures, outFeatures)} for a {outFeatures}x{inFeatures} layer.", nameof(config));
        Scaling = config.Scaling;
        optionsU = config.StiefelU;
        optionsV = config.StiefelV;
        qpeft_U = StiefelMaps.Create(outFeatures, Rank, optionsU, seedU);
        qpeft_V = StiefelMaps.Create(inFeatures, Rank, optionsV, seedV);
        var lambda = config.InitLambda == "random"
            ? torch.rand(Rank, generator: new Generator((ulong)(seedU ^ seedV))) * 2 - 1
            : torch.zeros(Rank);
        qpeft_lambda = new Parameter(lambda, requires_grad: true);
        if (config.Dropout > 0) qpeft_dropout = nn.Dropout(config.Dropout);
        Quantization = config.Quantization;
        RegisterComponents();
    }

    /// <summary>Evaluates U and V together with other branches' circuits (set by the adapter's method); null: alone.</summary>
    public PauliCircuitBatch? CircuitBatch { get; set; }

    /// <summary>The map producing U.</summary>
    public StiefelMap MapU => qpeft_U;

    /// <summary>The map producing V.</summary>
    public StiefelMap MapV => qpeft_V;

    /// <summary>lambda (K).</summary>
    public Parameter Lambda => qpeft_lambda;

    private bool Aware => Quantization is { IsAware: true };

    /// <summary>U (out x K), V (in x K) and s * lambda as used by forward (quantized with a straight-through estimator when aware).</summary>
    public (Tensor U, Tensor V, Tensor ScaledLambda) Factors()
    {
        var u = Aware && Quantization!.AngleBits is { } ab ? Ste(qpeft_U, ref shadowU, optionsU, ab) : Compute(qpeft_U);
        var v = Aware && Quantization!.AngleBits is { } ab2 ? Ste(qpeft_V, ref shadowV, optionsV, ab2) : Compute(qpeft_V);
        Tensor lambda = qpeft_lambda;
        if (Aware && Quantization!.LambdaBits is { } lb) lambda = UniformQuantizer.FakeQuantizeSymmetric(lambda, lb);
        return (u.to(ScalarType.Float32), v.to(ScalarType.Float32), lambda * Scaling);
    }

    private Tensor Compute(StiefelMap map) => CircuitBatch is { } batch ? batch.Compute(map) : map.Compute();

    // Straight-through at the map's output: forward uses the map evaluated at quantized parameters, the gradient is the
    // float map's (in-place swaps of the trained parameters would corrupt autograd's saved tensors).
    private Tensor Ste(StiefelMap map, ref StiefelMap? shadow, StiefelMapOptions options, int bits)
    {
        var exact = map.Compute();
        shadow ??= StiefelMaps.Create(map.N, map.K, options, 0);
        shadow.to(qpeft_lambda.device);
        using (no_grad())
        {
            var source = map.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in shadow.named_parameters())
                p.copy_(QuantizeParameter(map, source[name], bits).Dequantize().to(p.dtype).to(p.device));
        }
        Tensor quantized;
        using (no_grad()) quantized = shadow.Compute();
        return exact + (quantized - exact).detach();
    }

    private static bool IsAngleMap(StiefelMap map) => map.Kind == StiefelMaps.Name(StiefelMapKind.Pauli);

    private static QuantizedTensor QuantizeParameter(StiefelMap map, Tensor p, int bits, double? scale = null) =>
        IsAngleMap(map) ? UniformQuantizer.QuantizeAngles(p, bits) : UniformQuantizer.QuantizeSymmetric(p, Math.Max(bits, 2), scale);

    public override Tensor Forward(Tensor x)
    {
        var (u, v, lambda) = Factors();
        var h = x.to(ScalarType.Float32);
        if (qpeft_dropout is not null) h = qpeft_dropout.forward(h);
        if (Conv is { } conv)
        {
            // V^T as a K-channel kernel with the base layer's geometry, then U diag(lambda) as a 1 x 1 convolution.
            var down = conv.Apply(h, v.t().reshape(Rank, conv.InChannels, conv.KernelH, conv.KernelW));
            return nn.functional.conv2d(down * lambda.view(1, Rank, 1, 1), u.reshape(OutFeatures, Rank, 1, 1));
        }
        return (h.matmul(v) * lambda).matmul(u.t());
    }

    public override Tensor DeltaWeight()
    {
        var (u, v, lambda) = Factors();
        return (u * lambda).matmul(v.t());
    }

    /// <summary>The exact LoRA form of this update: B = s U diag(lambda) (out x K), A = V^T (K x in), LoRA scaling 1.
    /// On a Conv2d, reshape them to peft's [out, K, 1, 1] and [K, in, kh, kw] (<see cref="LoraExport"/> does).</summary>
    public (Tensor B, Tensor A) ToLora()
    {
        var (u, v, lambda) = Factors();
        return ((u * lambda).contiguous(), v.t().contiguous());
    }

    /// <summary>Post-training quantization: moves every angle (and other map parameter) and lambda onto its b-bit grid.</summary>
    public void Quantize(int angleBits, int lambdaBits)
    {
        var settings = new QuantizationSettings { AngleBits = angleBits, LambdaBits = lambdaBits, Mode = "post_training" };
        settings.Validate();
        using var _ = no_grad();
        scales.Clear();
        foreach (var (key, map, p) in Tensors())
        {
            var q = map is null ? UniformQuantizer.QuantizeSymmetric(p, lambdaBits) : QuantizeParameter(map, p, angleBits);
            scales[key] = q.Scale;
            p.copy_(q.Dequantize().to(p.dtype).to(p.device));
        }
        Quantization = settings;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<string> ScaleParameterNames => [nameof(qpeft_lambda)];

    public override long? QuantizedBits => Quantization is { AngleBits: { } ab, LambdaBits: { } lb }
        ? (qpeft_U.ParameterCount + qpeft_V.ParameterCount) * ab + (long)Rank * lb
        : null;

    private IEnumerable<(string Key, StiefelMap? Map, Tensor Value)> Tensors()
    {
        foreach (var (name, p) in qpeft_U.named_parameters()) yield return ($"qpeft_U.{name}", qpeft_U, p);
        foreach (var (name, p) in qpeft_V.named_parameters()) yield return ($"qpeft_V.{name}", qpeft_V, p);
        yield return ("qpeft_lambda", null, qpeft_lambda);
    }

    private bool StoresIntegers => Quantization is { Mode: "post_training", AngleBits: not null, LambdaBits: not null };

    public override Dictionary<string, Tensor> ExportState()
    {
        var state = new Dictionary<string, Tensor>();
        foreach (var (key, map, value) in Tensors())
        {
            if (!StoresIntegers) { state[key] = value.detach().cpu().to(ScalarType.Float32).contiguous(); continue; }
            double? scale = scales.TryGetValue(key, out var s) ? s : null;
            var q = map is null ? UniformQuantizer.QuantizeSymmetric(value, Quantization!.LambdaBits!.Value, scale)
                                : QuantizeParameter(map, value, Quantization!.AngleBits!.Value, scale);
            state[key + ".q"] = q.Codes.cpu().contiguous();
            state[key + ".scale"] = torch.tensor(new[] { (float)q.Scale });
        }
        return state;
    }

    public override void ImportState(IReadOnlyDictionary<string, Tensor> state, string keyPrefix)
    {
        using var _ = no_grad();
        foreach (var (key, _, value) in Tensors())
        {
            Tensor source;
            if (state.ContainsKey(key + ".q"))
            {
                if (!StoresIntegers)
                    throw new InvalidDataException($"Adapter key '{keyPrefix}{key}.q' holds quantized codes but the config has no post-training quantization bits.");
                var codes = Require(state, key + ".q", keyPrefix, value.shape);
                var scale = Require(state, key + ".scale", keyPrefix, 1);
                if (codes.is_floating_point() || codes.dtype == ScalarType.Bool)
                    throw new InvalidDataException($"Adapter key '{keyPrefix}{key}.q' must hold integers, found {codes.dtype}.");
                var q = new QuantizedTensor(codes, scale.to(ScalarType.Float32).item<float>(), 0);
                scales[key] = q.Scale;
                source = q.Dequantize();
            }
            else source = Require(state, key, keyPrefix, value.shape);
            value.copy_(source.to(value.dtype).to(value.device));
        }
    }
}
