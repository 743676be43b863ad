namespace QuantumPeft.Tuners.IA3;

/// <summary>Registers (IA)^3 ("IA3") with <see cref="PeftRegistry"/>.</summary>
public sealed class IA3Method : PeftMethod
{
    public override string PeftType => IA3Config.TypeName;
    public override Type ConfigType => typeof(IA3Config);
    public override IReadOnlyList<string> KeyInfixes => ["ia3_l"];

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (IA3Config)config;
        return new IA3Branch(inFeatures, outFeatures, c.IsFeedforward(modulePath), c.InitIa3Weights);
    }
}
