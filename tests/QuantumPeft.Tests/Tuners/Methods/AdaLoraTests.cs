using System.Text.Json.Nodes;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.AdaLora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

public sealed class AdaLoraTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-adalora-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static AdaLoraConfig Config(params string[] targets) => new()
    {
        InitR = 4, TargetR = 2, LoraAlpha = 8, Tinit = 2, Tfinal = 3, TotalStep = 12,
        TargetModules = ModuleSelector.Of(targets.Length == 0 ? ["query", "value", "fc1"] : targets),
    };

    [Fact]
    public void Default_init_equals_the_base_model() => MethodKit.InitEqualsBase(Config());

    [Fact]
    public void Merge_equals_forward_and_unmerge_restores() => MethodKit.MergeMatchesForward(Config());

    [Fact]
    public void Conv1D_matches_linear() => MethodKit.Conv1DMatchesLinear(Config("proj"));

    [Fact]
    public void Parameter_count_is_r_times_in_plus_out_plus_one() => MethodKit.CountMatches(Config(), (p, i, o) => AdaLoraBranch.CountParameters(i, o, 4));

    [Fact]
    public void Save_load_round_trip_with_pefts_keys()
    {
        var file = MethodKit.RoundTrip(Config(), dir);
        Assert.Equal(MethodKit.Keys(["query", "value", "mlp.fc1"], "lora_A", "lora_B", "lora_E").Order(StringComparer.Ordinal), file.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([4, 8], file["base_model.model.layers.0.mlp.fc1.lora_A"].shape);
        Assert.Equal([16, 4], file["base_model.model.layers.0.mlp.fc1.lora_B"].shape);
        Assert.Equal([4, 1], file["base_model.model.layers.0.mlp.fc1.lora_E"].shape);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal("ADALORA", (string)json["peft_type"]!);
        foreach (var key in new[] { "target_r", "init_r", "tinit", "tfinal", "deltaT", "beta1", "beta2", "orth_reg_weight", "total_step", "rank_pattern", "lora_alpha", "lora_dropout", "r" })
            Assert.True(json.ContainsKey(key), key);
    }

    [Fact]
    public void A_folder_in_pefts_layout_with_a_rank_pattern_gives_the_formula_output()
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), """
        {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "tiny", "beta1": 0.85, "beta2": 0.85, "bias": "none",
         "deltaT": 10, "exclude_modules": null, "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "init_r": 3,
         "layer_replication": null, "layers_pattern": null, "layers_to_transform": null, "loftq_config": {}, "lora_alpha": 32,
         "lora_bias": false, "lora_dropout": 0.1, "megatron_config": null, "megatron_core": "megatron.core", "modules_to_save": null,
         "orth_reg_weight": 0.5, "peft_type": "ADALORA", "r": 8,
         "rank_pattern": {"layers.0.query.lora_E": [true, false, true], "layers.1.query.lora_E": [false, false, false], "layers.0.mlp.fc1.lora_E": [true, true, true], "layers.1.mlp.fc1.lora_E": [false, true, false]},
         "revision": null, "target_modules": ["query", "fc1"], "target_r": 1, "task_type": null, "tfinal": 100, "tinit": 200,
         "total_step": 1000, "use_dora": false, "use_rslora": false, "corda_config": null, "eva_config": null,
         "trainable_token_indices": null, "use_qalora": false, "qalora_group_size": 16, "target_parameters": null}
        """);
        var g = new Generator(9);
        var tensors = new Dictionary<string, Tensor>();
        var reference = TinyModel.Create();
        var kept = new Dictionary<string, int> { ["layers.0.query"] = 2, ["layers.1.query"] = 0, ["layers.0.mlp.fc1"] = 3, ["layers.1.mlp.fc1"] = 1 };
        using (no_grad())
            foreach (var (path, r) in kept)
            {
                var lin = (Linear)ModuleTree.Get(reference, path);
                var (o, i) = (lin.out_features, lin.in_features);
                var a = torch.randn(r, i, generator: g) * 0.3;
                var b = torch.randn(o, r, generator: g) * 0.3;
                var e = torch.randn(r, 1, generator: g) * 0.3;
                tensors[PeftAdapterFiles.Key(path, "lora_A")] = a;
                tensors[PeftAdapterFiles.Key(path, "lora_B")] = b;
                tensors[PeftAdapterFiles.Key(path, "lora_E")] = e;
                // delta W = B diag(E) A * lora_alpha / (ranknum + 1e-5), ranknum = init_r even after pruning.
                if (r > 0) lin.weight!.add_(b.matmul(torch.diag(e.flatten())).matmul(a) * (32.0 / (3 + 1e-5)));
            }
        QuantumPeft.Formats.Safetensors.SafetensorsFile.Write(Path.Combine(dir, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var model = TinyModel.Create();
        model.eval(); // lora_dropout 0.1 acts in training only
        var warnings = new List<string>();
        var peft = PeftModel.Load(model, dir, warnings: warnings);
        Assert.Empty(warnings);
        Assert.Equal(2, ((AdaLoraBranch)peft.AdaptedLayers.Single(l => l.Path == "layers.0.query").Layer["default"]).Rank);
        var x = TinyModel.Input();
        var diff = MethodKit.MaxDiff(reference.forward(x), model.forward(x)); Assert.True(diff < 1e-5, $"diff {diff}");
    }

    [Fact]
    public void The_allocator_reaches_the_target_budget_on_schedule_and_saves_the_pruned_adapter()
    {
        var model = TinyModel.Create();
        var config = Config();
        var peft = PeftModel.Inject(model, config);
        var allocator = new AdaLoraRankAllocator(peft);
        Assert.Equal(4 * 6, allocator.InitialBudget);
        Assert.Equal(2 * 6, allocator.TargetBudget);
        var optimizer = torch.optim.AdamW(peft.AdapterParameters(), lr: 0.05);
        var x = TinyModel.Input(seed: 3, batch: 16);
        var target = torch.randn(16, 3, generator: new Generator(4));
        var budgets = new List<int>();
        var orth = new List<double>();
        for (int step = 1; step <= 12; step++)
        {
            optimizer.zero_grad();
            var reg = allocator.OrthogonalRegularization();
            orth.Add(reg.item<float>());
            var loss = nn.functional.mse_loss(model.forward(x), target) + reg;
            loss.backward();
            optimizer.step();
            budgets.Add(allocator.UpdateAndAllocate(step));
        }
        Assert.Equal([24, 24], budgets.Take(2));                           // warm-up: steps <= tinit
        var phase = budgets.Skip(2).Take(6).ToList();                        // steps 3..8: the cubic decrease
        Assert.All(phase, b => Assert.InRange(b, 12, 23));
        Assert.Equal(phase.OrderByDescending(b => b), phase);
        Assert.Equal([12, 12, 12, 12], budgets.Skip(8));                   // from total_step - tfinal = 9 on: target_r x layers
        var pattern = ((AdaLoraConfig)peft.ActiveConfig).RankPattern!;
        Assert.Equal(6, pattern.Count);
        Assert.Equal(12, pattern.Values.Sum(m => m.Count(k => k)));
        Assert.True(orth[0] > 0);
        foreach (var (path, layer) in peft.AdaptedLayers)
        {
            var b = (AdaLoraBranch)layer["default"];
            var keep = pattern[path + ".lora_E"];
            for (int i = 0; i < keep.Length; i++) if (!keep[i]) Assert.Equal(0f, b.E[i, 0].item<float>());
        }

        model.eval();
        var expected = model.forward(x).detach().clone();
        peft.Save(dir);
        var file = QuantumPeft.Formats.Safetensors.SafetensorsFile.Read(Path.Combine(dir, "adapter_model.safetensors"));
        foreach (var (key, keep) in pattern)
        {
            var module = key[..^".lora_E".Length];
            Assert.Equal(keep.Count(k => k), file[PeftAdapterFiles.Key(module, "lora_A")].shape[0]);
            Assert.Equal(keep.Count(k => k), file[PeftAdapterFiles.Key(module, "lora_B")].shape[1]);
        }
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal(6, json["rank_pattern"]!.AsObject().Count);
        var fresh = TinyModel.Create();
        fresh.eval();
        var warnings = new List<string>();
        PeftModel.Load(fresh, dir, warnings: warnings);
        Assert.Empty(warnings);
        Assert.True(MethodKit.MaxDiff(expected, fresh.forward(x)) < 1e-6);
    }

    [Fact]
    public void Wrong_options_are_named()
    {
        Assert.Contains("tinit", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { Tinit = 9 })).Message);
        Assert.Contains("target_r", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { TargetR = 5 })).Message);
        Assert.Contains("beta1", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { Beta1 = 1 })).Message);
        var peft = PeftModel.Inject(TinyModel.Create(), Config() with { TotalStep = null });
        Assert.Contains("total_step", Assert.Throws<ArgumentException>(() => new AdaLoraRankAllocator(peft)).Message);
    }
}
