using QuantumPeft.Stiefel;

namespace QuantumPeft.Tuners.Quantum;

/// <summary>Registers Quantum-PEFT ("QUANTUM_PEFT") with <see cref="PeftRegistry"/>.</summary>
public sealed class QuantumPeftMethod : PeftMethod
{
    public override string PeftType => QuantumPeftConfig.TypeName;
    public override Type ConfigType => typeof(QuantumPeftConfig);
    public override IReadOnlyList<string> KeyInfixes => ["qpeft_U.", "qpeft_V.", "qpeft_lambda"];

    public override bool SupportsConv2d => true;

    public override AdapterBranch CreateConv2dBranch(PeftConfig config, string modulePath, Conv2dShape conv, ICollection<string>? warnings)
    {
        var c = (QuantumPeftConfig)config;
        return new QuantumBranch(conv, c, StableSeed.For(c.Seed, modulePath, "U"), StableSeed.For(c.Seed, modulePath, "V"));
    }

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (QuantumPeftConfig)config;
        return new QuantumBranch(inFeatures, outFeatures, c, StableSeed.For(c.Seed, modulePath, "U"), StableSeed.For(c.Seed, modulePath, "V"));
    }

    /// <summary>Lets the adapter's Pauli circuits be evaluated together, one batched circuit per shape.</summary>
    public override void AdapterCreated(IReadOnlyList<AdapterBranch> branches)
    {
        var batch = new PauliCircuitBatch();
        foreach (var branch in branches.OfType<QuantumBranch>())
        {
            batch.Add(branch.MapU);
            batch.Add(branch.MapV);
            branch.CircuitBatch = batch;
        }
    }
}
