using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using static TorchSharp.torch;
using static QuantumPeft.Tests.Stiefel.StiefelTestKit;
using static QuantumPeft.Stiefel.StiefelBenchmark;

namespace QuantumPeft.Tests.Stiefel;

/// <summary>The accuracy-study options of the Pauli circuit: "period" init, the "s2d" layout, full SO(2^g) local rotations.</summary>
public class StiefelOptionTests
{
    static StiefelMapOptions Pauli(int layers, string gateOrder, int g, string nonPow2 = "auto", string init = "uniform") =>
        new() { Kind = StiefelMapKind.Pauli, Layers = layers, GateOrder = gateOrder, LocalQubits = g, NonPowerOfTwo = nonPow2, Init = init };

    static readonly string[] Layouts = ["alternating", "full", "s2d"];

    public static IEnumerable<object[]> OracleCases()
    {
        // Qubits (8, 16, 32) and a qutrit on top (12, 24, 48); g = 3 does not divide 4 or 5 qubits (a smaller last qudit).
        var ks = new Dictionary<int, int[]> { [8] = [1, 3], [16] = [4, 16], [32] = [5], [12] = [2, 12], [24] = [7], [48] = [4, 9] };
        foreach (var (n, kList) in ks)
        foreach (var k in kList)
        foreach (var layout in Layouts)
        foreach (var g in new[] { 1, 2, 3 })
            yield return new object[] { n, k, (n + k + g) % 3 + 1, layout, g };   // L in 1..3, varied across cases
        foreach (var layout in Layouts)
        {
            yield return new object[] { 384, 8, 1, layout, 3 };   // MiniLM's width at the main job's K
            yield return new object[] { 64, 4, 0, layout, 2 };
        }
    }

    [Theory]
    [MemberData(nameof(OracleCases))]
    public void Circuit_equals_dense_oracle_and_is_orthonormal(int n, int k, int layers, string layout, int g)
    {
        using var scope = NewDisposeScope();
        using var map = (PauliCircuitMap)StiefelMaps.Create(n, k, Pauli(layers, layout, g), seed: 1);
        Fill(map, 2 * Math.PI, seed: n * 31 + k * 7 + g);
        map.to(ScalarType.Float64);
        var theta = map.parameters().Single().data<double>().ToArray();
        using var _ = no_grad();
        var fast = map.Compute();
        var dense = PauliOracleTests.Dense(map.Dimensions.ToArray(), layers, layout, "cz", theta, k, fullRotations: g > 1);
        double diff = (fast - dense).abs().max().item<double>();
        Assert.True(diff <= 1e-10, $"N={n} K={k} L={layers} {layout} g={g}: max |fast - dense| = {diff:E2}");
        Assert.True(OrthError(fast) <= 1e-12, $"float64 orth error {OrthError(fast):E2}");
        Assert.True(dense.abs().max().item<double>() > 0.05);

        map.to(ScalarType.Float32);
        var u32 = map.Compute();
        Assert.Equal(ScalarType.Float32, u32.dtype);
        Assert.True(OrthError(u32) <= 1e-5, $"float32 orth error {OrthError(u32):E2}");
    }

    [Fact]
    public void Without_entangler_s2d_and_full_rotations_still_match_the_oracle()
    {
        using var scope = NewDisposeScope();
        var options = Pauli(2, "s2d", 2) with { Entangler = "none" };
        using var map = (PauliCircuitMap)StiefelMaps.Create(48, 5, options, seed: 4);
        Fill(map, 2 * Math.PI, seed: 3);
        map.to(ScalarType.Float64);
        using var _ = no_grad();
        var dense = PauliOracleTests.Dense(map.Dimensions.ToArray(), 2, "s2d", "none", map.parameters().Single().data<double>().ToArray(), 5, true);
        Assert.True((map.Compute() - dense).abs().max().item<double>() <= 1e-10);
    }

