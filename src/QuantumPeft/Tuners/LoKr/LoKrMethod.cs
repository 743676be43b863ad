namespace QuantumPeft.Tuners.LoKr;

/// <summary>Registers LoKr ("LOKR") with <see cref="PeftRegistry"/>.</summary>
public sealed class LoKrMethod : PeftMethod
{
    public override string PeftType => LoKrConfig.TypeName;
    public override Type ConfigType => typeof(LoKrConfig);
    public override IReadOnlyList<string> KeyInfixes => ["lokr_w1", "lokr_w2"];

    public override bool SupportsConv2d => true;

    public override AdapterBranch CreateConv2dBranch(PeftConfig config, string modulePath, Conv2dShape conv, ICollection<string>? warnings)
    {
        var c = (LoKrConfig)config;
        // peft turns use_effective_conv2d off for 1 x 1 kernels; for larger ones it means the Tucker form (lokr_t2), not implemented here.
        if (c.UseEffectiveConv2d && !conv.IsPointwise)
            throw new ArgumentException($"LOKR on '{modulePath}' ({conv.KernelLabel} Conv2d): use_effective_conv2d = true (the Tucker form with lokr_t2) is not implemented; set it to false.", nameof(config));
        var r = PatternKeys.Find(c.RankPattern, modulePath, c.R);
        var alpha = PatternKeys.Find(c.AlphaPattern, modulePath, c.Alpha);
        return new LoKrBranch(conv, r, alpha, c.DecomposeBoth, c.DecomposeFactor, c.InitMode, c.RankDropout, c.ModuleDropout, c.RankDropoutScale);
    }

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (LoKrConfig)config;
        // peft's rank_pattern / alpha_pattern: per-module r and alpha, keys matched as get_pattern_key does.
        var r = PatternKeys.Find(c.RankPattern, modulePath, c.R);
        var alpha = PatternKeys.Find(c.AlphaPattern, modulePath, c.Alpha);
        return new LoKrBranch(inFeatures, outFeatures, r, alpha, c.DecomposeBoth, c.DecomposeFactor, c.InitMode, c.RankDropout, c.ModuleDropout, c.RankDropoutScale);
    }
}
