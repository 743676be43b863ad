using QuantumPeft.Stiefel;
using QuantumPeft.Tests.Tuners;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Stiefel;

/// <summary>Batched circuit evaluation gives each map exactly its own matrix and gradient, and never a stale one.</summary>
public class PauliCircuitBatchTests
{
    static readonly StiefelMapOptions Pauli = new() { Kind = StiefelMapKind.Pauli, Layers = 1 };

    // MiniLM's shapes: 384 = 2^7 * 3 and 1536 = 2^9 * 3 (qubits plus a qutrit), and a pure qubit 256.
    static List<StiefelMap> Maps(int seed)
    {
        var maps = new List<StiefelMap>();
        for (int i = 0; i < 4; i++) maps.Add(StiefelMaps.Create(384, 4, Pauli, seed + i));
        for (int i = 0; i < 2; i++) maps.Add(StiefelMaps.Create(1536, 4, Pauli, seed + 10 + i));
        for (int i = 0; i < 2; i++) maps.Add(StiefelMaps.Create(256, 4, Pauli with { Layers = 2 }, seed + 20 + i));
        maps.Add(StiefelMaps.Create(256, 4, Pauli, seed + 30));   // alone in its shape
        foreach (var m in maps) StiefelTestKit.Fill(m, 1.5, seed + maps.IndexOf(m));
        return maps;
    }

    static PauliCircuitBatch Batch(IEnumerable<StiefelMap> maps)
    {
        var batch = new PauliCircuitBatch();
        foreach (var m in maps) batch.Add(m);
        return batch;
    }

    static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Fact]
    public void GroupsByShapeAndEqualsEachMapAlone()
    {
        var maps = Maps(1);
        var batch = Batch(maps);
        Assert.Equal(4, batch.GroupCount);
        using var _ = no_grad();
        foreach (var m in maps)
            Assert.True(MaxDiff(batch.Compute(m), m.Compute()) < 1e-6, $"N = {m.N}");
    }

    [Fact]
    public void GradientsEqualThoseOfSeparateEvaluation()
    {
        var maps = Maps(2);
        var batch = Batch(maps);
        var weights = maps.Select((m, i) => randn(m.N, m.K, generator: new Generator((ulong)(100 + i)))).ToList();

        Tensor Loss(Func<StiefelMap, Tensor> compute) =>
            stack(maps.Select((m, i) => (compute(m) * weights[i]).sum()).ToArray()).sum();

        Loss(batch.Compute).backward();
        var batched = maps.Select(m => m.parameters().Single().grad!.clone()).ToList();
        foreach (var m in maps) m.zero_grad();
        Loss(m => m.Compute()).backward();
        for (int i = 0; i < maps.Count; i++)
        {
            var alone = maps[i].parameters().Single().grad!;
            Assert.True(alone.abs().max().item<float>() > 1e-3);   // the comparison is not vacuous
            Assert.True(MaxDiff(batched[i], alone) < 1e-5, $"map {i}");
        }
    }

    [Fact]
    public void ChangedAnglesAreNeverServedStale()
    {
        var maps = Maps(3).Take(4).ToList();   // one group of four N = 384 circuits
        var batch = Batch(maps);
        using var _ = no_grad();
        var first = batch.Compute(maps[0]);          // evaluates all four
        maps[1].parameters().Single().add_(0.25);    // as an optimizer step between two reads would
        var second = batch.Compute(maps[1]);
        Assert.True(MaxDiff(second, maps[1].Compute()) < 1e-6);
        // A map read twice starts a new pass; its second result follows its new angles.
        maps[0].parameters().Single().mul_(-1);
        Assert.True(MaxDiff(batch.Compute(maps[0]), maps[0].Compute()) < 1e-6);
        Assert.True(MaxDiff(first, maps[0].Compute()) > 1e-3);
    }

    [Fact]
    public void ResultsFromNoGradOrADisposedScopeAreRecomputed()
    {
        var maps = Maps(4).Take(3).ToList();
        var batch = Batch(maps);
        using (no_grad()) batch.Compute(maps[0]);
        Assert.True(batch.Compute(maps[1]).requires_grad);   // the no_grad results are not reused with grad on
        using (NewDisposeScope()) batch.Compute(maps[0]);    // evaluates all three, then the scope frees them
        var after = batch.Compute(maps[2]);
        Assert.False(after.IsInvalid);
        Assert.True(MaxDiff(after, maps[2].Compute()) < 1e-6);
    }

    [Fact]
    public void QuantumAdapterForwardAndGradientsMatchUnbatched()
    {
        var model = TinyModel.Create(5);
        var config = InjectionTests.Quantum("query", "value", "fc1", "fc2", "dense") with { InitLambda = "random" };
        var peft = PeftModel.Inject(model, config);
        var branches = peft.AdaptedLayers.Select(l => (QuantumBranch)l.Layer["default"]).ToList();
        Assert.All(branches, b => Assert.NotNull(b.CircuitBatch));
        foreach (var b in branches) { StiefelTestKit.Fill(b.MapU, 1.0, 7); StiefelTestKit.Fill(b.MapV, 1.0, 8); }
        var x = TinyModel.Input();
        var parameters = peft.NamedAdapterParameters().Select(p => p.Parameter).ToList();

        (Tensor Output, List<Tensor> Grads) Run(bool batched)
        {
            PauliCircuitBatch.Enabled = batched;
            try
            {
                foreach (var p in parameters) p.grad?.zero_();
                var y = model.forward(x);
                y.square().sum().backward();
                return (y.detach().clone(), parameters.Select(p => p.grad!.clone()).ToList());
            }
            finally { PauliCircuitBatch.Enabled = true; }
        }

        var (yb, gb) = Run(true);
        var (ya, ga) = Run(false);
        Assert.True(MaxDiff(yb, ya) < 1e-5);
        for (int i = 0; i < parameters.Count; i++) Assert.True(MaxDiff(gb[i], ga[i]) < 1e-4, $"parameter {i}");
        // A second batched pass (no optimizer step) must not reuse the first pass's freed graph.
        var (yb2, _) = Run(true);
        Assert.True(MaxDiff(yb2, ya) < 1e-5);
    }
}
