using QuantumPeft.Stiefel;
using TorchSharp;
using static TorchSharp.torch;
using static QuantumPeft.Tests.Stiefel.StiefelTestKit;

namespace QuantumPeft.Tests.Stiefel;

public class StiefelMapTests
{
    public static IEnumerable<object[]> AllKinds() => StiefelMaps.All.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(AllKinds))]
    public void Parameter_count_equals_formula(StiefelMapKind kind)
    {
        int[] ns = kind is StiefelMapKind.MatrixExp or StiefelMapKind.Cayley
            ? [2, 3, 8, 12, 31, 96]
            : [2, 3, 8, 12, 31, 96, 384, 768, 1000, 1024];
        foreach (var n in ns)
        foreach (var k in new[] { 1, 2, 4, 7 }.Where(k => k <= n))
        foreach (var layers in new[] { 0, 1, 3 })
        {
            var options = Options(kind, layers);
            using var map = StiefelMaps.Create(n, k, options, seed: 1);
            long measured = TrainableCount(map);
            Assert.True(measured == map.ParameterCount, $"{kind} N={n} K={k} L={layers}: measured {measured}, formula {map.ParameterCount}");
            Assert.Equal(measured, StiefelMaps.CountParameters(n, k, options));
            Assert.Equal(StiefelMaps.Name(kind), map.Kind);
        }
    }

    [Theory]
    [InlineData(2, 0, 1)]
    [InlineData(1024, 1, 28)]   // the spec's example
    [InlineData(1024, 0, 10)]
    [InlineData(16, 3, 22)]
    [InlineData(4096, 2, 56)]
    public void Pauli_count_is_the_papers_formula(int n, int layers, long expected)
    {
        Assert.Equal(expected, StiefelMaps.CountParameters(n, 4 > n ? n : 4, Options(StiefelMapKind.Pauli, layers)));
        Assert.Equal((2L * layers + 1) * (long)Math.Log2(n) - 2 * layers, expected);
    }

    [Fact]
    public void Non_power_of_two_counts_stay_logarithmic()
    {
        var o = Options(StiefelMapKind.Pauli, 1);
        // 768 = 2^8 * 3: 8 qubits + one qutrit (2 angles): 10 + L (8 + 9) = 27.
        Assert.Equal(27, StiefelMaps.CountParameters(768, 4, o));
        Assert.Equal(new[] { 2, 2, 2, 2, 2, 2, 2, 2, 3 }, PauliMaps.Dimensions(768, "auto"));
        Assert.Equal(new[] { 2, 2, 2, 5, 5, 5 }, PauliMaps.Dimensions(1000, "qudit"));
        Assert.Null(PauliMaps.Dimensions(1000, "auto"));
        Assert.Null(PauliMaps.Dimensions(1009, "auto"));
        // Qudit circuits: (2L+1) log2 N - 2L plus one extra angle per extra level of the odd qudit.
        foreach (var n in new[] { 384, 768, 3072, 14336 })
            Assert.True(StiefelMaps.CountParameters(n, 4, o) <= 3 * Math.Log2(n) + 8, $"N={n}");
        // Block split: at most one circuit per set bit of N, each O(L log N), plus K mixing angles per split.
        foreach (var n in new[] { 1000, 1009 })
        {
            int blocks = System.Numerics.BitOperations.PopCount((uint)n);
            Assert.True(StiefelMaps.CountParameters(n, 4, o) <= blocks * (3 * Math.Log2(n) + 4), $"N={n}");
        }
    }

    public static IEnumerable<object[]> OrthCases()
    {
        foreach (var n in new[] { 384, 768, 1000, 3072, 14336, 64, 4096 })
        foreach (var kind in StiefelMaps.All)
        {
            if (kind is StiefelMapKind.MatrixExp or StiefelMapKind.Cayley && n > 768) continue;   // O(N^3): N <= 768 only
            yield return new object[] { kind, n, "auto" };
        }
        foreach (var n in new[] { 384, 768, 1000, 3072, 14336, 1009 })
        {
            yield return new object[] { StiefelMapKind.Pauli, n, "qudit" };
            yield return new object[] { StiefelMapKind.Pauli, n, "block" };
        }
    }

    [Theory]
    [MemberData(nameof(OrthCases))]
    public void Columns_are_orthonormal_in_float32(StiefelMapKind kind, int n, string nonPow2)
    {
        using var scope = NewDisposeScope();
        const int k = 4;
        using var map = StiefelMaps.Create(n, k, Options(kind, 2, nonPow2), seed: 7);
        Fill(map, RandomScale(kind, n, k), seed: n);
        using var _ = no_grad();
        var u = map.Compute();
        Assert.Equal(new long[] { n, k }, u.shape);
        Assert.Equal(ScalarType.Float32, u.dtype);
        double err = OrthError(u);
        double tol = kind == StiefelMapKind.Pauli ? 1e-5 : 1e-4;
        Assert.True(err <= tol, $"{kind}/{nonPow2} N={n}: max|U^T U - I| = {err:E2} > {tol:E0}");
        Assert.True(u.abs().max().item<float>() > 0.05f);   // not a degenerate all-zero output
    }

    [Theory]
    [InlineData(7, 7)]    // K = N: nothing left to mix
    [InlineData(9, 5)]    // N2 = 1 < K
    [InlineData(11, 6)]   // K > N2 = 3
    [InlineData(13, 13)]
    [InlineData(1000, 600)]  // K > N1 = 512
    public void Block_split_stays_orthonormal_when_K_exceeds_a_block(int n, int k)
    {
        using var scope = NewDisposeScope();
        using var map = StiefelMaps.Create(n, k, Options(StiefelMapKind.Pauli, 1, "block"), seed: 3);
        Fill(map, Math.PI, seed: 5);
        map.to(ScalarType.Float64);
        using var _ = no_grad();
        var u = map.Compute();
        Assert.Equal(new long[] { n, k }, u.shape);
        Assert.True(OrthError(u) < 1e-12, $"N={n} K={k}: {OrthError(u):E2}");
        Assert.Equal(TrainableCount(map), map.ParameterCount);
    }

    [Theory]
    [MemberData(nameof(AllKinds))]
    public void Works_after_moving_to_float64(StiefelMapKind kind)
    {
        using var scope = NewDisposeScope();
        using var map = StiefelMaps.Create(40, 3, Options(kind, 2), seed: 2);
        Fill(map, RandomScale(kind, 40, 3), seed: 4);
        map.to(ScalarType.Float64);
        Assert.All(map.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        var u = map.Compute();
        Assert.Equal(ScalarType.Float64, u.dtype);
        Assert.True(OrthError(u) < (kind == StiefelMapKind.Taylor ? 1e-12 : 1e-13), $"{kind}: {OrthError(u):E2}");
    }

    [Theory]
    [MemberData(nameof(AllKinds))]
    public void Seed_makes_initialisation_deterministic_and_zeros_init_gives_zero_parameters(StiefelMapKind kind)
    {
        using var scope = NewDisposeScope();
        using var a = StiefelMaps.Create(24, 3, Options(kind), seed: 11);
        using var b = StiefelMaps.Create(24, 3, Options(kind), seed: 11);
        using var c = StiefelMaps.Create(24, 3, Options(kind), seed: 12);
        var pa = a.parameters().Select(p => p.detach().clone()).ToList();
        var pb = b.parameters().ToList();
        var pc = c.parameters().ToList();
        Assert.All(pa.Zip(pb), t => Assert.True(t.First.eq(t.Second).all().item<bool>()));
        Assert.Contains(pa.Zip(pc), t => !t.First.eq(t.Second).all().item<bool>());
        Assert.All(pa, p => Assert.True(p.abs().max().item<float>() <= 0.02f + 1e-7f));
        using var z = StiefelMaps.Create(24, 3, Options(kind) with { Init = "zeros" }, seed: 11);
        Assert.All(z.parameters(), p => Assert.Equal(0f, p.abs().max().item<float>()));
    }
}
