using static TorchSharp.torch;

namespace QuantumPeft.Tuners.Oft;

/// <summary>Registers OFT ("OFT") with <see cref="PeftRegistry"/>.</summary>
public sealed class OftMethod : PeftMethod
{
    public override string PeftType => OftConfig.TypeName;
    public override Type ConfigType => typeof(OftConfig);
    public override IReadOnlyList<string> KeyInfixes => ["oft_R.", "oft_r"];

    /// <summary>The rotation formula a config asks for (peft_version decides the Cayley-Neumann series).</summary>
    public static OftRotationFormula FormulaOf(OftConfig c) =>
        !c.UseCayleyNeumann ? OftRotationFormula.Cayley : c.UsesPeft018Series ? OftRotationFormula.Neumann018 : OftRotationFormula.NeumannBefore018;

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (OftConfig)config;
        int blocks, size;
        // peft's update_layer: the given one of r / oft_block_size is moved to the nearest divisor of in_features, with a warning.
        if (c.R == 0)
        {
            size = c.OftBlockSize;
            if (inFeatures % size != 0 || size > inFeatures)
            {
                var adjusted = OftBranch.Adjust(inFeatures, size);
                PeftWarnings.Report(warnings, $"{modulePath}: invalid oft_block_size ({size}) for in_features {inFeatures}; adjusted oft_block_size to {adjusted}.");
                size = adjusted;
            }
            blocks = inFeatures / size;
        }
        else
        {
            blocks = c.R;
            if (inFeatures % blocks != 0 || blocks > inFeatures)
            {
                var adjusted = OftBranch.Adjust(inFeatures, blocks);
                PeftWarnings.Report(warnings, $"{modulePath}: invalid r ({blocks}) for in_features {inFeatures}; adjusted r to {adjusted}.");
                blocks = adjusted;
            }
            size = inFeatures / blocks;
        }
        return new OftBranch(inFeatures, outFeatures, blocks, size, FormulaOf(c), c.NumCayleyNeumannTerms, c.BlockShare, c.Coft, c.Eps, c.InitWeights);
    }

    // peft's OFT Conv2d rotates unfolded input patches and folds them back (overlapping patches add up), which is not its merged
    // kernel W R^T, so an adapter trained there has no one meaning here; refuse rather than pick one.
    public override AdapterBranch CreateConv2dBranch(PeftConfig config, string modulePath, Conv2dShape conv, ICollection<string>? warnings) =>
        throw new ArgumentException($"OFT cannot adapt '{modulePath}', a Conv2d ({conv.InChannels} -> {conv.OutChannels}, {conv.KernelLabel}): not implemented, because peft's " +
            "OFT on convolutions computes a different function unmerged (rotated, refolded input patches) than merged (W R^T). " +
            $"Methods that adapt Conv2d: {string.Join(", ", PeftRegistry.Conv2dMethods)}; or exclude the convolutions from target_modules.", nameof(config));

    // Loading only: say which series a pre-0.18 file is computed with (peft 0.18 changed its last term).
    public override IReadOnlyCollection<string> ImportShared(PeftConfig config, IReadOnlyList<AdapterBranch> branches,
        IReadOnlyDictionary<string, Tensor> tensors, string source, ICollection<string> warnings)
    {
        var c = (OftConfig)config;
        if (c.CayleyNeumannKeyMissing)
            warnings.Add($"{source}: adapter_config.json has no \"use_cayley_neumann\" (written by a peft before the Cayley-Neumann option): R is computed with the exact Cayley transform (I - Q)(I + Q)^-1.");
        if (FormulaOf(c) == OftRotationFormula.NeumannBefore018)
            warnings.Add($"{source}: OFT adapter written by peft {(c.PeftVersion is null ? "older than 0.18 (no peft_version)" : c.PeftVersion)}: " +
                $"R is computed with that version's Cayley-Neumann series I + 2(Q + ... + Q^{c.NumCayleyNeumannTerms - 1}), not 0.18's (last term Q^{c.NumCayleyNeumannTerms - 1} once).");
        return [];
    }
}
