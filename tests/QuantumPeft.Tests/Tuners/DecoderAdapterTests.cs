using System.Text.Json;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Gpt2;
using QuantumPeft.Models.Layers;
using QuantumPeft.Stiefel;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners;

/// <summary>Adapters on GPT-2's Conv1D layers (peft's fan_in_fan_out), the c_attn[q,v] parts form, and peft's CAUSAL_LM files.</summary>
public sealed class DecoderAdapterTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-dec-adapter-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
    static readonly Tensor Ids = TinyGpt2.Ids([3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]);

    static LoraConfig Lora(params string[] targets) => new()
    {
        R = 2, LoraAlpha = 4, TargetModules = ModuleSelector.Parse(string.Join(",", targets)),
        InitLoraWeights = JsonSerializer.SerializeToElement(false), TaskType = "CAUSAL_LM",
    };

    static QuantumPeftConfig Quantum(string targets) => new()
    {
        R = 2, Alpha = 4, TargetModules = targets == "all-linear" ? ModuleSelector.AllLinear : ModuleSelector.Parse(targets), InitLambda = "random", Seed = 3,
        StiefelU = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1, InitScale = 0.5 },
        StiefelV = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1, InitScale = 0.5 },
    };

    [Fact]
    public void Lora_on_conv1d_adds_its_update_and_merges_it_transposed()
    {
        using var model = TinyGpt2.Model();
        using var _ = no_grad();
        var before = model.Forward(Ids);
        var convWeight = ((Conv1D)ModuleTreeConv(model, "transformer.h.0.attn.c_attn")).Weight.detach().clone();
        var peft = PeftModel.Inject(model, Lora("c_attn"));
        Assert.True(((LoraConfig)peft.ActiveConfig).FanInFanOut);   // peft's rule: Conv1D targets set fan_in_fan_out
        Assert.Equal(2, peft.AdaptedLayers.Count);
        var adapted = model.Forward(Ids);
        Assert.True(MaxDiff(adapted, before) > 1e-3);

        // Independent check of layer 0: x W + b + s x A^T B^T, with W stored [in, out].
        var layer = peft.AdaptedLayers[0].Layer;
        var lora = (LoraBranch)layer["default"];
        var x = randn(3, TinyGpt2.Embd);
        var conv = (Conv1D)layer.BaseLayer;
        var expected = x.matmul(conv.Weight) + conv.Bias + x.matmul(lora.A.t()).matmul(lora.B.t()) * lora.Scaling;
        Assert.True(MaxDiff(layer.forward(x), expected) < 1e-5);

        peft.Merge();
        Assert.True(MaxDiff(model.Forward(Ids), adapted) < 1e-4);
        Assert.True(MaxDiff(conv.Weight, convWeight + lora.B.matmul(lora.A).t() * lora.Scaling) < 1e-6);
        peft.Unmerge();
        Assert.True(MaxDiff(conv.Weight, convWeight) < 1e-6);
        peft.MergeAndUnload();
        Assert.True(MaxDiff(model.Forward(Ids), adapted) < 1e-4);
        Assert.IsType<Conv1D>(ModuleTreeConv(model, "transformer.h.0.attn.c_attn"));
    }

    static TorchSharp.torch.nn.Module ModuleTreeConv(Gpt2LMHeadModel model, string path) => ModuleTree.Get(model, path);

    [Fact]
    public void Quantum_on_all_linear_skips_the_head_and_equals_its_merged_weights()
    {
        using var model = TinyGpt2.Model();
        using var _ = no_grad();
        var peft = PeftModel.Inject(model, Quantum("all-linear"));
        var paths = peft.AdaptedLayers.Select(l => l.Path).ToList();
        Assert.Equal(4 * TinyGpt2.Layers, paths.Count);
        Assert.DoesNotContain("lm_head", paths);
        Assert.Contains("transformer.h.1.mlp.c_proj", paths);
        var adapted = model.Forward(Ids);
        peft.Merge();
        Assert.True(MaxDiff(model.Forward(Ids), adapted) < 1e-4);
    }

    [Fact]
    public void A_peft_causal_lm_lora_file_for_gpt2_loads_and_merges()
    {
        using var model = TinyGpt2.Model();
        // adapter_config.json as peft 0.13 writes it for GPT-2 (fan_in_fan_out true, task_type CAUSAL_LM).
        var adapter = Path.Combine(dir, "peft-gpt2");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), """
        {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "gpt2", "bias": "none", "fan_in_fan_out": true,
         "inference_mode": true, "init_lora_weights": true, "layer_replication": null, "layers_pattern": null, "layers_to_transform": null,
         "loftq_config": {}, "lora_alpha": 16, "lora_dropout": 0.05, "megatron_config": null, "megatron_core": "megatron.core",
         "modules_to_save": null, "peft_type": "LORA", "r": 4, "rank_pattern": {}, "revision": null, "target_modules": ["c_attn", "c_proj"],
         "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false}
        """);
        manual_seed(11);
        var tensors = new Dictionary<string, Tensor>();
        var expected = new Dictionary<string, (Tensor A, Tensor B)>();
        foreach (var (path, inF, outF) in new[] { ("transformer.h.0.attn.c_attn", 16, 48), ("transformer.h.0.attn.c_proj", 16, 16), ("transformer.h.0.mlp.c_proj", 64, 16),
                                                   ("transformer.h.1.attn.c_attn", 16, 48), ("transformer.h.1.attn.c_proj", 16, 16), ("transformer.h.1.mlp.c_proj", 64, 16) })
        {
            var a = randn(4, inF) * 0.3;
            var b = randn(outF, 4) * 0.3;
            tensors[$"base_model.model.{path}.lora_A.weight"] = a;
            tensors[$"base_model.model.{path}.lora_B.weight"] = b;
            expected[path] = (a, b);
        }
        SafetensorsFile.Write(Path.Combine(adapter, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });

        using var _ = no_grad();
        var baseWeights = model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());
        var warnings = new List<string>();
        var peft = PeftModel.Load(model, adapter, warnings: warnings);
        Assert.Empty(warnings);
        Assert.Equal(6, peft.AdaptedLayers.Count);
        var adapted = model.Forward(Ids);

        // The same update written into the base weights by hand: W[in, out] += (16 / 4) * (B A)^T.
        using var reference = TinyGpt2.Model();
        foreach (var (k, t) in reference.state_dict()) t.copy_(baseWeights[k]);
        foreach (var (path, (a, b)) in expected)
            ((Conv1D)ModuleTree.Get(reference, path)).Weight.add_(b.matmul(a).t() * 4.0);
        Assert.True(MaxDiff(adapted, reference.Forward(Ids)) < 1e-4);

        peft.MergeAndUnload();
        Assert.True(MaxDiff(model.Forward(Ids), reference.Forward(Ids)) < 1e-4);
    }

    [Fact]
    public void A_peft_causal_lm_lora_file_for_llama_loads_merges_and_saves_as_a_plain_folder()
    {
        var baseDir = Path.Combine(dir, "llama");
        var weights = QuantumPeft.Tests.Models.Llama.TinyLlama.Write(baseDir, QuantumPeft.Tests.Models.Llama.TinyLlama.Config("llama"));
        var adapter = Path.Combine(dir, "peft-llama");
        Directory.CreateDirectory(adapter);
        // adapter_config.json as peft 0.13 writes it for a LLaMA CAUSAL_LM LoRA on q_proj and v_proj.
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), """
        {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "bias": "none",
         "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "layer_replication": null, "layers_pattern": null,
         "layers_to_transform": null, "loftq_config": {}, "lora_alpha": 32, "lora_dropout": 0.05, "megatron_config": null,
         "megatron_core": "megatron.core", "modules_to_save": null, "peft_type": "LORA", "r": 8, "rank_pattern": {}, "revision": null,
         "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false}
        """);
        manual_seed(21);
        var tensors = new Dictionary<string, Tensor>();
        var merged = weights.ToDictionary(p => p.Key, p => p.Value.clone());
        foreach (var layer in new[] { 0, 1 })
            foreach (var (proj, outF) in new[] { ("q_proj", 16), ("v_proj", 8) })
            {
                var key = $"model.layers.{layer}.self_attn.{proj}";
                var a = randn(8, 16) * 0.2;
                var b = randn(outF, 8) * 0.2;
                tensors[$"base_model.model.{key}.lora_A.weight"] = a;
                tensors[$"base_model.model.{key}.lora_B.weight"] = b;
                merged[key + ".weight"] = merged[key + ".weight"] + b.matmul(a) * (32.0 / 8);
            }
        SafetensorsFile.Write(Path.Combine(adapter, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var handMerged = Path.Combine(dir, "hand-merged");
        Directory.CreateDirectory(handMerged);
        File.WriteAllText(Path.Combine(handMerged, "config.json"), File.ReadAllText(Path.Combine(baseDir, "config.json")));
        SafetensorsFile.Write(Path.Combine(handMerged, "model.safetensors"), merged, new Dictionary<string, string> { ["format"] = "pt" });

        using var _ = no_grad();
        var ids = QuantumPeft.Tests.Models.Llama.TinyLlama.Ids(9);
        var lm = QuantumPeft.Models.Decoder.CausalLMs.Load(baseDir);
        var warnings = new List<string>();
        var peft = PeftModel.Load(lm.Module, adapter, warnings: warnings);
        Assert.Empty(warnings);
        Assert.Equal(4, peft.AdaptedLayers.Count);
        var expected = QuantumPeft.Models.Decoder.CausalLMs.Load(handMerged).Forward(ids);
        Assert.True(MaxDiff(lm.Forward(ids), expected) < 1e-4);

        var outDir = Path.Combine(dir, "merged");
        var (code, _) = QuantumPeft.Tests.Cli.CliCommandTests.Run(new QuantumPeft.Cli.Commands.MergeCommand(), "merge", "--model", baseDir, "--adapter", adapter, "--out", outDir);
        Assert.Equal(0, code);
        Assert.True(MaxDiff(QuantumPeft.Models.Decoder.CausalLMs.Load(outDir).Forward(ids), expected) < 1e-4);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_parameter_report_counts_a_tied_head_once_as_peft_does(bool tied)
    {
        using var model = TinyGpt2.Model(tied);
        // GPT-2 by hand: wte, wpe, per layer two LayerNorms, c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj; ln_f; lm_head only when untied.
        const int e = TinyGpt2.Embd, v = TinyGpt2.Vocab;
        long perLayer = 2 * 2 * e + (e * 3 * e + 3 * e) + (e * e + e) + (e * 4 * e + 4 * e) + (4 * e * e + e);
        long expected = v * e + TinyGpt2.Positions * e + TinyGpt2.Layers * perLayer + 2 * e + (tied ? 0 : v * e);
        Assert.Equal(expected, ModuleTree.CountParameters(model));
        var names = ModuleTree.DistinctParameters(model).Select(p => p.Name).ToList();
        Assert.Equal(!tied, names.Contains("lm_head.weight"));
        Assert.Contains("transformer.wte.weight", names);
        var peft = PeftModel.Inject(model, Lora("c_attn"));
        var report = peft.Report();
        Assert.Equal(expected + report.AdapterParams, report.TotalParams);
        Assert.Equal(report.AdapterParams, report.TrainableParams);
    }

    [Fact]
    public void A_tied_head_stays_tied_when_the_model_changes_type()
    {
        using var model = QuantumPeft.Models.Decoder.CausalLMs.Place(TinyGpt2.Model(), new QuantumPeft.Models.Decoder.DecoderLoadOptions(DType: ScalarType.Float64));
        var names = ModuleTree.DistinctParameters(model).Select(p => p.Name).ToList();
        Assert.DoesNotContain("lm_head.weight", names);
    }

    [Fact]
    public void Q_and_v_parts_of_c_attn_get_their_own_updates_and_leave_k_alone()
    {
        using var model = TinyGpt2.Model();
        using var _ = no_grad();
        var peft = PeftModel.Inject(model, Lora("c_attn[q,v]"));
        var layer = peft.AdaptedLayers[0].Layer;
        var fused = Assert.IsType<FusedPartsBranch>(layer["default"]);
        Assert.Equal(["q", "v"], fused.Parts.Select(p => p.Part));
        // Two rank-2 LoRAs on 16 -> 16 thirds, per layer.
        Assert.Equal(2 * TinyGpt2.Layers * LoraBranch.CountParameters(16, 16, 2), peft.Report().AdapterParams);
        var delta = fused.DeltaWeight();
        Assert.Equal(new long[] { 48, 16 }, delta.shape);
        Assert.Equal(0, delta[16..32].abs().max().item<float>());
        Assert.True(delta[..16].abs().max().item<float>() > 1e-3 && delta[32..].abs().max().item<float>() > 1e-3);
        var x = randn(5, 16);
        var q = (LoraBranch)fused.Parts.First().Branch;
        Assert.True(MaxDiff(fused.Forward(x)[.., ..16], q.Forward(x)) < 1e-6);

        var adapted = model.Forward(Ids);
        var saved = Path.Combine(dir, "qv");
        peft.Save(saved);
        var keys = SafetensorsFile.ReadHeader(Path.Combine(saved, "adapter_model.safetensors")).Entries.Select(e => e.Name).ToList();
        Assert.Contains("base_model.model.transformer.h.0.attn.c_attn.q.lora_A.weight", keys);
        Assert.Contains("base_model.model.transformer.h.1.attn.c_attn.v.lora_B.weight", keys);
        Assert.Contains("c_attn[q,v]", File.ReadAllText(Path.Combine(saved, "adapter_config.json")));

        using var fresh = TinyGpt2.Model();
        PeftModel.Load(fresh, saved);
        Assert.True(MaxDiff(fresh.Forward(Ids), adapted) < 1e-5);
        peft.Merge();
        Assert.True(MaxDiff(model.Forward(Ids), adapted) < 1e-4);
    }

    [Fact]
    public void Quantum_q_v_parts_export_to_a_plain_c_attn_lora_that_gives_the_same_logits()
    {
        using var model = TinyGpt2.Model();
        using var _ = no_grad();
        var peft = PeftModel.Inject(model, Quantum("c_attn[q,v]"));
        var adapted = model.Forward(Ids);
        var quantumDir = Path.Combine(dir, "quantum");
        peft.Save(quantumDir);
        var loraDir = Path.Combine(dir, "lora");
        var result = LoraExport.Export(quantumDir, loraDir);
        Assert.Equal(4, result.Rank);   // two parts x K = 2

        using var fresh = TinyGpt2.Model();
        var loaded = PeftModel.Load(fresh, loraDir);
        Assert.Equal(["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"], loaded.AdaptedLayers.Select(l => l.Path));
        Assert.True(MaxDiff(fresh.Forward(Ids), adapted) < 1e-4);
    }

    [Fact]
    public void Malformed_parts_targets_are_errors_naming_the_entry()
    {
        Assert.Contains("unknown part 'x'", Assert.Throws<ArgumentException>(() => ModuleSelector.Parse("c_attn[q,x]")).Message);
        Assert.Contains("malformed", Assert.Throws<ArgumentException>(() => ModuleSelector.Parse("c_attn[q,v")).Message);
        using var model = TinyGpt2.Model();
        var e = Assert.Throws<ArgumentException>(() => PeftModel.Inject(model, Lora("c_proj[q,v]")));
        Assert.Contains("divisible by 3", e.Message);
    }
}