    [Theory]
    [InlineData(12)]
    [InlineData(24)]
    [InlineData(48)]
    [InlineData(1000)]
    public void Block_split_with_each_option_is_the_split_of_two_oracle_circuits(int n)
    {
        foreach (var layout in Layouts)
        foreach (var g in new[] { 1, 2, 3 })
        foreach (var k in new[] { 3, n == 12 ? 6 : 9 })
        {
            using var scope = NewDisposeScope();
            using var map = StiefelMaps.Create(n, k, Pauli(2, layout, g, "block"), seed: 2);
            Assert.IsType<BlockSplitMap>(map);
            Fill(map, 2 * Math.PI, seed: n + k + g);
            map.to(ScalarType.Float64);
            using var _ = no_grad();
            var u = map.Compute();
            Assert.True(OrthError(u) <= 1e-12, $"N={n} K={k} {layout} g={g}: {OrthError(u):E2}");
            Assert.Equal(TrainableCount(map), map.ParameterCount);
            Assert.Equal(map.ParameterCount, StiefelMaps.CountParameters(n, k, Pauli(2, layout, g, "block")));
            var (n1, n2, a, b, m) = BlockSplitMap.Split(n, k);
            var children = map.named_children().ToDictionary(c => c.name, c => c.module);
            var top = (PauliCircuitMap)children["top"];
            if (children["bottom"] is not PauliCircuitMap bottom) continue;   // 1000: the bottom splits again; orthonormality above
            Assert.All(top.Dimensions, d => Assert.True(d <= 1 << g));
            Tensor Oracle(PauliCircuitMap c, int cols) => PauliOracleTests.Dense(c.Dimensions.ToArray(), 2, layout, "cz",
                c.parameters().Single().data<double>().ToArray(), cols, g > 1);
            var u1 = Oracle(top, a);
            var u2 = Oracle(bottom, b);
            var phi = map.named_parameters().Single(p => p.name == "phi").parameter;
            var expected = zeros(n, k, dtype: ScalarType.Float64);
            expected[TensorIndex.Slice(0, n1), TensorIndex.Slice(0, m)] = u1.narrow(1, 0, m) * phi.cos();
            expected[TensorIndex.Slice(n1, n), TensorIndex.Slice(0, m)] = u2.narrow(1, 0, m) * phi.sin();
            if (a > m) expected[TensorIndex.Slice(0, n1), TensorIndex.Slice(m, a)] = u1.narrow(1, m, a - m);
            if (b > m) expected[TensorIndex.Slice(n1, n), TensorIndex.Slice(a, k)] = u2.narrow(1, m, b - m);
            double diff = (u - expected).abs().max().item<double>();
            Assert.True(diff <= 1e-10, $"N={n} K={k} {layout} g={g}: max |split - oracle| = {diff:E2}");
        }
    }

    [Fact]
    public void Qudit_dimensions_group_g_qubits_and_keep_the_odd_factor()
    {
        Assert.Equal(new[] { 8, 8, 2, 3 }, PauliMaps.Dimensions(384, "auto", 3));
        Assert.Equal(new[] { 4, 4, 4, 2, 3 }, PauliMaps.Dimensions(384, "auto", 2));
        Assert.Equal(new[] { 4, 4, 4, 4 }, PauliMaps.Dimensions(256, "auto", 2));
        Assert.Equal(new[] { 8, 2 }, PauliMaps.Dimensions(16, "auto", 3));
        Assert.Equal(new[] { 2, 2, 2, 2 }, PauliMaps.Dimensions(16, "auto", 1));
        Assert.Null(PauliMaps.Dimensions(24, "block", 2));
        Assert.Equal(new[] { 4, 2, 5, 5, 5 }, PauliMaps.Dimensions(1000, "qudit", 2));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(16)]
    public void Givens_rounds_hold_every_level_pair_once_in_rounds_of_disjoint_pairs(int d)
    {
        var rounds = PauliCircuitMap.GivensRounds(d);
        var pairs = rounds.SelectMany(r => r).ToList();
        Assert.Equal(d * (d - 1) / 2, pairs.Count);
        Assert.Equal(pairs.Count, pairs.Distinct().Count());
        Assert.All(pairs, p => Assert.True(p.A < p.B && p.B < d));
        foreach (var round in rounds)
        {
            var levels = round.SelectMany(p => new[] { p.A, p.B }).ToList();
            Assert.Equal(levels.Count, levels.Distinct().Count());
        }
        // Each pair touches a level already reached from level 0, so no angle of the opening layer is dead (the gradient test checks it).
        var reached = new HashSet<int> { 0 };
        foreach (var round in rounds)
        {
            Assert.All(round, p => Assert.True(reached.Contains(p.A) || reached.Contains(p.B), $"d={d}: pair {p} acts on unreached levels"));
            foreach (var (a, b) in round) { reached.Add(a); reached.Add(b); }
        }
        Assert.True(rounds.Count <= 2 * d, $"d={d}: {rounds.Count} rounds");
    }

