using System.Text.Json.Nodes;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.AdaLora;
using QuantumPeft.Tuners.FourierFT;
using QuantumPeft.Tuners.IA3;
using QuantumPeft.Tuners.LoKr;
using QuantumPeft.Tuners.Oft;
using QuantumPeft.Tuners.Vera;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

/// <summary>Every baseline method on GPT-2's Conv1D layers: fan_in_fan_out follows the layers, merge and save / load keep the logits.</summary>
public sealed class Gpt2MethodsTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-gpt2-methods-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    static readonly Tensor Ids = TinyGpt2.Ids([3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]);

    public static TheoryData<string> Methods => ["FOURIERFT", "LOKR", "VERA", "IA3", "OFT", "ADALORA"];

    static PeftConfig Config(string method)
    {
        var t = ModuleSelector.Of("c_attn", "c_fc");
        return method switch
        {
            "FOURIERFT" => new FourierFTConfig { NFrequency = 30, Scaling = 10, TargetModules = t, TaskType = "CAUSAL_LM" },
            "LOKR" => new LoKrConfig { R = 2, Alpha = 4, TargetModules = t },
            "VERA" => new VeraConfig { R = 4, TargetModules = t },
            "IA3" => new IA3Config { TargetModules = t, FeedforwardModules = ModuleSelector.Of("c_fc") },
            "OFT" => new OftConfig { OftBlockSize = 4, TargetModules = t },
            "ADALORA" => new AdaLoraConfig { InitR = 3, TargetR = 2, TotalStep = 10, TargetModules = t },
            _ => throw new ArgumentException(method),
        };
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void Conv1D_targets_merge_and_round_trip(string method)
    {
        using var model = TinyGpt2.Model();
        model.eval();
        var peft = PeftModel.Inject(model, Config(method));
        Assert.Equal(4, peft.AdaptedLayers.Count);
        if (peft.ActiveConfig is IFanInFanOutConfig f) Assert.True(f.FanInFanOut); // peft's rule: Conv1D targets set it
        MethodKit.Perturb(peft, 0.2);
        using var _ = no_grad();
        var adapted = model.Forward(Ids).detach().clone();
        peft.Merge();
        Assert.True(MethodKit.MaxDiff(adapted, model.Forward(Ids)) < 1e-4);
        peft.Unmerge();
        peft.Save(dir);
        if (peft.ActiveConfig is IFanInFanOutConfig)
            Assert.True((bool)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!["fan_in_fan_out"]!);
        using var fresh = TinyGpt2.Model();
        fresh.eval();
        var warnings = new List<string>();
        PeftModel.Load(fresh, dir, warnings: warnings);
        Assert.Empty(warnings);
        Assert.True(MethodKit.MaxDiff(adapted, fresh.Forward(Ids)) < 1e-5);
    }
}
