using System.Text.Json;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.AdaLora;
using QuantumPeft.Tuners.FourierFT;
using QuantumPeft.Tuners.IA3;
using QuantumPeft.Tuners.LoKr;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Oft;
using QuantumPeft.Tuners.Quantum;
using QuantumPeft.Tuners.Vera;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantumPeft.Tests.Tuners;

/// <summary>A tiny CNN: 3 -> 24 (3x3, stride 2, padding 1), 24 -> 12 (1x1), 12 -> 18 (3x3, padding 2, dilation 2), pooled, a Linear and a head.</summary>
sealed class TinyCnn : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> stem;
    private readonly Module<Tensor, Tensor> mid;
    private readonly Module<Tensor, Tensor> body;
    private readonly Module<Tensor, Tensor> proj;
    private readonly Module<Tensor, Tensor> fc;

    public TinyCnn(int classes = 4) : base(nameof(TinyCnn))
    {
        stem = Conv2d(3, 24, 3, stride: 2, padding: 1);
        mid = Conv2d(24, 12, 1);
        body = Conv2d(12, 18, 3, padding: 2, dilation: 2);
        proj = Linear(18, 18);
        fc = Linear(18, classes);
        RegisterComponents();
    }

    public static TinyCnn Create(long seed = 5)
    {
        manual_seed(seed);
        return new TinyCnn();
    }

    public static Tensor Input(long seed = 9, int batch = 2) => randn([batch, 3, 8, 8], generator: new Generator((ulong)seed));

    public override Tensor forward(Tensor x)
    {
        var h = functional.relu(stem.forward(x));
        h = functional.relu(mid.forward(h));
        h = functional.relu(body.forward(h));
        h = h.mean([2, 3]);
        return fc.forward(h + functional.tanh(proj.forward(h)));
    }
}

