namespace QuantumPeft.Tuners.IA3;

/// <summary>Registers (IA)^3 ("IA3") with <see cref="PeftRegistry"/>.</summary>
public sealed class IA3Method : PeftMethod
{
    public override string PeftType => IA3Config.TypeName;
    public override Type ConfigType => typeof(IA3Config);
    public override IReadOnlyList<string> KeyInfixes => ["ia3_l"];

    public override bool SupportsConv2d => true;

    public override AdapterBranch CreateConv2dBranch(PeftConfig config, string modulePath, Conv2dShape conv, ICollection<string>? warnings)
    {
        var c = (IA3Config)config;
        return new IA3Branch(conv, c.IsFeedforward(modulePath), c.InitIa3Weights);
    }

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (IA3Config)config;
        return new IA3Branch(inFeatures, outFeatures, c.IsFeedforward(modulePath), c.InitIa3Weights);
    }
}
