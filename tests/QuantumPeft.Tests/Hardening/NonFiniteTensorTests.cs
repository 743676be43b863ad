using QuantumPeft.Formats;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Tests.Tuners;
using QuantumPeft.Tuners;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Hardening;

/// <summary>NaN and infinite values in loaded model and adapter files: a warning naming the tensor and the file; an error with --strict.</summary>
public sealed class NonFiniteTensorTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-nonfinite-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        TensorChecks.Strict = false;
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    string Gpt2Folder(string name, bool poison)
    {
        using var model = TinyGpt2.Model();
        return TinyGpt2.Write(model, Path.Combine(dir, name), tensorsEdit: t =>
        {
            if (!poison) return t;
            t["transformer.h.0.attn.c_attn.weight"][1, 2] = float.NaN;
            t["transformer.h.0.attn.c_attn.weight"][3, 4] = float.NaN;
            t["transformer.wte.weight"][0, 0] = float.NegativeInfinity;
            return t;
        });
    }

    [Fact]
    public void CheckFinite_counts_NaN_and_infinite_values_per_float_tensor()
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["a"] = tensor(new[] { 1f, float.NaN, float.PositiveInfinity, float.NaN }),
            ["b"] = ones(3, dtype: ScalarType.Float16),
            ["c"] = tensor(new[] { 0.0, double.NegativeInfinity }).to(ScalarType.BFloat16),
            ["ids"] = tensor(new long[] { 1, 2 }),
        };
        var messages = TensorChecks.CheckFinite(tensors, "f.safetensors");
        Assert.Equal(["f.safetensors: tensor 'a' holds 2 NaN and 1 infinite values (of 4)", "f.safetensors: tensor 'c' holds 1 infinite value (of 2)"], messages);
        TensorChecks.Strict = true;
        var e = Assert.Throws<InvalidDataException>(() => TensorChecks.CheckFinite(tensors, "f.safetensors"));
        Assert.Contains("'a'", e.Message);
        Assert.Contains("'c'", e.Message);
        Assert.Contains("--strict", e.Message);
        Assert.Empty(TensorChecks.CheckFinite(new Dictionary<string, Tensor> { ["b"] = tensors["b"] }, "f"));
    }

    [Fact]
    public void A_model_folder_with_NaN_weights_loads_with_a_warning_naming_them_or_fails_in_strict_mode()
    {
        var bad = Gpt2Folder("bad", poison: true);
        var log = new List<string>();
        var (model, _) = CausalLMs.LoadWithReport(bad, new DecoderLoadOptions(Log: log.Add));
        var warnings = log.Where(l => l.Contains("NaN") || l.Contains("infinite")).ToList();
        Assert.Equal(2, warnings.Count);
        Assert.Contains(warnings, w => w.StartsWith("warning: ") && w.Contains(bad) && w.Contains("'transformer.h.0.attn.c_attn.weight' holds 2 NaN values"));
        Assert.Contains(warnings, w => w.Contains("'transformer.wte.weight' holds 1 infinite value"));
        // The value did reach the model: the warning is about what is really there.
        Assert.True(model.Module.state_dict()["transformer.h.0.attn.c_attn.weight"].isnan().sum().item<long>() == 2);

        var good = Gpt2Folder("good", poison: false);
        log.Clear();
        CausalLMs.LoadWithReport(good, new DecoderLoadOptions(Log: log.Add));
        Assert.DoesNotContain(log, l => l.Contains("NaN") || l.Contains("infinite"));

        TensorChecks.Strict = true;
        var e = Assert.Throws<InvalidDataException>(() => CausalLMs.LoadWithReport(bad, new DecoderLoadOptions(Log: log.Add)));
        Assert.Contains(bad, e.Message);
        Assert.Contains("transformer.h.0.attn.c_attn.weight", e.Message);
        CausalLMs.LoadWithReport(good, new DecoderLoadOptions(Log: log.Add));   // strict passes clean files
    }

    [Fact]
    public void An_adapter_with_NaN_weights_loads_with_a_warning_naming_them_or_fails_in_strict_mode()
    {
        var adapter = Path.Combine(dir, "adapter");
        var peft = PeftModel.Inject(TinyModel.Create(), InjectionTests.Lora("query", "value"));
        peft.Save(adapter);
        var weights = Path.Combine(adapter, PeftAdapterFiles.WeightsFileName);
        var (tensors, metadata) = SafetensorsFile.ReadWithMetadata(weights);
        const string key = "base_model.model.layers.1.value.lora_A.weight";
        tensors[key][0, 0] = float.NaN;
        SafetensorsFile.Write(weights, tensors, metadata);

        var warnings = new List<string>();
        PeftModel.Load(TinyModel.Create(), adapter, warnings: warnings);
        var w = Assert.Single(warnings, x => x.Contains("NaN"));
        Assert.Equal($"{weights}: tensor '{key}' holds 1 NaN value (of 16)", w);

        TensorChecks.Strict = true;
        using var model = TinyModel.Create();
        using var input = TinyModel.Input();
        using var before = model.forward(input);
        var e = Assert.Throws<InvalidDataException>(() => PeftModel.Load(model, adapter, warnings: []));
        Assert.Contains(key, e.Message);
        Assert.Contains(weights, e.Message);
        // Refused before anything was injected: the model computes what it did.
        using var after = model.forward(input);
        Assert.Equal(0, (after - before).abs().max().item<float>());
    }

    [Fact]
    public void Qpeft_merge_warns_about_a_NaN_adapter_and_refuses_it_with_strict()
    {
        var model = Gpt2Folder("gpt2", poison: false);
        var adapter = Path.Combine(dir, "adapter");
        var lm = CausalLMs.Load(model);
        PeftModel.Inject(lm.Module, InjectionTests.Lora("c_attn")).Save(adapter);
        lm.Module.Dispose();
        var weights = Path.Combine(adapter, PeftAdapterFiles.WeightsFileName);
        var (tensors, metadata) = SafetensorsFile.ReadWithMetadata(weights);
        var key = tensors.Keys.First(k => k.Contains("lora_A"));
        tensors[key][0, 0] = float.PositiveInfinity;
        SafetensorsFile.Write(weights, tensors, metadata);

        var strictOut = Path.Combine(dir, "strict");
        var (code, stdout, stderr) = QpeftProcess.Run("merge", "--strict", "--model", model, "--adapter", adapter, "--out", strictOut);
        Assert.True(code == 1, $"exit {code}:\n{stdout}\n{stderr}");
        var error = Assert.Single(stderr.Split('\n'), l => l.StartsWith("error: "));
        Assert.Contains($"tensor '{key}' holds 1 infinite value", error);
        Assert.Contains("--strict", error);
        Assert.False(Directory.Exists(strictOut));

        var plainOut = Path.Combine(dir, "plain");
        (code, stdout, stderr) = QpeftProcess.Run("merge", "--model", model, "--adapter", adapter, "--out", plainOut);
        Assert.True(code == 0, $"exit {code}:\n{stdout}\n{stderr}");
        Assert.Contains(stderr.Split('\n'), l => l.StartsWith("warning: ") && l.Contains($"tensor '{key}' holds 1 infinite value"));
    }
}
