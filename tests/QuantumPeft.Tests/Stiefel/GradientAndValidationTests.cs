using QuantumPeft.Stiefel;
using TorchSharp;
using static TorchSharp.torch;
using static QuantumPeft.Tests.Stiefel.StiefelTestKit;

namespace QuantumPeft.Tests.Stiefel;

public class GradientAndValidationTests
{
    public static IEnumerable<object[]> GradientCases()
    {
        foreach (var kind in StiefelMaps.All) yield return new object[] { kind, 6, 2, "auto" };
        yield return new object[] { StiefelMapKind.Pauli, 8, 3, "auto" };    // qubits
        yield return new object[] { StiefelMapKind.Pauli, 12, 3, "auto" };   // qudits 2, 2, 3
        yield return new object[] { StiefelMapKind.Pauli, 11, 3, "auto" };   // block split 8 + 3
        yield return new object[] { StiefelMapKind.Pauli, 9, 4, "block" };   // block split with N2 = 1 < K
    }

    [Theory]
    [MemberData(nameof(GradientCases))]
    public void Gradient_matches_central_differences_in_float64(StiefelMapKind kind, int n, int k, string nonPow2)
    {
        using var scope = NewDisposeScope();
        using var map = StiefelMaps.Create(n, k, Options(kind, 2, nonPow2), seed: 3);
        Fill(map, kind == StiefelMapKind.Pauli || kind == StiefelMapKind.Givens ? 2.0 : 0.5, seed: 9);
        map.to(ScalarType.Float64);
        var random = new Random(5);
        var weights = tensor(Enumerable.Range(0, n * k).Select(_ => random.NextDouble() - 0.5).ToArray(), new long[] { n, k }, ScalarType.Float64);
        Tensor Loss() => (map.Compute() * weights).sum();

        Loss().backward();
        const double eps = 1e-6;
        double worst = 0;
        foreach (var p in map.parameters())
        {
            var grad = p.grad!.data<double>().ToArray();
            for (long i = 0; i < p.numel(); i++)
            {
                double plus, minus;
                using (no_grad())
                {
                    var flat = p.view(-1);
                    double old = flat[i].item<double>();
                    flat[i] = old + eps; plus = Loss().item<double>();
                    flat[i] = old - eps; minus = Loss().item<double>();
                    flat[i] = old;
                }
                worst = Math.Max(worst, Math.Abs((plus - minus) / (2 * eps) - grad[i]));
            }
        }
        Assert.True(worst < 1e-6, $"{kind} N={n}: max |autograd - finite difference| = {worst:E2}");
        Assert.True(map.parameters().Any(p => p.grad!.abs().max().item<double>() > 1e-3));
    }

    public static IEnumerable<object[]> BadArguments()
    {
        var ok = new StiefelMapOptions();
        yield return new object[] { 1, 1, ok, "n" };
        yield return new object[] { 8, 0, ok, "k" };
        yield return new object[] { 8, 9, ok, "k" };
        yield return new object[] { 8, 2, ok with { Layers = -1 }, "Layers" };
        yield return new object[] { 8, 2, ok with { Kind = StiefelMapKind.Taylor, TaylorOrder = 0 }, "TaylorOrder" };
        yield return new object[] { 12, 2, ok with { NonPowerOfTwo = "pad" }, "NonPowerOfTwo" };
        yield return new object[] { 8, 2, ok with { Entangler = "cnot" }, "Entangler" };
        yield return new object[] { 8, 2, ok with { GateOrder = "random" }, "GateOrder" };
        yield return new object[] { 8, 2, ok with { Init = "normal" }, "Init" };
        yield return new object[] { 8, 2, ok with { InitScale = double.NaN }, "InitScale" };
    }

    [Theory]
    [MemberData(nameof(BadArguments))]
    public void Bad_arguments_throw_naming_the_argument(int n, int k, StiefelMapOptions options, string param)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => StiefelMaps.Create(n, k, options));
        Assert.Equal(param, e.ParamName);
        Assert.Contains(param, e.Message);
        var e2 = Assert.ThrowsAny<ArgumentException>(() => StiefelMaps.CountParameters(n, k, options));
        Assert.Equal(param, e2.ParamName);
    }

    [Fact]
    public void Names_round_trip_and_unknown_names_list_the_valid_ones()
    {
        foreach (var kind in StiefelMaps.All) Assert.Equal(kind, StiefelMaps.Parse(StiefelMaps.Name(kind)));
        Assert.Equal(StiefelMapKind.MatrixExp, StiefelMaps.Parse("Matrix-Exp"));
        var e = Assert.Throws<ArgumentException>(() => StiefelMaps.Parse("qr"));
        Assert.Contains("pauli, taylor, matrix_exp, cayley, householder, givens", e.Message);
    }

    [Fact]
    public void Taylor_bound_chooses_more_halvings_for_larger_norms()
    {
        Assert.Equal(0, TaylorMap.Squarings(1e-3, 6, 1e-7));
        Assert.True(TaylorMap.Squarings(3, 6, 1e-7) > TaylorMap.Squarings(0.5, 6, 1e-7));
        Assert.True(TaylorMap.ErrorBound(3, 6, TaylorMap.Squarings(3, 6, 1e-7)) <= 1e-7);
    }
}
