using System.Text.Json.Nodes;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.FourierFT;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

public sealed class FourierFTTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-fourierft-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static FourierFTConfig Config(params string[] targets) => new()
    {
        NFrequency = 20, Scaling = 30, RandomLocSeed = 777, TargetModules = ModuleSelector.Of(targets.Length == 0 ? ["query", "value", "fc1"] : targets),
    };

    // Re(ifft2(S)) with the "backward" norm, from explicit DFT matrices: (C_out S C_in - S_out S S_in) / (out * in).
    static Tensor RealIfft2(Tensor s)
    {
        long m = s.shape[0], n = s.shape[1];
        Tensor Angles(long k) { var a = torch.arange(k, dtype: ScalarType.Float64); return a.outer(a) * (2 * Math.PI / k); }
        var am = Angles(m); var an = Angles(n);
        var s64 = s.to(ScalarType.Float64);
        return (am.cos().matmul(s64).matmul(an.cos()) - am.sin().matmul(s64).matmul(an.sin())) / (m * n);
    }

    [Fact]
    public void Default_init_changes_the_model_and_init_weights_true_keeps_it()
    {
        MethodKit.InitEqualsBase(Config() with { InitWeights = true });
        var model = TinyModel.Create();
        var x = TinyModel.Input();
        var before = model.forward(x).detach().clone();
        PeftModel.Inject(model, Config());
        Assert.True(MethodKit.MaxDiff(before, model.forward(x)) > 1e-3); // peft's default: the spectrum starts standard normal
    }

    [Fact]
    public void Merge_equals_forward_and_unmerge_restores() => MethodKit.MergeMatchesForward(Config());

    [Fact]
    public void Conv1D_matches_linear() => MethodKit.Conv1DMatchesLinear(Config("proj"));

    [Fact]
    public void Parameter_count_is_n_frequency() =>
        MethodKit.CountMatches(Config() with { NFrequencyPattern = new() { ["fc1"] = 7 } }, (p, i, o) => FourierFTBranch.CountParameters(p.EndsWith("fc1") ? 7 : 20));

    [Fact]
    public void Positions_are_pefts_randperm_and_the_same_on_every_layer()
    {
        var expected = torch.randperm(64, generator: new Generator(777))[..20];
        Assert.Equal(0, MethodKit.MaxDiff(expected, FourierFTBranch.Positions(8, 8, 20, 777)));
        var peft = PeftModel.Inject(TinyModel.Create(), Config());
        var a = (FourierFTBranch)peft.AdaptedLayers[0].Layer["default"];
        var b = (FourierFTBranch)peft.AdaptedLayers[1].Layer["default"];
        Assert.Equal(0, MethodKit.MaxDiff(a.Indices, b.Indices));
    }

    [Fact]
    public void Save_load_round_trip_with_pefts_keys()
    {
        var file = MethodKit.RoundTrip(Config() with { ModulesToSave = ["classifier"] }, dir);
        var expected = MethodKit.Keys(["query", "value", "mlp.fc1"], "fourierft_spectrum");
        expected.AddRange(["base_model.model.classifier.bias", "base_model.model.classifier.weight"]);
        Assert.Equal(expected.Order(StringComparer.Ordinal), file.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([20], file["base_model.model.layers.0.query.fourierft_spectrum"].shape);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal("FOURIERFT", (string)json["peft_type"]!);
        foreach (var key in new[] { "n_frequency", "scaling", "random_loc_seed", "fan_in_fan_out", "bias", "n_frequency_pattern", "init_weights", "ifft2_norm", "alpha" })
            Assert.True(json.ContainsKey(key), key);
        Assert.Equal(json.Select(p => p.Key).Order(StringComparer.Ordinal), json.Select(p => p.Key));
    }

    [Fact]
    public void A_folder_in_pefts_layout_gives_the_formula_output()
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), """
        {"alpha": null, "auto_mapping": null, "base_model_name_or_path": "tiny", "bias": "none", "exclude_modules": null,
         "fan_in_fan_out": false, "ifft2_norm": "backward", "inference_mode": true, "init_weights": false, "layers_pattern": null,
         "layers_to_transform": null, "modules_to_save": null, "n_frequency": 12, "n_frequency_pattern": {}, "peft_type": "FOURIERFT",
         "random_loc_seed": 5, "revision": null, "scaling": 150.0, "target_modules": ["query", "fc1"], "task_type": null}
        """);
        var g = new Generator(9);
        var tensors = new Dictionary<string, Tensor>();
        var reference = TinyModel.Create();
        using (no_grad())
            foreach (var path in new[] { "layers.0.query", "layers.1.query", "layers.0.mlp.fc1", "layers.1.mlp.fc1" })
            {
                var lin = (Linear)ModuleTree.Get(reference, path);
                long o = lin.out_features, i = lin.in_features;
                var spectrum = torch.randn(12, generator: g) * 0.01;
                tensors[PeftAdapterFiles.Key(path, "fourierft_spectrum")] = spectrum;
                var positions = torch.randperm(o * i, generator: new Generator(5))[..12];
                var dense = torch.zeros(o, i);
                for (int k = 0; k < 12; k++) { long p = positions[k].item<long>(); dense[p / i, p % i] = spectrum[k]; }
                lin.weight!.add_((RealIfft2(dense) * 150.0).to(ScalarType.Float32));
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
        var m = TinyModel.Create();
        Assert.Contains("ifft2_norm", Assert.Throws<ArgumentException>(() => PeftModel.Inject(m, Config() with { Ifft2Norm = "none" })).Message);
        Assert.Contains("n_frequency", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { NFrequency = 0 })).Message);
        Assert.Contains("n_frequency", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { NFrequency = 64 })).Message);
    }
}
