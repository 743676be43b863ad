using System.Text.Json.Nodes;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Vera;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

public sealed class VeraTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-vera-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static VeraConfig Config(params string[] targets) => new()
    {
        R = 4, ProjectionPrngKey = 3, TargetModules = ModuleSelector.Of(targets.Length == 0 ? ["query", "value", "fc1"] : targets),
    };

    [Fact]
    public void Default_init_equals_the_base_model() => MethodKit.InitEqualsBase(Config());

    [Fact]
    public void Merge_equals_forward_and_unmerge_restores() => MethodKit.MergeMatchesForward(Config());

    [Fact]
    public void Conv1D_matches_linear() => MethodKit.Conv1DMatchesLinear(Config("proj"));

    [Fact]
    public void Parameter_count_is_out_plus_r() => MethodKit.CountMatches(Config(), (p, i, o) => VeraBranch.CountParameters(i, o, 4));

    [Fact]
    public void Projections_are_shared_sized_by_the_largest_layer_and_seeded_as_peft()
    {
        var peft = PeftModel.Inject(TinyModel.Create(), Config());
        var branches = peft.AdaptedLayers.Select(l => (VeraBranch)l.Layer["default"]).ToList();
        Assert.All(branches, b => Assert.Same(branches[0].Projections, b.Projections));
        Assert.Equal([4, 8], branches[0].Projections.A.shape);   // r x max_in
        Assert.Equal([16, 4], branches[0].Projections.B.shape);  // max_out x r
        // peft's _kaiming_init: one generator, A first then B, U(+-sqrt(6 / fan_in)).
        var g = new Generator(3);
        var a = torch.empty(4, 8).uniform_(-Math.Sqrt(6.0 / 8), Math.Sqrt(6.0 / 8), g);
        var b = torch.empty(16, 4).uniform_(-Math.Sqrt(6.0 / 4), Math.Sqrt(6.0 / 4), g);
        Assert.Equal(0, MethodKit.MaxDiff(a, branches[0].Projections.A));
        Assert.Equal(0, MethodKit.MaxDiff(b, branches[0].Projections.B));
        Assert.True(a.abs().max().item<float>() <= Math.Sqrt(6.0 / 8));
    }

    [Fact]
    public void Save_load_round_trip_with_pefts_keys()
    {
        var file = MethodKit.RoundTrip(Config(), dir);
        var expected = MethodKit.Keys(["query", "value", "mlp.fc1"], "vera_lambda_b", "vera_lambda_d");
        expected.AddRange(["base_model.vera_A", "base_model.vera_B"]);
        Assert.Equal(expected.Order(StringComparer.Ordinal), file.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([16], file["base_model.model.layers.0.mlp.fc1.vera_lambda_b"].shape);
        Assert.Equal([4], file["base_model.model.layers.0.mlp.fc1.vera_lambda_d"].shape);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal("VERA", (string)json["peft_type"]!);
        foreach (var key in new[] { "r", "projection_prng_key", "save_projection", "vera_dropout", "d_initial", "fan_in_fan_out", "bias", "init_weights" })
            Assert.True(json.ContainsKey(key), key);
    }

    [Fact]
    public void Without_saved_projections_they_are_regenerated_with_a_warning()
    {
        var model = TinyModel.Create();
        var peft = PeftModel.Inject(model, Config() with { SaveProjection = false });
        MethodKit.Perturb(peft);
        var x = TinyModel.Input();
        var expected = model.forward(x).detach().clone();
        peft.Save(dir);
        Assert.DoesNotContain(QuantumPeft.Formats.Safetensors.SafetensorsFile.Read(Path.Combine(dir, "adapter_model.safetensors")).Keys, k => k.Contains("vera_A"));
        var fresh = TinyModel.Create();
        var warnings = new List<string>();
        PeftModel.Load(fresh, dir, warnings: warnings);
        Assert.Contains(warnings, w => w.Contains("save_projection") && w.Contains("projection_prng_key"));
        Assert.Equal(0, MethodKit.MaxDiff(expected, fresh.forward(x)));
    }

    [Fact]
    public void A_folder_in_pefts_layout_gives_the_formula_output()
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), """
        {"auto_mapping": null, "base_model_name_or_path": "tiny", "bias": "none", "d_initial": 0.1, "fan_in_fan_out": false,
         "inference_mode": true, "init_weights": true, "layers_pattern": null, "layers_to_transform": null, "modules_to_save": null,
         "peft_type": "VERA", "projection_prng_key": 0, "r": 3, "revision": null, "save_projection": true, "target_modules": ["value", "fc1"],
         "task_type": null, "vera_dropout": 0.0}
        """);
        var g = new Generator(9);
        var a = torch.randn(3, 8, generator: g);   // r x max_in
        var b = torch.randn(16, 3, generator: g);  // max_out x r
        var tensors = new Dictionary<string, Tensor> { ["base_model.vera_A"] = a, ["base_model.vera_B"] = b };
        var reference = TinyModel.Create();
        using (no_grad())
            foreach (var path in new[] { "layers.0.value", "layers.1.value", "layers.0.mlp.fc1", "layers.1.mlp.fc1" })
            {
                var lin = (Linear)ModuleTree.Get(reference, path);
                var (o, i) = (lin.out_features, lin.in_features);
                var lb = torch.randn(o, generator: g);
                var ld = torch.randn(3, generator: g);
                tensors[PeftAdapterFiles.Key(path, "vera_lambda_b")] = lb;
                tensors[PeftAdapterFiles.Key(path, "vera_lambda_d")] = ld;
                // delta W = diag(lambda_b) B[:out] diag(lambda_d) A[:, :in]
                lin.weight!.add_(torch.diag(lb).matmul(b[..(int)o, ..]).matmul(torch.diag(ld)).matmul(a[.., ..(int)i]));
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
    public void Wrong_options_are_named()
    {
        Assert.Contains("vera_dropout", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { VeraDropout = 2 })).Message);
        Assert.Contains("projection_prng_key", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { ProjectionPrngKey = -1 })).Message);
        Assert.Contains("r must", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { R = 0 })).Message);
    }
}