/// <summary>LoRA, Quantum-PEFT and IA3 on Conv2d layers: peft's keys and formulas, merge / unmerge, files, export, counts, training, refusals.</summary>
public sealed class Conv2dAdapterTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-conv-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static readonly string[] Convs = ["stem", "mid", "body"];
    static readonly Dictionary<string, (int In, int Out, int K)> Geometry = new()
    {
        ["stem"] = (3, 24, 3), ["mid"] = (24, 12, 1), ["body"] = (12, 18, 3),
    };

    static double MaxDiff(Tensor a, Tensor b) => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();

    static LoraConfig Lora(bool randomB = false, string targets = "all-conv") => new()
    {
        R = 3, LoraAlpha = 6, TargetModules = ModuleSelector.Parse(targets),
        InitLoraWeights = JsonSerializer.SerializeToElement(!randomB),
    };

    static QuantumPeftConfig Quantum(bool random = false, string targets = "all-conv") => new()
    {
        R = 4, Alpha = 8, TargetModules = ModuleSelector.Parse(targets), InitLambda = random ? "random" : "zeros", Seed = 7,
        StiefelU = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1, InitScale = random ? 0.5 : 0.02 },
        StiefelV = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1, InitScale = random ? 0.5 : 0.02 },
    };

    static IA3Config Ia3(bool random = false) => new()
    {
        TargetModules = ModuleSelector.AllConv, FeedforwardModules = ModuleSelector.Of("mid"), InitIa3Weights = !random,
    };

    // r = 2 decomposes w2 on every layer (r < max(out_k, in_n) / 2 = 3); r = 4 keeps it full, [out_k, in_n, kh, kw].
    static LoKrConfig LoKr(bool random = false, int r = 2) => new()
    {
        R = r, Alpha = 4, TargetModules = ModuleSelector.AllConv, InitWeights = JsonSerializer.SerializeToElement(!random),
    };

    static Dictionary<string, Tensor> Weights(nn.Module m) => m.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());

    [Fact]
    public void Every_method_equals_the_base_model_at_initialisation()
    {
        foreach (var config in new PeftConfig[] { Lora(), Quantum(), Ia3(), LoKr() })
        {
            using var model = TinyCnn.Create();
            var x = TinyCnn.Input();
            using var _ = no_grad();
            var before = model.forward(x).clone();
            var peft = PeftModel.Inject(model, config);
            Assert.Equal(Convs, peft.AdaptedLayers.Select(l => l.Path));
            Assert.All(peft.AdaptedLayers, l => Assert.NotNull(l.Layer.Conv));
            Assert.True(MaxDiff(before, model.forward(x)) < 1e-6, config.PeftType);
        }
    }

    [Fact]
    public void Unmerged_forward_equals_merged_weights_and_unmerge_restores_the_base()
    {
        foreach (var config in new PeftConfig[] { Lora(randomB: true), Quantum(random: true), Ia3(random: true), LoKr(random: true), LoKr(random: true, r: 4) })
        {
            using var model = TinyCnn.Create();
            var x = TinyCnn.Input();
            using var _ = no_grad();
            var baseOut = model.forward(x).clone();
            var peft = PeftModel.Inject(model, config);
            var baseWeights = peft.AdaptedLayers.ToDictionary(l => l.Path, l => LinearLayers.WeightOutIn(l.Layer.BaseLayer).clone());
            var adapted = model.forward(x).clone();
            Assert.True(MaxDiff(adapted, baseOut) > 1e-3, $"{config.PeftType}: the random adapter should change the output");

            peft.Merge();
            foreach (var (path, layer) in peft.AdaptedLayers)
                Assert.True(MaxDiff(LinearLayers.WeightOutIn(layer.BaseLayer), baseWeights[path]) > 1e-4, $"{config.PeftType} {path}: merge changed nothing");
            Assert.True(MaxDiff(model.forward(x), adapted) < 2e-5, $"{config.PeftType}: merged {MaxDiff(model.forward(x), adapted)}");

            peft.Unmerge();
            // IA3 unmerges by dividing by l + 1e-8, as peft does.
            var tolerance = config is IA3Config ? 1e-5 : 1e-6;
            foreach (var (path, layer) in peft.AdaptedLayers)
                Assert.True(MaxDiff(LinearLayers.WeightOutIn(layer.BaseLayer), baseWeights[path]) < tolerance, $"{config.PeftType} {path}: unmerge");
            Assert.True(MaxDiff(model.forward(x), adapted) < 2e-5);
        }
    }

    [Fact]
    public void Lora_merge_is_peft_delta_formula_for_1x1_and_kxk_kernels()
    {
        using var model = TinyCnn.Create();
        var peft = PeftModel.Inject(model, Lora(randomB: true));
        using var _ = no_grad();
        var before = Weights(model);
        peft.Merge();
        foreach (var (path, layer) in peft.AdaptedLayers)
        {
            var branch = (LoraBranch)layer["default"];
            var (cin, cout, k) = Geometry[path];
            Assert.Equal([3, cin, k, k], branch.A.shape);
            Assert.Equal([cout, 3, 1, 1], branch.B.shape);
            // peft: 1x1 -> (B.squeeze @ A.squeeze)[..., None, None] * s; k x k -> conv2d(A^T, B)^T * s.
            var expected = k == 1
                ? branch.B.squeeze(3).squeeze(2).matmul(branch.A.squeeze(3).squeeze(2)).unsqueeze(2).unsqueeze(3) * 2.0
                : functional.conv2d(branch.A.transpose(0, 1), branch.B).transpose(0, 1) * 2.0;
            var merged = model.state_dict()[$"{path}.base_layer.weight"];
            Assert.True(MaxDiff(merged - before[$"{path}.base_layer.weight"], expected) < 1e-6, path);
        }
    }

    [Fact]
    public void Quantum_factors_stay_orthonormal_for_non_power_of_two_sizes()
    {
        var config = Quantum(random: true);
        // 27 = 3 * 9 and 576 = 64 * 9 take the block split, 24 = 3 * 8 a qutrit, 108 = 12 * 9 and 18 = 2 * 9 the block split.
        foreach (var conv in new[] { new Conv2dShape(3, 24, 3, 3), new Conv2dShape(64, 64, 3, 3), new Conv2dShape(12, 18, 3, 3), new Conv2dShape(24, 12, 1, 1) })
        {
            using var branch = new QuantumBranch(conv, config, 1, 2);
            using var _ = no_grad();
            var (u, v, _) = branch.Factors();
            Assert.Equal([conv.OutChannels, 4], u.shape);
            Assert.Equal([conv.MatrixIn, 4], v.shape);
            Assert.True(MaxDiff(u.t().matmul(u), eye(4)) < 1e-5, $"U of {conv}");
            Assert.True(MaxDiff(v.t().matmul(v), eye(4)) < 1e-5, $"V of {conv}");
        }
    }

    [Fact]
    public void Quantum_conv_forward_equals_a_convolution_with_the_dense_update()
    {
        using var model = TinyCnn.Create();
        var peft = PeftModel.Inject(model, Quantum(random: true));
        using var _ = no_grad();
        var x = randn(2, 3, 8, 8);
        var layer = peft.AdaptedLayers.Single(l => l.Path == "stem").Layer;
        var branch = (QuantumBranch)layer["default"];
        var (u, v, sl) = branch.Factors();
        // s U diag(lambda) V^T written out densely and viewed as the 24 x 3 x 3 x 3 kernel; stride 2, padding 1.
        var dense = (u * sl).matmul(v.t()).view(24, 3, 3, 3);
        var expected = functional.conv2d(x, dense, strides: [2, 2], padding: [1, 1]);
        Assert.True(MaxDiff(branch.Forward(x), expected) < 1e-5);
    }

    [Fact]
    public void Save_and_load_round_trip_in_peft_key_layout()
    {
        foreach (var config in new PeftConfig[] { Lora(randomB: true), Quantum(random: true), Ia3(random: true), LoKr(random: true, r: 4) })
        {
            var folder = Path.Combine(dir, config.PeftType);
            using var model = TinyCnn.Create();
            var x = TinyCnn.Input();
            var peft = PeftModel.Inject(model, config);
            using var _ = no_grad();
            var expected = model.forward(x).clone();
            peft.Save(folder);

            var header = SafetensorsFile.ReadHeader(Path.Combine(folder, PeftAdapterFiles.WeightsFileName)).Entries.ToDictionary(e => e.Name, e => e.Shape);
            if (config is LoraConfig)
            {
                Assert.Equal(6, header.Count);
                Assert.Equal([3L, 3, 3, 3], header["base_model.model.stem.lora_A.weight"]);
                Assert.Equal([24L, 3, 1, 1], header["base_model.model.stem.lora_B.weight"]);
                Assert.Equal([3L, 24, 1, 1], header["base_model.model.mid.lora_A.weight"]);
                Assert.Equal([18L, 3, 1, 1], header["base_model.model.body.lora_B.weight"]);
            }
            else if (config is IA3Config)
            {
                // peft's IA3 Conv2d: [1, out, 1, 1], or [1, in, 1, 1] on a feed-forward layer (mid).
                Assert.Equal([1L, 24, 1, 1], header["base_model.model.stem.ia3_l"]);
                Assert.Equal([1L, 24, 1, 1], header["base_model.model.mid.ia3_l"]);
                Assert.Equal([1L, 18, 1, 1], header["base_model.model.body.ia3_l"]);
            }
            else if (config is LoKrConfig)
            {
                // peft's LoKr Conv2d: channels factorised (24 = 4 x 6, 3 = 1 x 3), the kernel in the full w2.
                Assert.Equal([4L, 1], header["base_model.model.stem.lokr_w1"]);
                Assert.Equal([6L, 3, 3, 3], header["base_model.model.stem.lokr_w2"]);
                Assert.Equal([6L, 4, 3, 3], header["base_model.model.body.lokr_w2"]);
            }
            else Assert.Contains("base_model.model.body.qpeft_lambda", header.Keys);
            var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, PeftAdapterFiles.ConfigFileName))).RootElement;
            Assert.Equal(Convs, json.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()));

            using var fresh = TinyCnn.Create();
            var warnings = new List<string>();
            var loaded = PeftModel.Load(fresh, folder, warnings: warnings);
            Assert.Empty(warnings);
            Assert.True(MaxDiff(fresh.forward(x), expected) < 1e-6, config.PeftType);
        }
    }

    [Fact]
    public void A_peft_013_lora_conv2d_adapter_loads_and_equals_hand_merged_weights()
    {
        var adapter = Path.Combine(dir, "peft");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), """
        {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": null, "bias": "none", "fan_in_fan_out": false,
         "inference_mode": true, "init_lora_weights": true, "layer_replication": null, "layers_pattern": null, "layers_to_transform": null,
         "loftq_config": {}, "lora_alpha": 8, "lora_dropout": 0.0, "megatron_config": null, "megatron_core": "megatron.core",
         "modules_to_save": null, "peft_type": "LORA", "r": 2, "rank_pattern": {}, "revision": null, "target_modules": ["stem", "mid", "body"],
         "task_type": null, "use_dora": false, "use_rslora": false}
        """);
        manual_seed(13);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (path, (cin, cout, k)) in Geometry)
        {
            tensors[$"base_model.model.{path}.lora_A.weight"] = randn(2, cin, k, k) * 0.3;
            tensors[$"base_model.model.{path}.lora_B.weight"] = randn(cout, 2, 1, 1) * 0.3;
        }
        SafetensorsFile.Write(Path.Combine(adapter, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });

        using var model = TinyCnn.Create();
        using var reference = TinyCnn.Create();
        var x = TinyCnn.Input();
        using var _ = no_grad();
        var warnings = new List<string>();
        var peft = PeftModel.Load(model, adapter, warnings: warnings);
        Assert.Empty(warnings);
        var adapted = model.forward(x).clone();

        // Hand-merged with scaling 8 / 2 = 4: W += 4 * sum_r B[o, r] A[r, i, y, x].
        var state = reference.state_dict();
        foreach (var path in Convs)
        {
            var a = tensors[$"base_model.model.{path}.lora_A.weight"];
            var b = tensors[$"base_model.model.{path}.lora_B.weight"];
            state[$"{path}.weight"].add_(einsum("or,riyx->oiyx", b.squeeze(3).squeeze(2), a) * 4.0);
        }
        Assert.True(MaxDiff(adapted, reference.forward(x)) < 1e-5);
        peft.MergeAndUnload();
        Assert.True(MaxDiff(model.forward(x), reference.forward(x)) < 1e-5);
    }

    [Fact]
    public void Quantum_conv_adapter_exports_to_an_equivalent_peft_lora_conv2d_adapter()
    {
        var quantumFolder = Path.Combine(dir, "q");
        var loraFolder = Path.Combine(dir, "lora");
        using var model = TinyCnn.Create();
        var x = TinyCnn.Input();
        var peft = PeftModel.Inject(model, Quantum(random: true));
        using var _ = no_grad();
        var expected = model.forward(x).clone();
        peft.Save(quantumFolder);

        var result = LoraExport.Export(quantumFolder, loraFolder);
        Assert.Equal(3, result.Modules);
        Assert.Equal(4, result.Rank);
        Assert.Equal(Geometry.Values.Sum(g => LoraBranch.CountParameters(g.In * g.K * g.K, g.Out, 4)), result.LoraParams);
        var header = SafetensorsFile.ReadHeader(Path.Combine(loraFolder, PeftAdapterFiles.WeightsFileName)).Entries.ToDictionary(e => e.Name, e => e.Shape);
        Assert.Equal([4L, 3, 3, 3], header["base_model.model.stem.lora_A.weight"]);
        Assert.Equal([24L, 4, 1, 1], header["base_model.model.stem.lora_B.weight"]);
        Assert.Equal([4L, 12, 3, 3], header["base_model.model.body.lora_A.weight"]);

        using var fresh = TinyCnn.Create();
        var loaded = PeftModel.Load(fresh, loraFolder);
        Assert.Equal(LoraConfig.TypeName, loaded.ActiveConfig.PeftType);
        Assert.True(MaxDiff(fresh.forward(x), expected) < 1e-5, $"export differs by {MaxDiff(fresh.forward(x), expected)}");
    }

    [Fact]
    public void Parameter_report_counts_equal_the_formulas()
    {
        foreach (var config in new PeftConfig[] { Lora(), Quantum(), Ia3(), LoKr(), LoKr(r: 4) })
        {
            using var model = TinyCnn.Create();
            var peft = PeftModel.Inject(model, config);
            var report = peft.Report();
            long total = 0;
            foreach (var path in Convs)
            {
                var (cin, cout, k) = Geometry[path];
                long expected = config switch
                {
                    LoraConfig l => LoraBranch.CountParameters(cin * k * k, cout, l.R),
                    QuantumPeftConfig q => q.CountParameters(cin * k * k, cout),
                    IA3Config => IA3Branch.CountParameters(cin, cout, path == "mid"),
                    LoKrConfig lk => LoKrBranch.CountParameters(ConvLayers.Shape(ModuleTree.Get(model, path + ".base_layer")), lk.R),
                    _ => throw new InvalidOperationException(),
                };
                var row = report.Modules.Single(r => r.Module == path);
                Assert.Equal(expected, row.Params);
                Assert.Equal(cin * k * k, row.InFeatures);
                Assert.Equal($"conv2d {k}x{k} ({cin} -> {cout})", row.Layer);
                total += expected;
            }
            Assert.Equal(total, report.AdapterParams);
            Assert.Equal(total, peft.AdapterParameters().Sum(p => p.numel()));
            Assert.Contains("conv2d 3x3 (3 -> 24)", report.ToTable());
        }
        // Hand counts on the 3 -> 24 3x3 stem: LoRA r = 3 is 3 * (27 + 24); LoKr r = 2 is w1 4 x 1 plus w2_a 6 x 2 and w2_b 2 x 27,
        // r = 4 is w1 4 x 1 plus the full w2 6 x 3 x 3 x 3.
        Assert.Equal(153, LoraBranch.CountParameters(27, 24, 3));
        Assert.Equal(4 + 12 + 54, LoKrBranch.CountParameters(new Conv2dShape(3, 24, 3, 3), 2));
        Assert.Equal(4 + 162, LoKrBranch.CountParameters(new Conv2dShape(3, 24, 3, 3), 4));
    }

    [Fact]
    public void Parameter_table_conv_rows_equal_the_measured_adapters()
    {
        using var model = TinyCnn.Create();
        var convs = ConvLayers.Conv2ds(model);
        Assert.Equal(Convs, convs.Select(c => c.Path));
        Assert.Equal(new Conv2dShape(12, 18, 3, 3, PaddingH: 2, PaddingW: 2, DilationH: 2, DilationW: 2), convs[2].Conv);
        var rows = ParameterTable.ConvRows("tiny-cnn", convs);
        foreach (var (config, method, rank, layers) in new (PeftConfig, string, int, int?)[]
        {
            (Lora() with { R = 4 }, "lora", 4, null),
            (Quantum() with { R = 4 }, "quantum_pauli", 4, 1),
            (Quantum() with { R = 8, Layers = 3 }, "quantum_pauli", 8, 3),
            (Quantum() with { R = 8, Map = StiefelMapKind.Taylor }, "quantum_taylor", 8, null),
        })
        {
            using var fresh = TinyCnn.Create();
            var measured = PeftModel.Inject(fresh, config).Report().AdapterParams;
            Assert.Equal(measured, rows.Single(r => r.Method == method && r.Rank == rank && r.Layers == layers).TrainableParams);
        }
    }

    [Theory]
    [InlineData("lora", 2e-2)]
    [InlineData("quantum", 5e-2)]
    [InlineData("ia3", 5e-2)]
    [InlineData("lokr", 2e-2)]
    public void A_few_training_steps_lower_the_loss(string method, double lr)
    {
        PeftConfig config = method switch { "lora" => Lora(), "quantum" => Quantum(), "lokr" => LoKr(), _ => Ia3() };
        using var model = TinyCnn.Create();
        var peft = PeftModel.Inject(model, config);
        var x = TinyCnn.Input(seed: 21, batch: 4);
        var y = randint(0, 4, [4], generator: new Generator(4));
        using var opt = optim.AdamW(peft.AdapterParameters(), lr);
        double first = 0, last = 0;
        for (int step = 0; step < 8; step++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var loss = functional.cross_entropy(model.forward(x), y);
            loss.backward();
            opt.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.True(last < first - 1e-3, $"{config.PeftType}: loss {first} -> {last}");
    }

    [Fact]
    public void All_linear_stays_linear_and_all_conv_takes_only_convolutions()
    {
        using var model = TinyCnn.Create();
        var peft = PeftModel.Inject(model, Lora(targets: "proj"));
        Assert.Equal(["proj"], peft.ResolveTargets(Lora(targets: "all-linear")));
        Assert.Equal(Convs, peft.ResolveTargets(Lora(targets: "all-conv")));
        Assert.Equal(["stem", "body"], peft.ResolveTargets(Lora(targets: "re:(stem|body)")));
        Assert.Equal(["mid", "body"], peft.ResolveTargets(Lora(targets: "all-conv") with { ExcludeModules = ModuleSelector.Of("stem") }));
    }

    [Fact]
    public void Methods_without_conv_support_refuse_naming_the_method_and_the_layer()
    {
        PeftConfig[] configs =
        [
            new VeraConfig { TargetModules = ModuleSelector.Of("stem") },
            new FourierFTConfig { TargetModules = ModuleSelector.Of("stem") },
            new AdaLoraConfig { TargetModules = ModuleSelector.Of("stem"), TotalStep = 10 },
            new OftConfig { TargetModules = ModuleSelector.Of("stem") },
        ];
        foreach (var config in configs)
        {
            using var model = TinyCnn.Create();
            var ex = Assert.Throws<ArgumentException>(() => PeftModel.Inject(model, config));
            Assert.Contains(config.PeftType, ex.Message);
            Assert.Contains("'stem'", ex.Message);
            Assert.Contains("Conv2d", ex.Message);
            Assert.Contains("LORA", ex.Message); // names the methods that can
            // Refused before anything was wrapped: the model is unchanged.
            Assert.DoesNotContain(model.named_modules(), m => m.module is AdaptedLinear);
        }
    }

    [Fact]
    public void A_grouped_convolution_is_refused_with_a_clear_error()
    {
        var model = Sequential(("dw", Conv2d(4, 4, 3, padding: 1, groups: 4)), ("pw", Conv2d(4, 8, 1)));
        var ex = Assert.Throws<ArgumentException>(() => PeftModel.Inject(model, Lora(targets: "dw")));
        Assert.Contains("'dw'", ex.Message);
        Assert.Contains("groups = 4", ex.Message);
        var ok = PeftModel.Inject(model, Lora(targets: "pw"));
        Assert.Single(ok.AdaptedLayers);
    }
}
