using System.Text.Json.Nodes;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Oft;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

public sealed class OftTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-oft-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static OftConfig Config(params string[] targets) => new()
    {
        OftBlockSize = 4, TargetModules = ModuleSelector.Of(targets.Length == 0 ? ["query", "value", "fc1"] : targets),
    };

    // Q from the upper-triangle numbers (row-major), written out; then the series or the exact transform.
    static double[,] Skew(float[] v, int b)
    {
        var q = new double[b, b];
        int k = 0;
        for (int i = 0; i < b; i++)
            for (int j = i + 1; j < b; j++) { q[i, j] = v[k]; q[j, i] = -v[k]; k++; }
        return q;
    }

    static Tensor Rotation(float[] v, int b, string formula, int terms = 5)
    {
        var q = torch.tensor(Skew(v, b));
        var eye = torch.eye(b, dtype: ScalarType.Float64);
        if (formula == "cayley") return (eye - q).matmul(torch.linalg.inv(eye + q));
        var r = eye + 2 * q;
        var p = q;
        for (int t = 2; t < terms; t++) { p = p.matmul(q); r = r + (formula == "0.18" && t == terms - 1 ? 1 : 2) * p; }
        return r;
    }

    [Fact]
    public void Default_init_equals_the_base_model() => MethodKit.InitEqualsBase(Config());

    [Fact]
    public void Merge_equals_forward_and_unmerge_restores()
    {
        MethodKit.MergeMatchesForward(Config());
        MethodKit.MergeMatchesForward(Config() with { UseCayleyNeumann = false, BlockShare = true });
    }

    [Fact]
    public void Conv1D_matches_linear() => MethodKit.Conv1DMatchesLinear(Config("proj"));

    [Fact]
    public void Parameter_count_matches_the_formula()
    {
        MethodKit.CountMatches(Config(), (p, i, o) => OftBranch.CountParameters(i / 4, 4, false));
        MethodKit.CountMatches(Config() with { BlockShare = true }, (p, i, o) => OftBranch.CountParameters(i / 4, 4, true));
        MethodKit.CountMatches(Config() with { R = 4, OftBlockSize = 0 }, (p, i, o) => OftBranch.CountParameters(4, i / 4, false));
    }

    [Fact]
    public void Exact_cayley_is_orthogonal_and_coft_bounds_the_rotation()
    {
        var b = new OftBranch(8, 8, 2, 4, OftRotationFormula.Cayley, initIdentity: false);
        var r = b.Matrix();
        Assert.True(MethodKit.MaxDiff(r.matmul(r.t()), torch.eye(8)) < 1e-5);
        var c = new OftBranch(8, 8, 2, 4, OftRotationFormula.Neumann018, coft: true, eps: 1e-3, initIdentity: false);
        c.Matrix();
        var q = c.Skew(c.Weight.detach());
        Assert.True(q.flatten(1).norm(1).max().item<float>() <= 1e-3 / Math.Sqrt(2) * 1.0001);
    }

    [Fact]
    public void Invalid_block_size_is_adjusted_as_peft_does()
    {
        Assert.Equal(2, OftBranch.Adjust(8, 3));
        Assert.Equal(8, OftBranch.Adjust(8, 32));
        Assert.Equal(4, OftBranch.Adjust(12, 5));
        var peft = PeftModel.Inject(TinyModel.Create(), Config() with { OftBlockSize = 3 });
        Assert.Contains(peft.Warnings, w => w.Contains("oft_block_size") && w.Contains("adjusted oft_block_size to 2"));
        Assert.Equal(2, ((OftBranch)peft.AdaptedLayers[0].Layer["default"]).BlockSize);
    }

    [Fact]
    public void Save_load_round_trip_with_pefts_keys()
    {
        var file = MethodKit.RoundTrip(Config(), dir);
        Assert.Equal(MethodKit.Keys(["query", "value", "mlp.fc1"], "oft_R.weight").Order(StringComparer.Ordinal), file.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([2, 6], file["base_model.model.layers.0.query.oft_R.weight"].shape);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal("OFT", (string)json["peft_type"]!);
        Assert.Equal("0.18.0", (string)json["peft_version"]!);
        foreach (var key in new[] { "r", "oft_block_size", "module_dropout", "coft", "eps", "block_share", "use_cayley_neumann", "num_cayley_neumann_terms", "init_weights", "fan_in_fan_out", "bias" })
            Assert.True(json.ContainsKey(key), key);
    }

    [Theory]
    [InlineData(null, true, "older")]
    [InlineData("0.17.1", true, "older")]
    [InlineData("0.18.0", true, "0.18")]
    [InlineData("0.18.1.dev0", true, "0.18")]
    [InlineData(null, false, "cayley")]
    public void A_folder_in_pefts_layout_gives_the_formula_of_its_version(string? version, bool neumann, string formula)
    {
        Directory.CreateDirectory(dir);
        var versionLine = version is null ? "" : $"\"peft_version\": \"{version}\", ";
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), "{" + $$"""
         "auto_mapping": null, "base_model_name_or_path": "tiny", "bias": "none", "block_share": false, "coft": false, "eps": 6e-05,
         "exclude_modules": null, "fan_in_fan_out": false, "inference_mode": true, "init_weights": true, "layers_pattern": null,
         "layers_to_transform": null, "module_dropout": 0.0, "modules_to_save": null, "num_cayley_neumann_terms": 5, "oft_block_size": 4,
         "peft_type": "OFT", {{versionLine}}"r": 0, "revision": null, "target_modules": ["query", "fc2"], "task_type": null,
         "use_cayley_neumann": {{(neumann ? "true" : "false")}}}
        """);
        var g = new Generator(9);
        var tensors = new Dictionary<string, Tensor>();
        var reference = TinyModel.Create();
        using (no_grad())
            foreach (var path in new[] { "layers.0.query", "layers.1.query", "layers.0.mlp.fc2", "layers.1.mlp.fc2" })
            {
                var lin = (Linear)ModuleTree.Get(reference, path);
                int blocks = (int)lin.in_features / 4;
                var w = torch.randn(blocks, 6, generator: g) * 0.3;
                tensors[PeftAdapterFiles.Key(path, "oft_R.weight")] = w;
                var r = torch.zeros(lin.in_features, lin.in_features, dtype: ScalarType.Float64);
                for (int k = 0; k < blocks; k++)
                    r[TensorIndex.Slice(4 * k, 4 * k + 4), TensorIndex.Slice(4 * k, 4 * k + 4)] = Rotation(w[k].data<float>().ToArray(), 4, formula);
                // y = W (x R)^T + b, so the merged weight is W R^T.
                lin.weight!.copy_(lin.weight!.to(ScalarType.Float64).matmul(r.t()).to(ScalarType.Float32));
            }
        QuantumPeft.Formats.Safetensors.SafetensorsFile.Write(Path.Combine(dir, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var model = TinyModel.Create();
        var warnings = new List<string>();
        PeftModel.Load(model, dir, warnings: warnings);
        if (formula == "older") Assert.Contains(warnings, w => w.Contains("Cayley-Neumann") && w.Contains(version ?? "older than 0.18"));
        else Assert.Empty(warnings);
        var x = TinyModel.Input();
        Assert.True(MethodKit.MaxDiff(reference.forward(x), model.forward(x)) < 1e-5);
    }

    [Fact]
    public void A_file_without_use_cayley_neumann_uses_the_exact_transform()
    {
        var model = TinyModel.Create();
        model.eval();
        var peft = PeftModel.Inject(model, Config() with { UseCayleyNeumann = false });
        MethodKit.Perturb(peft, 0.3);
        var x = TinyModel.Input();
        var expected = model.forward(x).detach().clone();
        peft.Save(dir);
        var path = Path.Combine(dir, "adapter_config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json.Remove("use_cayley_neumann");
        json.Remove("num_cayley_neumann_terms");
        json.Remove("peft_version");
        File.WriteAllText(path, json.ToJsonString());
        var fresh = TinyModel.Create();
        fresh.eval();
        var warnings = new List<string>();
        var loaded = PeftModel.Load(fresh, dir, warnings: warnings);
        Assert.False(((OftConfig)loaded.ActiveConfig).UseCayleyNeumann);
        Assert.Contains(warnings, w => w.Contains("exact Cayley"));
        Assert.True(MethodKit.MaxDiff(expected, fresh.forward(x)) < 1e-6);
    }

    [Fact]
    public void Wrong_options_are_named()
    {
        var e = Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { R = 2 }));
        Assert.Contains("oft_block_size", e.Message);
        Assert.Contains("r (2)", e.Message);
        Assert.Contains("num_cayley_neumann_terms", Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Config() with { NumCayleyNeumannTerms = 0 })).Message);
    }
}
