using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

/// <summary>FourierFT's positions and VeRA's projections are regenerated from seeds with LibTorch's CPU generator; these are
/// PyTorch's well-known first draws after torch.manual_seed(0), so the stream is PyTorch's.</summary>
public sealed class GeneratorParityTests
{
    [Fact]
    public void A_seeded_cpu_generator_gives_pytorchs_first_draws()
    {
        // torch.manual_seed(0); torch.rand(3) -> tensor([0.4963, 0.7682, 0.0885])
        var u = torch.rand(3, generator: new Generator(0)).data<float>().ToArray();
        Assert.Equal([0.4963, 0.7682, 0.0885], u.Select(v => Math.Round(v, 4)));
        // torch.manual_seed(0); torch.randn(3) -> tensor([1.5410, -0.2934, -2.1788])
        var n = torch.randn(3, generator: new Generator(0)).data<float>().ToArray();
        Assert.Equal([1.5410, -0.2934, -2.1788], n.Select(v => Math.Round(v, 4)));
    }
}
