namespace QuantumPeft.Tuners.AdaLora;

/// <summary>Registers AdaLoRA ("ADALORA") with <see cref="PeftRegistry"/>.</summary>
public sealed class AdaLoraMethod : PeftMethod
{
    public override string PeftType => AdaLoraConfig.TypeName;
    public override Type ConfigType => typeof(AdaLoraConfig);
    public override IReadOnlyList<string> KeyInfixes => ["lora_A", "lora_B", "lora_E"];

    /// <summary>AdaLoRA's training-time work: the orthogonality penalty in the loss and the rank allocator after each optimizer step.</summary>
    public override IAdapterTrainingHook? CreateTrainingHook(PeftModel peft, string adapterName) => new Hook(new AdaLoraRankAllocator(peft, adapterName));

    private sealed class Hook(AdaLoraRankAllocator allocator) : IAdapterTrainingHook
    {
        public TorchSharp.torch.Tensor? Regularization() => allocator.OrthogonalRegularization();
        public void AfterOptimizerStep(int step) => allocator.UpdateAndAllocate(step);
    }

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (AdaLoraConfig)config;
        var unusedR = $"r ({c.R}) is not used by AdaLoRA and is ignored; the initial rank is init_r ({c.InitR}).";
        if (c.R != 8 && !(warnings?.Contains(unusedR) ?? false)) PeftWarnings.Report(warnings, unusedR); // peft warns once, in __post_init__
        // peft's resize_modules_by_rank_pattern: a module with a rank_pattern entry holds only its kept triplets; ranknum stays init_r.
        var mask = c.MaskFor(modulePath);
        var rank = mask is null ? c.InitR : mask.Count(k => k);
        return new AdaLoraBranch(inFeatures, outFeatures, rank, c.InitR, c.Scaling, c.LoraDropout, c.InitLoraWeights.ValueKind != System.Text.Json.JsonValueKind.False);
    }
}
