using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Quantization;
using QuantumPeft.Stiefel;
using QuantumPeft.Tests.Tuners;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Quantization;

public sealed class QuantizationTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-quant-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    private static Tensor RY(Tensor t) => torch.stack([torch.cos(t / 2), -torch.sin(t / 2), torch.sin(t / 2), torch.cos(t / 2)], 1);

    [Fact]
    public void AngleGridSpansFourPiSoNoFactorFlipsSign()
    {
        const int bits = 6;
        var step = 4 * Math.PI / (1 << bits);
        var theta = torch.linspace(-20, 20, 4001, dtype: ScalarType.Float64);
        var q = UniformQuantizer.QuantizeAngles(theta, bits);
        Assert.Equal(ScalarType.Int8, q.Codes.dtype);
        Assert.True(q.Codes.min().item<sbyte>() >= -32 && q.Codes.max().item<sbyte>() <= 31);
        Assert.Equal(step, q.Scale, 6);
        // The rotation of the quantized angle is within half a step of the exact one everywhere (2 pi-periodic grids fail near odd multiples of 2 pi).
        var err = (RY(q.Dequantize().to(ScalarType.Float64)) - RY(theta)).abs().max().item<double>();
        Assert.True(err <= step / 4 + 1e-6, $"max RY error {err}");
        // theta and theta + 4 pi share a code; theta + 2 pi does not.
        var shifted = UniformQuantizer.QuantizeAngles(theta + 4 * Math.PI, bits);
        Assert.True((q.Codes == shifted.Codes).all().item<bool>());
        Assert.False((q.Codes == UniformQuantizer.QuantizeAngles(theta + 2 * Math.PI, bits).Codes).all().item<bool>());
    }

    [Fact]
    public void SymmetricQuantizationErrorIsHalfAStep()
    {
        var x = torch.randn(1000, generator: new Generator(5));
        var q = UniformQuantizer.QuantizeSymmetric(x, 4);
        Assert.InRange(q.Codes.min().item<sbyte>(), -7, 0);
        Assert.Equal(7, q.Codes.abs().max().item<sbyte>());
        Assert.True((q.Dequantize() - x).abs().max().item<float>() <= q.Scale / 2 + 1e-6);
        Assert.Equal(0, UniformQuantizer.QuantizeSymmetric(torch.zeros(3), 8).Dequantize().abs().sum().item<float>());
    }

    [Fact]
    public void PostTrainingQuantizedAdapterSavesIntegersAndReloadsTheSameOutputs()
    {
        var model = TinyModel.Create();
        var config = InjectionTests.Quantum("query", "value", "fc1") with { InitLambda = "random" };
        var peft = PeftModel.Inject(model, config);
        using (torch.no_grad()) foreach (var p in peft.AdapterParameters()) p.add_(torch.rand_like(p) * 3);
        var x = TinyModel.Input();
        var floatOut = model.forward(x).detach().clone();
        peft.Quantize(angleBits: 8, lambdaBits: 6);
        var quantOut = model.forward(x).detach().clone();
        Assert.True(InjectionTests.MaxDiff(floatOut, quantOut) > 0);

        var report = peft.Report();
        var angles = peft.AdaptedLayers.Sum(l => ((QuantumBranch)l.Layer["default"]).MapU.ParameterCount + ((QuantumBranch)l.Layer["default"]).MapV.ParameterCount);
        Assert.Equal(angles * 8 + 6 * 2 * 6, report.AdapterQuantizedBits);
        Assert.Equal(report.AdapterParams * 32, report.AdapterFloatBits);

        peft.Save(dir);
        var tensors = SafetensorsFile.Read(Path.Combine(dir, "adapter_model.safetensors"));
        Assert.Equal(ScalarType.Int8, tensors["base_model.model.layers.0.query.qpeft_lambda.q"].dtype);
        Assert.Equal([1L], tensors["base_model.model.layers.0.query.qpeft_lambda.scale"].shape);
        Assert.DoesNotContain("base_model.model.layers.0.query.qpeft_lambda", tensors.Keys);
        Assert.Contains(tensors.Keys, k => k.StartsWith("base_model.model.layers.0.query.qpeft_U.", StringComparison.Ordinal) && k.EndsWith(".q", StringComparison.Ordinal));
        var lambdaCodes = tensors["base_model.model.layers.0.query.qpeft_lambda.q"];
        Assert.True(lambdaCodes.abs().max().item<sbyte>() <= 31);

        var fresh = TinyModel.Create();
        var loaded = PeftModel.Load(fresh, dir);
        // The restored numbers are bit-identical; outputs agree to float32 rounding of differently laid-out kernels.
        var a = model.state_dict();
        foreach (var (k, t) in fresh.state_dict()) Assert.True(InjectionTests.MaxDiff(a[k], t) == 0, k);
        Assert.True(InjectionTests.MaxDiff(quantOut, fresh.forward(x)) < 1e-6);
        Assert.Equal(report.AdapterQuantizedBits, loaded.Report().AdapterQuantizedBits);
    }

    [Fact]
    public void QuantizationAwareForwardUsesTheGridAndStillTrains()
    {
        var model = TinyModel.Create();
        var config = InjectionTests.Quantum("query") with
        {
            InitLambda = "random", Quantization = new QuantizationSettings { AngleBits = 3, LambdaBits = 3, Mode = "aware" },
        };
        var peft = PeftModel.Inject(model, config);
        var branch = (QuantumBranch)peft.AdaptedLayers[0].Layer["default"];
        var (_, _, scaledLambda) = branch.Factors();
        var expectedLambda = UniformQuantizer.QuantizeSymmetric(branch.Lambda, 3).Dequantize() * (config.Alpha / config.R);
        Assert.True(InjectionTests.MaxDiff(scaledLambda, expectedLambda) < 1e-6);

        // Angles start at +-0.02: on a 3-bit 4 pi grid they all round to 0, so U equals the zero-angle circuit.
        var (u, _, _) = branch.Factors();
        using var zero = StiefelMaps.Create(8, 2, config.StiefelU with { Init = "zeros" }, 0);
        Assert.True(InjectionTests.MaxDiff(u, zero.Compute()) < 1e-6);

        var x = TinyModel.Input();
        model.forward(x).square().sum().backward();
        Assert.True(branch.Lambda.grad!.abs().sum().item<float>() > 0);
        Assert.True(branch.MapU.parameters().Sum(p => p.grad!.abs().sum().item<float>()) > 0);
        Assert.NotNull(peft.Report().AdapterQuantizedBits);
    }
}
