namespace QuantumPeft.Tuners.FourierFT;

/// <summary>Registers FourierFT ("FOURIERFT") with <see cref="PeftRegistry"/>.</summary>
public sealed class FourierFTMethod : PeftMethod
{
    public override string PeftType => FourierFTConfig.TypeName;
    public override Type ConfigType => typeof(FourierFTConfig);
    public override IReadOnlyList<string> KeyInfixes => ["fourierft_spectrum"];

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (FourierFTConfig)config;
        var n = c.FrequenciesFor(modulePath, inFeatures, outFeatures);
        if (n < 1 || (long)n >= (long)inFeatures * outFeatures)
            throw new ArgumentException($"n_frequency = {n} for '{modulePath}' must be at least 1 and below in * out = {(long)inFeatures * outFeatures}.", nameof(config));
        return new FourierFTBranch(inFeatures, outFeatures, n, c.Scaling, c.RandomLocSeed!.Value, c.Ifft2Norm, c.InitWeights);
    }
}
