using System.Text.Json;
using System.Text.Json.Nodes;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.LoKr;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

public sealed class LoKrTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-lokr-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static LoKrConfig Config(params string[] targets) => new()
    {
        R = 1, Alpha = 2, DecomposeBoth = true, TargetModules = ModuleSelector.Of(targets.Length == 0 ? ["query", "value", "fc1"] : targets),
    };

    // kron(a, b) written out: block (i, j) of the result is a[i, j] * b.
    static Tensor Kron(Tensor a, Tensor b) =>
        (a.unsqueeze(1).unsqueeze(3) * b.unsqueeze(0).unsqueeze(2)).reshape(a.shape[0] * b.shape[0], a.shape[1] * b.shape[1]);

    [Theory]
    [InlineData(256, -1, 16, 16)]
    [InlineData(128, -1, 8, 16)]
    [InlineData(127, -1, 1, 127)]
    [InlineData(128, 4, 4, 32)]
    [InlineData(768, -1, 24, 32)]
    [InlineData(8, -1, 2, 4)]
    public void Factorization_is_pefts(int dim, int factor, int m, int n) => Assert.Equal((m, n), LoKrBranch.Factorization(dim, factor));

    [Fact]
    public void Default_init_equals_the_base_model()
    {
        MethodKit.InitEqualsBase(Config());
        MethodKit.InitEqualsBase(Config() with { R = 8, DecomposeBoth = false });
        MethodKit.InitEqualsBase(Config() with { InitWeights = JsonSerializer.SerializeToElement("lycoris") });
    }

    [Fact]
    public void Merge_equals_forward_and_unmerge_restores()
    {
        MethodKit.MergeMatchesForward(Config());
        MethodKit.MergeMatchesForward(Config() with { R = 8 });
    }

    [Fact]
    public void Conv1D_matches_linear() => MethodKit.Conv1DMatchesLinear(Config("proj"));

    [Fact]
    public void Factors_are_full_or_decomposed_as_peft_decides()
    {
        var peft = PeftModel.Inject(TinyModel.Create(), Config());
        var q = (LoKrBranch)peft.AdaptedLayers.Single(l => l.Path == "layers.0.query").Layer["default"];
        var f = (LoKrBranch)peft.AdaptedLayers.Single(l => l.Path == "layers.0.mlp.fc1").Layer["default"];
        Assert.Equal(((2, 4), (2, 4)), q.Shape);
        Assert.True(q.FullW1);   // 1 < max(2, 2) / 2 is false
        Assert.False(q.FullW2);  // 1 < max(4, 4) / 2
        Assert.Equal(((4, 4), (2, 4)), f.Shape);
        Assert.False(f.FullW1);
        Assert.Equal(["lokr_w1", "lokr_w2_a", "lokr_w2_b"], q.ExportState().Keys.Order());
        Assert.Equal(["lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b"], f.ExportState().Keys.Order());
    }

    [Fact]
    public void Parameter_count_matches_the_formula()
    {
        foreach (var c in new[] { Config(), Config() with { R = 8, DecomposeBoth = false }, Config() with { DecomposeFactor = 4 } })
            MethodKit.CountMatches(c, (p, i, o) => LoKrBranch.CountParameters(i, o, c.R, c.DecomposeBoth, c.DecomposeFactor));
        Assert.Equal(2 * 2 + 1 * (4 + 4), LoKrBranch.CountParameters(8, 8, 1, true));
    }

    [Fact]
    public void Save_load_round_trip_with_pefts_keys()
    {
        var file = MethodKit.RoundTrip(Config(), dir);
        var expected = MethodKit.Keys(["query", "value"], "lokr_w1", "lokr_w2_a", "lokr_w2_b");
        expected.AddRange(MethodKit.Keys(["mlp.fc1"], "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b"));
        Assert.Equal(expected.Order(StringComparer.Ordinal), file.Keys.Order(StringComparer.Ordinal));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal("LOKR", (string)json["peft_type"]!);
        foreach (var key in new[] { "r", "alpha", "rank_dropout", "module_dropout", "use_effective_conv2d", "decompose_both", "decompose_factor", "init_weights", "rank_pattern", "alpha_pattern" })
            Assert.True(json.ContainsKey(key), key);
    }

    [Fact]
    public void A_folder_in_pefts_layout_gives_the_formula_output()
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), """
        {"alpha": 2, "alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "tiny", "decompose_both": true,
         "decompose_factor": -1, "exclude_modules": null, "inference_mode": true, "init_weights": true, "layers_pattern": null,
         "layers_to_transform": null, "module_dropout": 0.0, "modules_to_save": null, "peft_type": "LOKR", "r": 1, "rank_dropout": 0.0,
         "rank_dropout_scale": false, "rank_pattern": {"fc1": 3}, "revision": null, "target_modules": ["query", "fc1"], "task_type": null,
         "use_effective_conv2d": false}
        """);
        var g = new Generator(9);
        Tensor R(long a, long b) => torch.randn(a, b, generator: g) * 0.2;
        var tensors = new Dictionary<string, Tensor>();
        var reference = TinyModel.Create();
        using (no_grad())
        {
            foreach (var l in new[] { "0", "1" })
            {
                // query 8x8, r = 1, alpha 2: w1 [2, 2] full, w2 = w2_a [4, 1] w2_b [1, 4]; scale 2 / 1.
                var (w1, w2a, w2b) = (R(2, 2), R(4, 1), R(1, 4));
                var q = $"layers.{l}.query";
                tensors[PeftAdapterFiles.Key(q, "lokr_w1")] = w1;
                tensors[PeftAdapterFiles.Key(q, "lokr_w2_a")] = w2a;
                tensors[PeftAdapterFiles.Key(q, "lokr_w2_b")] = w2b;
                ((Linear)ModuleTree.Get(reference, q)).weight!.add_(Kron(w1, w2a.matmul(w2b)) * 2.0);
                // fc1 16x8 with rank_pattern r = 3: w1 [4, 2] is full (3 < max(4, 2) / 2 is false), w2 [4, 4] too; scale 2 / 3.
                var f = $"layers.{l}.mlp.fc1";
                var (v1, v2) = (R(4, 2), R(4, 4));
                tensors[PeftAdapterFiles.Key(f, "lokr_w1")] = v1;
                tensors[PeftAdapterFiles.Key(f, "lokr_w2")] = v2;
                ((Linear)ModuleTree.Get(reference, f)).weight!.add_(Kron(v1, v2) * (2.0 / 3));
            }
        }
        QuantumPeft.Formats.Safetensors.SafetensorsFile.Write(Path.Combine(dir, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var model = TinyModel.Create();
        var warnings = new List<string>();
        PeftModel.Load(model, dir, warnings: warnings);
        Assert.Empty(warnings);
        var x = TinyModel.Input();
        Assert.True(MethodKit.MaxDiff(reference.forward(x), model.forward(x)) < 1e-5);
    }

    [Fact]
    public void Dropouts_act_in_training_only()
    {
        var model = TinyModel.Create();
        var peft = PeftModel.Inject(model, Config() with { ModuleDropout = 1.0, RankDropout = 0.5 });
        MethodKit.Perturb(peft);
        var x = TinyModel.Input();
        model.eval();
        var eval1 = model.forward(x).detach().clone();
        Assert.Equal(0, MethodKit.MaxDiff(eval1, model.forward(x)));
        model.train();
        var before = TinyModel.Create(); before.train();
        Assert.True(MethodKit.MaxDiff(before.forward(x), model.forward(x)) < 1e-6); // module_dropout 1: the adapter is always skipped in training
    }

    [Fact]
    public void Wrong_options_are_named()
    {
        Assert.Contains("decompose_factor", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { DecomposeFactor = 0 })).Message);
        Assert.Contains("init_weights", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { InitWeights = JsonSerializer.SerializeToElement("pissa") })).Message);
        Assert.Contains("rank_dropout", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { RankDropout = 1.5 })).Message);
    }
}
