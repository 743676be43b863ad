using System.Text.Json;

namespace QuantumPeft.Tuners.Lora;

/// <summary>Registers LoRA ("LORA") with <see cref="PeftRegistry"/>.</summary>
public sealed class LoraMethod : PeftMethod
{
    public override string PeftType => LoraConfig.TypeName;
    public override Type ConfigType => typeof(LoraConfig);
    public override IReadOnlyList<string> KeyInfixes => ["lora_A.", "lora_B."];

    public override bool SupportsConv2d => true;

    public override AdapterBranch CreateConv2dBranch(PeftConfig config, string modulePath, Conv2dShape conv, ICollection<string>? warnings)
    {
        var c = (LoraConfig)config;
        WarnInit(c, warnings);
        return new LoraBranch(conv, c.R, c.Scaling, c.LoraDropout, c.ZeroInitB, seed: null);
    }

    private static void WarnInit(LoraConfig c, ICollection<string>? warnings)
    {
        if (c.InitLoraWeights.ValueKind == JsonValueKind.String)
            PeftWarnings.Report(warnings, $"init_lora_weights \"{c.InitLoraWeights.GetString()}\" is not implemented; using the default (A kaiming-uniform, B = 0).");
    }

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (LoraConfig)config;
        WarnInit(c, warnings);
        return new LoraBranch(inFeatures, outFeatures, c.R, c.Scaling, c.LoraDropout, c.ZeroInitB, seed: null); // torch.manual_seed decides, as in peft
    }
}
