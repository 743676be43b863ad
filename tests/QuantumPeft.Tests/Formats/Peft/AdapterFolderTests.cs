using System.Text.Json;
using System.Text.Json.Nodes;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Tests.Tuners;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Formats.Peft;

public sealed class AdapterFolderTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-adapter-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    private static LoraConfig RandomLora() => InjectionTests.Lora("query", "value") with
    {
        InitLoraWeights = JsonSerializer.SerializeToElement(false), ModulesToSave = ["classifier"], BaseModelNameOrPath = "tiny",
    };

    private static QuantumPeftConfig RandomQuantum() => InjectionTests.Quantum("query", "value", "fc1") with { InitLambda = "random", ModulesToSave = ["classifier"] };

    private static void Perturb(PeftModel peft)
    {
        using var _ = torch.no_grad();
        foreach (var p in peft.OtherTrainableParameters()) p.add_(0.05);
        foreach (var p in peft.AdapterParameters()) p.add_(0.01);
    }

    [Fact]
    public void LoraKeysAreExactlyPefts()
    {
        var peft = PeftModel.Inject(TinyModel.Create(), RandomLora());
        peft.Save(dir);
        var (tensors, metadata) = SafetensorsFile.ReadWithMetadata(Path.Combine(dir, "adapter_model.safetensors"));
        var expected = new List<string> { "base_model.model.classifier.bias", "base_model.model.classifier.weight" };
        foreach (var l in new[] { "0", "1" })
            foreach (var m in new[] { "query", "value" })
                expected.AddRange([$"base_model.model.layers.{l}.{m}.lora_A.weight", $"base_model.model.layers.{l}.{m}.lora_B.weight"]);
        Assert.Equal(expected.Order(StringComparer.Ordinal), tensors.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([2, 8], tensors["base_model.model.layers.0.query.lora_A.weight"].shape);
        Assert.Equal([8, 2], tensors["base_model.model.layers.0.query.lora_B.weight"].shape);
        Assert.Equal("pt", metadata["format"]);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal("LORA", (string)json["peft_type"]!);
        Assert.Equal(2, (int)json["r"]!);
        Assert.Equal(4.0, (double)json["lora_alpha"]!);
        Assert.Equal("none", (string)json["bias"]!);
        Assert.True((bool)json["inference_mode"]!);
        Assert.False((bool)json["use_rslora"]!);
        Assert.False((bool)json["fan_in_fan_out"]!);
        Assert.Equal(["query", "value"], json["target_modules"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(["classifier"], json["modules_to_save"]!.AsArray().Select(n => (string)n!));
        foreach (var key in new[] { "base_model_name_or_path", "task_type", "revision", "lora_dropout", "init_lora_weights", "layers_to_transform",
                                    "layers_pattern", "rank_pattern", "alpha_pattern", "use_dora", "exclude_modules", "megatron_core", "loftq_config" })
            Assert.True(json.ContainsKey(key), key);
        Assert.Equal(json.Select(p => p.Key).Order(StringComparer.Ordinal), json.Select(p => p.Key)); // sorted, as peft writes
    }

    [Fact]
    public void SaveLoadRoundTripIsExact()
    {
        foreach (PeftConfig config in new PeftConfig[] { RandomLora(), RandomQuantum() })
        {
            var sub = Path.Combine(dir, config.PeftType);
            var model = TinyModel.Create();
            var peft = PeftModel.Inject(model, config);
            Perturb(peft);
            var x = TinyModel.Input();
            var expected = model.forward(x).detach().clone();
            peft.Save(sub);

            var fresh = TinyModel.Create();
            var warnings = new List<string>();
            var loaded = PeftModel.Load(fresh, sub, warnings: warnings);
            Assert.Empty(warnings);
            Assert.Equal(config.PeftType, loaded.ActiveConfig.PeftType);
            // Every saved number comes back bit for bit; outputs agree to float32 kernel rounding.
            var saved = peft.AdapterStateDict();
            foreach (var (k, t) in loaded.AdapterStateDict()) Assert.True(InjectionTests.MaxDiff(saved[k], t) == 0, k);
            Assert.Equal(saved.Count, loaded.AdapterStateDict().Count);
            Assert.True(InjectionTests.MaxDiff(expected, fresh.forward(x)) < 1e-6);
            Assert.Equal(0, loaded.Report().TrainableParams); // inference mode
            var trainable = PeftModel.Load(TinyModel.Create(), sub, isTrainable: true);
            Assert.Equal(peft.Report().TrainableParams, trainable.Report().TrainableParams);
        }
    }

    [Fact]
    public void QuantumKeysUseDocumentedSuffixes()
    {
        PeftModel.Inject(TinyModel.Create(), RandomQuantum()).Save(dir);
        var keys = SafetensorsFile.Read(Path.Combine(dir, "adapter_model.safetensors")).Keys.ToList();
        Assert.Contains("base_model.model.layers.0.query.qpeft_lambda", keys);
        Assert.Contains(keys, k => k.StartsWith("base_model.model.layers.0.query.qpeft_U.", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.StartsWith("base_model.model.layers.1.mlp.fc1.qpeft_V.", StringComparison.Ordinal));
        var config = (QuantumPeftConfig)PeftConfig.Load(Path.Combine(dir, "adapter_config.json"));
        Assert.Equal("QUANTUM_PEFT", config.PeftType);
        Assert.Equal(RandomQuantum().StiefelU, config.StiefelU);
        Assert.Contains("\"kind\": \"pauli\"", File.ReadAllText(Path.Combine(dir, "adapter_config.json")));
    }

    [Fact]
    public void ExportToLoraGivesTheSameOutputs()
    {
        var model = TinyModel.Create();
        var peft = PeftModel.Inject(model, RandomQuantum());
        Perturb(peft);
        var x = TinyModel.Input();
        var expected = model.forward(x).detach().clone();
        var q = Path.Combine(dir, "q");
        var l = Path.Combine(dir, "l");
        peft.Save(q);
        var result = LoraExport.Export(q, l);
        Assert.Equal(6, result.Modules);
        var fresh = TinyModel.Create();
        var lora = PeftModel.Load(fresh, l);
        var lc = Assert.IsType<LoraConfig>(lora.ActiveConfig);
        Assert.Equal(1.0, lc.Scaling);
        Assert.True(InjectionTests.MaxDiff(expected, fresh.forward(x)) < 1e-5);
    }

    [Fact]
    public void UnknownConfigKeyIsAWarning()
    {
        var json = RandomLora().ToJson().Replace("\"bias\"", "\"shiny_new_option\": 3, \"bias\"");
        var warnings = new List<string>();
        var c = Assert.IsType<LoraConfig>(PeftConfig.FromJson(json, warnings));
        Assert.Equal(2, c.R);
        Assert.Single(warnings);
        Assert.Contains("shiny_new_option", warnings[0]);
    }

    [Fact]
    public void ReadsAConfigAsPeftWritesIt()
    {
        const string json = """
        {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "microsoft/deberta-v3-base", "bias": "none",
         "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "layer_replication": null,
         "layers_pattern": null, "layers_to_transform": null, "loftq_config": {}, "lora_alpha": 16, "lora_dropout": 0.1,
         "megatron_config": null, "megatron_core": "megatron.core", "modules_to_save": ["classifier", "pooler"], "peft_type": "LORA",
         "r": 8, "rank_pattern": {}, "revision": null, "target_modules": ["query_proj", "value_proj"], "task_type": "SEQ_CLS",
         "use_dora": false, "use_rslora": true}
        """;
        var warnings = new List<string>();
        var c = Assert.IsType<LoraConfig>(PeftConfig.FromJson(json, warnings));
        Assert.Equal(8, c.R);
        Assert.Equal(16 / Math.Sqrt(8), c.Scaling, 12);
        Assert.Equal(["query_proj", "value_proj"], c.TargetModules!.Names!);
        Assert.Equal(0.1, c.LoraDropout);
        Assert.Empty(warnings);
        var regex = Assert.IsType<LoraConfig>(PeftConfig.FromJson(json.Replace("[\"query_proj\", \"value_proj\"]", "\".*\\\\.(query|value)_proj\"")));
        Assert.Equal(@".*\.(query|value)_proj", regex.TargetModules!.Pattern);
    }

    [Fact]
    public void CorruptOrIncompleteFoldersAreRejectedWithTheirReason()
    {
        Assert.Throws<DirectoryNotFoundException>(() => PeftModel.Load(TinyModel.Create(), Path.Combine(dir, "none")));
        var peft = PeftModel.Inject(TinyModel.Create(), RandomLora());
        peft.Save(dir);
        var weights = Path.Combine(dir, "adapter_model.safetensors");
        var config = Path.Combine(dir, "adapter_config.json");
        var good = File.ReadAllBytes(weights);

        // Truncated weights.
        File.WriteAllBytes(weights, good[..(good.Length / 2)]);
        Assert.Throws<InvalidDataException>(() => PeftModel.Load(TinyModel.Create(), dir));
        // Missing weights, a pickle instead.
        File.Delete(weights);
        File.WriteAllBytes(Path.Combine(dir, "adapter_model.bin"), [1, 2, 3]);
        Assert.Contains("adapter_model.bin", Assert.Throws<FileNotFoundException>(() => PeftModel.Load(TinyModel.Create(), dir)).Message);
        File.WriteAllBytes(weights, good);
        // Broken JSON and an unknown method.
        var text = File.ReadAllText(config);
        File.WriteAllText(config, "{ not json");
        Assert.Throws<InvalidDataException>(() => PeftModel.Load(TinyModel.Create(), dir));
        File.WriteAllText(config, text.Replace("\"LORA\"", "\"BOFT\""));
        var e = Assert.Throws<InvalidDataException>(() => PeftModel.Load(TinyModel.Create(), dir));
        Assert.Contains("BOFT", e.Message);
        Assert.Contains("QUANTUM_PEFT", e.Message);
        File.WriteAllText(config, text);
        // Missing config.
        File.Delete(config);
        Assert.Throws<FileNotFoundException>(() => PeftModel.Load(TinyModel.Create(), dir));
        File.WriteAllText(config, text);

        // A missing adapter key, and an unexpected one.
        var tensors = SafetensorsFile.Read(weights);
        tensors.Remove("base_model.model.layers.1.value.lora_B.weight");
        tensors["base_model.model.layers.1.value.lora_C.weight"] = torch.zeros(2);
        SafetensorsFile.Write(weights, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var model = TinyModel.Create();
        var missing = Assert.Throws<InvalidDataException>(() => PeftModel.Load(model, dir));
        Assert.Contains("base_model.model.layers.1.value.lora_B.weight", missing.Message);
        Assert.DoesNotContain(model.named_modules(), m => m.module is AdaptedLinear); // a failed load leaves the model clean

        tensors = SafetensorsFile.Read(weights);
        tensors["base_model.model.layers.1.value.lora_B.weight"] = torch.zeros(8, 2);
        SafetensorsFile.Write(weights, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var warnings = new List<string>();
        PeftModel.Load(TinyModel.Create(), dir, warnings: warnings);
        Assert.Contains(warnings, w => w.Contains("unexpected") && w.Contains("lora_C"));
    }

    [Fact]
    public void ShapeMismatchNamesTheKeyAndBothShapes()
    {
        var peft = PeftModel.Inject(TinyModel.Create(), RandomLora());
        peft.Save(dir);
        torch.manual_seed(3);
        var wider = new TinyModel(d: 16);
        var e = Assert.Throws<InvalidDataException>(() => PeftModel.Load(wider, dir));
        Assert.Contains("layers.0.query", e.Message);
        Assert.Contains("[8, 8]", e.Message);
        Assert.Contains("[16, 16]", e.Message);

        // Without the shapes metadata (a folder written by peft) the tensor check names the key.
        var weights = Path.Combine(dir, "adapter_model.safetensors");
        SafetensorsFile.Write(weights, SafetensorsFile.Read(weights), new Dictionary<string, string> { ["format"] = "pt" });
        var e2 = Assert.Throws<InvalidDataException>(() => PeftModel.Load(new TinyModel(d: 16), dir));
        Assert.Contains("base_model.model.layers.0.query.lora_A.weight", e2.Message);
        Assert.Contains("[2, 8]", e2.Message);
        Assert.Contains("[2, 16]", e2.Message);
    }
}

public sealed class AllLinearSaveTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-all-linear-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    [Fact]
    public void AllLinearIsSavedAsTheResolvedLayersAndPrintsLikePeft()
    {
        var peft = PeftModel.Inject(TinyModel.Create(), InjectionTests.Lora() with { TargetModules = ModuleSelector.AllLinear });
        peft.Save(dir);
        var config = PeftConfig.Load(Path.Combine(dir, "adapter_config.json"));
        Assert.Equal(peft.AdaptedLayers.Select(l => l.Path).Order(StringComparer.Ordinal), config.TargetModules!.Names!.Order(StringComparer.Ordinal));
        var loaded = PeftModel.Load(TinyModel.Create(), dir);
        Assert.Equal(11, loaded.AdaptedLayers.Count);
    }
}
