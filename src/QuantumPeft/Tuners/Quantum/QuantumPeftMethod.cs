namespace QuantumPeft.Tuners.Quantum;

/// <summary>Registers Quantum-PEFT ("QUANTUM_PEFT") with <see cref="PeftRegistry"/>.</summary>
public sealed class QuantumPeftMethod : PeftMethod
{
    public override string PeftType => QuantumPeftConfig.TypeName;
    public override Type ConfigType => typeof(QuantumPeftConfig);
    public override IReadOnlyList<string> KeyInfixes => ["qpeft_U.", "qpeft_V.", "qpeft_lambda"];

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (QuantumPeftConfig)config;
        return new QuantumBranch(inFeatures, outFeatures, c, StableSeed.For(c.Seed, modulePath, "U"), StableSeed.For(c.Seed, modulePath, "V"));
    }
}
