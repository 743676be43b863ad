using System.Text.Json.Nodes;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.IA3;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

public sealed class IA3Tests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-ia3-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static IA3Config Config() => new()
    {
        TargetModules = ModuleSelector.Of("query", "value", "fc1"), FeedforwardModules = ModuleSelector.Of("fc1"),
    };

    [Fact]
    public void Default_init_equals_the_base_model() => MethodKit.InitEqualsBase(Config());

    [Fact]
    public void Merge_equals_forward_and_unmerge_restores_weights_and_biases() => MethodKit.MergeMatchesForward(Config());

    [Fact]
    public void Conv1D_matches_linear_on_both_sides()
    {
        MethodKit.Conv1DMatchesLinear(new IA3Config { TargetModules = ModuleSelector.Of("proj") });
        MethodKit.Conv1DMatchesLinear(new IA3Config { TargetModules = ModuleSelector.Of("proj"), FeedforwardModules = ModuleSelector.Of("proj") });
    }

    [Fact]
    public void Parameter_count_is_in_for_feedforward_and_out_otherwise() =>
        MethodKit.CountMatches(Config(), (p, i, o) => IA3Branch.CountParameters(i, o, p.EndsWith("fc1")));

    [Fact]
    public void Save_load_round_trip_with_pefts_keys()
    {
        var file = MethodKit.RoundTrip(Config(), dir);
        Assert.Equal(MethodKit.Keys(["query", "value", "mlp.fc1"], "ia3_l").Order(StringComparer.Ordinal), file.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([8, 1], file["base_model.model.layers.0.query.ia3_l"].shape);   // out x 1: scales the output
        Assert.Equal([1, 8], file["base_model.model.layers.0.mlp.fc1.ia3_l"].shape); // 1 x in: scales the input
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal("IA3", (string)json["peft_type"]!);
        Assert.Equal(["fc1"], json["feedforward_modules"]!.AsArray().Select(n => (string)n!));
        Assert.True(json.ContainsKey("init_ia3_weights"));
        Assert.True(json.ContainsKey("fan_in_fan_out"));
    }

    [Fact]
    public void A_folder_in_pefts_layout_gives_the_formula_output()
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), """
        {"auto_mapping": null, "base_model_name_or_path": "tiny", "exclude_modules": null, "fan_in_fan_out": false,
         "feedforward_modules": ["fc2"], "inference_mode": true, "init_ia3_weights": true, "modules_to_save": null,
         "peft_type": "IA3", "revision": null, "target_modules": ["value", "fc2"], "task_type": null}
        """);
        var g = new Generator(9);
        var tensors = new Dictionary<string, Tensor>();
        var reference = TinyModel.Create();
        using (no_grad())
            foreach (var l in new[] { "0", "1" })
            {
                // value: y = (W x + b) * l, i.e. W' = diag(l) W and b' = l * b.
                var v = (Linear)ModuleTree.Get(reference, $"layers.{l}.value");
                var lv = torch.rand(8, 1, generator: g) + 0.5;
                tensors[PeftAdapterFiles.Key($"layers.{l}.value", "ia3_l")] = lv;
                v.weight!.copy_(torch.diag(lv.flatten()).matmul(v.weight!));
                v.bias!.mul_(lv.flatten());
                // fc2 (16 -> 8), feed-forward: y = W (x * l) + b, i.e. W' = W diag(l).
                var f = (Linear)ModuleTree.Get(reference, $"layers.{l}.mlp.fc2");
                var lf = torch.rand(1, 16, generator: g) + 0.5;
                tensors[PeftAdapterFiles.Key($"layers.{l}.mlp.fc2", "ia3_l")] = lf;
                f.weight!.copy_(f.weight!.matmul(torch.diag(lf.flatten())));
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
    public void A_file_for_the_other_side_is_rejected_naming_feedforward_modules()
    {
        PeftModel.Inject(TinyModel.Create(), Config()).Save(dir);
        var path = Path.Combine(dir, "adapter_config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"feedforward_modules\": [\n    \"fc1\"\n  ]", "\"feedforward_modules\": null"));
        var e = Assert.Throws<InvalidDataException>(() => PeftModel.Load(TinyModel.Create(), dir));
        Assert.Contains("feedforward_modules", e.Message);
    }

    [Fact]
    public void Wrong_options_are_named()
    {
        var e = Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { FeedforwardModules = ModuleSelector.Of("fc2") }));
        Assert.Contains("feedforward_modules", e.Message);
        Assert.Contains("feedforward_modules", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { FeedforwardModules = ModuleSelector.AllLinear })).Message);
    }
}