    public static IEnumerable<object[]> CountCases()
    {
        foreach (var n in new[] { 2, 8, 12, 16, 24, 32, 48, 96, 384, 768, 1000, 1009, 1024 })
        foreach (var layout in Layouts)
        foreach (var g in new[] { 1, 2, 3, 4 })
            yield return new object[] { n, layout, g };
    }

    [Theory]
    [MemberData(nameof(CountCases))]
    public void Parameter_count_equals_the_formula_and_the_plan(int n, string layout, int g)
    {
        foreach (var nonPow2 in new[] { "auto", "block" })
        foreach (var k in new[] { 1, 4, 8 }.Where(k => k <= n))
        foreach (var layers in new[] { 0, 1, 3 })
        {
            var options = Pauli(layers, layout, g, nonPow2);
            using var map = StiefelMaps.Create(n, k, options, seed: 1);   // the constructor also checks the plan's angle use against the formula
            Assert.Equal(TrainableCount(map), map.ParameterCount);
            Assert.Equal(map.ParameterCount, StiefelMaps.CountParameters(n, k, options));
            var config = new QuantumPeftConfig { TargetModules = ModuleSelector.Parse("q"), R = k, StiefelU = options, StiefelV = options };
            Assert.Equal(2 * map.ParameterCount + k, config.CountParameters(n, n));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void S2d_count_is_the_papers_formula_and_pennylanes(int layers)
    {
        foreach (var n in new[] { 2, 8, 16, 1024, 4096 })
        {
            long qubits = (long)Math.Log2(n);
            long count = StiefelMaps.CountParameters(n, 2, Pauli(layers, "s2d", 1));
            Assert.Equal((2 * layers + 1) * qubits - 2 * layers, count);
            // PennyLane's shapes: initial_layer_weights (M,), weights (L, M - 1, 2).
            Assert.Equal(qubits + layers * (qubits - 1) * 2, count);
        }
    }

    [Theory]
    [InlineData(256, 2, 1, 6 * (3 * 4 - 2))]     // 4 qudits of 4 levels, a(4) = 6: a ((2L+1) m - 2L)
    [InlineData(512, 3, 2, 28 * (5 * 3 - 4))]    // 3 qudits of 8 levels, a(8) = 28
    [InlineData(4096, 4, 1, 120 * (3 * 3 - 2))]  // 3 qudits of 16 levels, a(16) = 120
    // 384 = [8, 8, 2, 3], g = 3: A = 28 + 28 + 1 + 3 = 60; alternating repeat 2A - a(8) - a(3) = 89.
    [InlineData(384, 3, 1, 60 + 89)]
    public void Full_rotation_count_is_the_closed_form(int n, int g, int layers, long expected)
    {
        Assert.Equal(expected, StiefelMaps.CountParameters(n, 4, Pauli(layers, "alternating", g)));
        using var map = StiefelMaps.Create(n, 4, Pauli(layers, "alternating", g), seed: 1);
        Assert.Equal(expected, TrainableCount(map));
    }

    public static IEnumerable<object[]> GradientCases()
    {
        foreach (var layout in Layouts)
        foreach (var g in new[] { 1, 2, 3 })
        {
            yield return new object[] { 384, 8, 2, layout, g, "auto" };
            yield return new object[] { 512, 2, 1, layout, g, "auto" };    // g = 3: three 8-level qudits, two above the low one
            yield return new object[] { 24, 5, 3, layout, g, "block" };
        }
    }

    [Theory]
    [MemberData(nameof(GradientCases))]
    public void Every_angle_gets_a_gradient_at_a_period_init_point(int n, int k, int layers, string layout, int g, string nonPow2)
    {
        using var scope = NewDisposeScope();
        using var map = StiefelMaps.Create(n, k, Pauli(layers, layout, g, nonPow2, init: "period"), seed: n + g);
        map.to(ScalarType.Float64);
        var weights = randn(n, k, dtype: ScalarType.Float64, generator: new Generator(5));
        (map.Compute() * weights).sum().backward();
        foreach (var (name, p) in map.named_parameters())
        {
            var grad = p.grad!.abs();
            long dead = grad.le(1e-9).sum().item<long>();
            Assert.True(dead == 0, $"N={n} K={k} L={layers} {layout} g={g}: {dead} of {p.numel()} angles in {name} have no gradient (min {grad.min().item<double>():E2})");
        }
    }

    [Theory]
    [InlineData("s2d", 1, 8, 3)]
    [InlineData("s2d", 2, 12, 3)]
    [InlineData("alternating", 2, 16, 2)]
    [InlineData("full", 2, 24, 4)]
    [InlineData("s2d", 3, 11, 3)]   // block split 8 + 3
    public void Gradient_matches_central_differences_in_float64(string layout, int g, int n, int k)
    {
        using var scope = NewDisposeScope();
        using var map = StiefelMaps.Create(n, k, Pauli(2, layout, g), seed: 3);
        Fill(map, 2 * Math.PI, seed: 9);
        map.to(ScalarType.Float64);
        var weights = randn(n, k, dtype: ScalarType.Float64, generator: new Generator(7));
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
        Assert.True(worst < 1e-6, $"{layout} g={g} N={n}: max |autograd - finite difference| = {worst:E2}");
    }

    [Fact]
    public void Batched_evaluation_equals_each_map_alone_for_every_option()
    {
        var maps = new List<StiefelMap>();
        int seed = 0;
        foreach (var layout in Layouts)
        foreach (var g in new[] { 1, 2, 3 })
            for (int i = 0; i < 2; i++)
                foreach (var n in new[] { 384, 256 })
                {
                    var m = StiefelMaps.Create(n, 8, Pauli(2, layout, g, init: "period"), seed: ++seed);
                    maps.Add(m);
                }
        var batch = new PauliCircuitBatch();
        foreach (var m in maps) batch.Add(m);
        Assert.Equal(Layouts.Length * 3 * 2, batch.GroupCount);
        var weights = maps.Select((m, i) => randn(m.N, m.K, generator: new Generator((ulong)(10 + i)))).ToList();
        Tensor Loss(Func<StiefelMap, Tensor> compute) => stack(maps.Select((m, i) => (compute(m) * weights[i]).sum()).ToArray()).sum();

        var batchedValues = maps.Select(m => batch.Compute(m).detach().clone()).ToList();
        foreach (var m in maps) m.zero_grad();
        Loss(batch.Compute).backward();
        var batchedGrads = maps.Select(m => m.parameters().Single().grad!.clone()).ToList();
        foreach (var m in maps) m.zero_grad();
        Loss(m => m.Compute()).backward();
        for (int i = 0; i < maps.Count; i++)
        {
            using var _ = no_grad();
            var alone = maps[i].Compute();
            Assert.True((batchedValues[i] - alone).abs().max().item<float>() < 1e-5, $"map {i}: values");
            var grad = maps[i].parameters().Single().grad!;
            Assert.True(grad.abs().max().item<float>() > 1e-3);
            Assert.True((batchedGrads[i] - grad).abs().max().item<float>() < 1e-4, $"map {i}: gradients");
        }
    }

    [Fact]
    public void Period_init_spreads_angles_over_one_full_period_and_is_seeded()
    {
        using var a = StiefelMaps.Create(1024, 4, Pauli(8, "alternating", 1, init: "period"), seed: 5);
        using var b = StiefelMaps.Create(1024, 4, Pauli(8, "alternating", 1, init: "period"), seed: 5);
        var t = a.parameters().Single();
        Assert.True(t.eq(b.parameters().Single()).all().item<bool>());
        Assert.True(t.max().item<float>() < 2 * Math.PI && t.min().item<float>() >= -2 * Math.PI - 1e-6);
        Assert.True(t.max().item<float>() > Math.PI && t.min().item<float>() < -Math.PI, "spread over the period, not near 0");
        // Uniform: the mean |t| of 170 draws from U[-2 pi, 2 pi) is pi (sd about 0.14).
        Assert.InRange(t.abs().mean().item<float>(), Math.PI - 0.6, Math.PI + 0.6);
        using var givens = StiefelMaps.Create(16, 2, new StiefelMapOptions { Kind = StiefelMapKind.Givens, Init = "period" }, seed: 1);
        Assert.True(givens.parameters().Single().abs().max().item<float>() > 1.0);
        var e = Assert.Throws<ArgumentException>(() => StiefelMaps.Create(16, 2, new StiefelMapOptions { Kind = StiefelMapKind.Taylor, Init = "period" }));
        Assert.Equal("Init", e.ParamName);
        Assert.Contains("taylor", e.Message);
    }

    [Fact]
    public void Defaults_are_unchanged()
    {
        var o = new StiefelMapOptions();
        Assert.Equal(("alternating", 1, "uniform"), (o.GateOrder, o.LocalQubits, o.Init));
        using var map = (PauliCircuitMap)StiefelMaps.Create(384, 4, o, seed: 1);
        Assert.False(map.FullRotations);
        Assert.Equal(new[] { 2, 2, 2, 2, 2, 2, 2, 3 }, map.Dimensions);
        Assert.Equal(24, map.ParameterCount);   // 7 qubits + a qutrit (2 angles): A = 9, repeat 2A - 1 - 2 = 15
    }

    static QuantumPeftConfig Config(StiefelMapOptions u, StiefelMapOptions v) =>
        new() { TargetModules = ModuleSelector.Parse("query"), R = 4, StiefelU = u, StiefelV = v };

    [Fact]
    public void Each_option_round_trips_through_adapter_config_json()
    {
        foreach (var layout in Layouts)
        foreach (var g in new[] { 1, 3 })
        foreach (var init in StiefelMaps.Inits)
        {
            var config = Config(Pauli(4, layout, g, init: init), Pauli(2, "alternating", 2, "block"));
            config.Validate();
            var json = config.ToJson();
            Assert.Contains($"\"gate_order\": \"{layout}\"", json);
            Assert.Contains($"\"local_qubits\": {g}", json);
            Assert.Contains($"\"init\": \"{init}\"", json);
            var warnings = new List<string>();
            var back = (QuantumPeftConfig)PeftConfig.FromJson(json, warnings);
            Assert.Empty(warnings);
            back.Validate();
            Assert.Equal(config.StiefelU, back.StiefelU);
            Assert.Equal(config.StiefelV, back.StiefelV);
            Assert.Equal(config.CountParameters(384, 768), back.CountParameters(384, 768));
        }
        var shorthand = new QuantumPeftConfig { TargetModules = ModuleSelector.Parse("query"), GateOrder = "s2d", LocalQubits = 2, InitAngles = "period" };
        Assert.Equal(Pauli(1, "s2d", 2, init: "period"), shorthand.StiefelU);
        Assert.Equal(shorthand.StiefelU, shorthand.StiefelV);
    }

    [Fact]
    public void A_file_from_before_the_options_reads_as_the_old_circuit()
    {
        var json = Config(new StiefelMapOptions(), new StiefelMapOptions()).ToJson()
            .Replace("\"local_qubits\": 1,", "", StringComparison.Ordinal);
        Assert.DoesNotContain("local_qubits", json);
        var back = (QuantumPeftConfig)PeftConfig.FromJson(json);
        Assert.Equal(new StiefelMapOptions(), back.StiefelU);
    }

    [Theory]
    [InlineData("gate_order", "\"zigzag\"", "stiefel_u.gate_order", "alternating, full, s2d")]
    [InlineData("init", "\"normal\"", "stiefel_u.init", "uniform, zeros, period")]
    [InlineData("local_qubits", "0", "stiefel_u.local_qubits", "1..6")]
    [InlineData("local_qubits", "9", "stiefel_u.local_qubits", "1..6")]
    public void A_wrong_option_in_adapter_config_names_the_field_and_the_choices(string key, string value, string field, string choices)
    {
        var o = System.Text.Json.Nodes.JsonNode.Parse(Config(new StiefelMapOptions(), new StiefelMapOptions()).ToJson())!.AsObject();
        o["stiefel_u"]![key] = System.Text.Json.Nodes.JsonNode.Parse(value);
        var config = (QuantumPeftConfig)PeftConfig.FromJson(o.ToJsonString());
        var e = Assert.ThrowsAny<ArgumentException>(config.Validate);
        Assert.StartsWith(field + ":", e.Message);
        Assert.Contains(choices, e.Message);
        Assert.DoesNotContain("Actual value", e.Message);
    }

    [Theory]
    [InlineData("GateOrder", "alternating, full, s2d")]
    [InlineData("LocalQubits", "1..6")]
    [InlineData("Init", "uniform, zeros, period")]
    public void A_wrong_option_on_the_map_throws_naming_it(string param, string choices)
    {
        var o = param switch
        {
            "GateOrder" => new StiefelMapOptions { GateOrder = "S2D" },
            "LocalQubits" => new StiefelMapOptions { LocalQubits = 7 },
            _ => new StiefelMapOptions { Init = "periodic" },
        };
        var e = Assert.ThrowsAny<ArgumentException>(() => StiefelMaps.Create(16, 2, o));
        Assert.Equal(param, e.ParamName);
        Assert.Contains(choices, e.Message);
        Assert.Equal(param, Assert.ThrowsAny<ArgumentException>(() => StiefelMaps.CountParameters(16, 2, o)).ParamName);
    }

    [Fact]
    public void Adapters_with_the_options_count_batch_save_load_and_quantize()
    {
        var dir = Path.Combine(Path.GetTempPath(), "qpeft-options-" + Guid.NewGuid().ToString("N"));
        try
        {
            var config = QuantumPeft.Tests.Tuners.InjectionTests.Quantum("query", "value", "fc1", "fc2", "dense") with
            {
                InitLambda = "random",
                StiefelU = Pauli(2, "s2d", 3, init: "period"),
                StiefelV = Pauli(1, "full", 2, init: "period"),
            };
            var model = QuantumPeft.Tests.Tuners.TinyModel.Create(3);
            var peft = PeftModel.Inject(model, config);
            var branches = peft.AdaptedLayers.Select(l => (QuantumBranch)l.Layer["default"]).ToList();
            Assert.Equal(branches.Sum(b => config.CountParameters(b.InFeatures, b.OutFeatures)), peft.Report().AdapterParams);
            Assert.All(branches, b => Assert.True(((PauliCircuitMap)b.MapU).FullRotations && ((PauliCircuitMap)b.MapV).FullRotations));
            using (no_grad())
                foreach (var b in branches)
                {
                    var (u, v, _) = b.Factors();
                    Assert.True(OrthError(u) <= 1e-5 && OrthError(v) <= 1e-5);
                }

            var x = QuantumPeft.Tests.Tuners.TinyModel.Input();
            var parameters = peft.NamedAdapterParameters().Select(p => p.Parameter).ToList();
            (Tensor Y, List<Tensor> Grads) Run(bool batched)
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
            Assert.True(QuantumPeft.Tests.Tuners.InjectionTests.MaxDiff(yb, ya) < 1e-5);
            Assert.Contains(ga, g => g.abs().max().item<float>() > 1e-3);
            for (int i = 0; i < parameters.Count; i++) Assert.True(QuantumPeft.Tests.Tuners.InjectionTests.MaxDiff(gb[i], ga[i]) < 1e-4, $"parameter {i}");

            peft.Save(dir);
            var fresh = QuantumPeft.Tests.Tuners.TinyModel.Create(3);
            var warnings = new List<string>();
            var loaded = PeftModel.Load(fresh, dir, warnings: warnings);
            Assert.Empty(warnings);
            Assert.Equal(config.StiefelU, ((QuantumPeftConfig)loaded.ActiveConfig).StiefelU);
            Assert.Equal(config.StiefelV, ((QuantumPeftConfig)loaded.ActiveConfig).StiefelV);
            using (no_grad()) Assert.True(QuantumPeft.Tests.Tuners.InjectionTests.MaxDiff(ya, fresh.forward(x)) < 1e-6);

            // 8-bit angles over the 4 pi period: the circuit stays exactly orthonormal and close to the float one.
            loaded.Quantize(8, 8);
            using (no_grad())
            {
                foreach (var b in loaded.AdaptedLayers.Select(l => (QuantumBranch)l.Layer["default"]))
                {
                    var (u, v, _) = b.Factors();
                    Assert.True(OrthError(u) <= 1e-5 && OrthError(v) <= 1e-5);
                }
                double drift = QuantumPeft.Tests.Tuners.InjectionTests.MaxDiff(ya, fresh.forward(x));
                Assert.True(drift > 0 && drift < 0.2 * ya.abs().max().item<float>(), $"quantization drift {drift:E2}");
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Map_options_set_by_key_reach_both_sides_or_one()
    {
        var o = System.Text.Json.Nodes.JsonNode.Parse(Config(new StiefelMapOptions(), new StiefelMapOptions()).ToJson())!.AsObject();
        Assert.True(QuantumPeftConfig.SetMapOption(o, "init", "period"));
        Assert.True(QuantumPeftConfig.SetMapOption(o, "gate_order", "s2d"));
        Assert.True(QuantumPeftConfig.SetMapOption(o, "stiefel_v.local_qubits", 3));
        Assert.False(QuantumPeftConfig.SetMapOption(o, "alpha", 3));
        Assert.False(QuantumPeftConfig.SetMapOption(o, "stiefel_w.init", "zeros"));
        Assert.Contains("local_qubits", QuantumPeftConfig.MapOptionKeys);
        var config = (QuantumPeftConfig)PeftConfig.FromJson(o.ToJsonString());
        config.Validate();
        Assert.Equal(new StiefelMapOptions { Init = "period", GateOrder = "s2d" }, config.StiefelU);
        Assert.Equal(new StiefelMapOptions { Init = "period", GateOrder = "s2d", LocalQubits = 3 }, config.StiefelV);
        QuantumPeftConfig.SetMapOption(o, "gate_order", "zigzag");
        var e = Assert.ThrowsAny<ArgumentException>(((QuantumPeftConfig)PeftConfig.FromJson(o.ToJsonString())).Validate);
        Assert.Contains("stiefel_u.gate_order", e.Message);
    }
}
