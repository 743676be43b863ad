using System.Text.Json;

namespace QuantumPeft.Tuners.Oft;

/// <summary>OFT settings (peft_type "OFT"), field for field as peft's current <c>OFTConfig</c> (0.16 and later) writes them.</summary>
/// <remarks>
/// The input of each target is rotated by a block-diagonal orthogonal R (r blocks of oft_block_size; give exactly one of the two):
/// y = W (R^T x) + b, i.e. merged W' = W R^T. Each block is the Cayley transform of a skew-symmetric Q built from
/// oft_block_size (oft_block_size - 1) / 2 trained numbers: exactly (I - Q)(I + Q)^-1, or peft's Cayley-Neumann series.
/// peft 0.18 changed that series' last term; files without "peft_version" (older) are computed with the older series.
/// </remarks>
public sealed record OftConfig : PeftConfig, IFanInFanOutConfig
{
    /// <summary>"OFT".</summary>
    public const string TypeName = "OFT";

    /// <summary>The peft version whose formulas new adapters follow (written as peft_version).</summary>
    public const string FormulaVersion = "0.18.0";

    /// <summary>A new config follows peft 0.18's formulas (a file without peft_version is read as older).</summary>
    public OftConfig() { PeftVersion = FormulaVersion; }

    public override string PeftType => TypeName;

    /// <summary>Number of blocks per layer (0: derived from <see cref="OftBlockSize"/>).</summary>
    public int R { get; init; }

    /// <summary>Block size (0: derived from <see cref="R"/>); peft's default 32.</summary>
    public int OftBlockSize { get; init; } = 32;

    /// <summary>peft's multiplicative block dropout; peft's Linear forward does not apply it, so neither does this library.</summary>
    public double ModuleDropout { get; init; }

    /// <summary>Constrained OFT: each block's skew matrix is projected onto a Frobenius ball of radius eps / sqrt(blocks).</summary>
    public bool Coft { get; init; }

    /// <summary>COFT's radius (peft: 6e-5).</summary>
    public double Eps { get; init; } = 6e-5;

    /// <summary>One block shared by all blocks of a layer.</summary>
    public bool BlockShare { get; init; }

    /// <summary>true (peft's default): the Cayley-Neumann series; false: the exact Cayley transform.</summary>
    public bool UseCayleyNeumann { get; init; } = true;

    /// <summary>Terms of the Cayley-Neumann series (peft: 5).</summary>
    public int NumCayleyNeumannTerms { get; init; } = 5;

    /// <summary>peft's fan_in_fan_out; the targeted layers decide it (true for GPT-2's Conv1D).</summary>
    public bool FanInFanOut { get; init; }

    /// <inheritdoc/>
    public PeftConfig WithFanInFanOut(bool value) => this with { FanInFanOut = value };

    /// <summary>Only "none" is supported.</summary>
    public string Bias { get; init; } = "none";

    /// <summary>true (default): R = I at start (the model is unchanged); false: parameters N(0, 0.1).</summary>
    public bool InitWeights { get; init; } = true;

    public JsonElement? LayersToTransform { get; init; }
    public JsonElement? LayersPattern { get; init; }

    /// <summary>True when the config came from a file without "use_cayley_neumann" (a peft that only had the exact Cayley transform).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool CayleyNeumannKeyMissing { get; init; }

    // A file written before use_cayley_neumann existed used the exact Cayley transform, whatever today's default is.
    protected override PeftConfig AfterRead(System.Text.Json.Nodes.JsonObject file) =>
        file.ContainsKey("use_cayley_neumann") ? this : this with { UseCayleyNeumann = false, CayleyNeumannKeyMissing = true };

    /// <summary>True when the file was written by peft 0.18 or later (the newer Cayley-Neumann series).</summary>
    public bool UsesPeft018Series => ParseVersion(PeftVersion) is { } v && (v.Item1 > 0 || v.Item2 >= 18);

    private static (int, int)? ParseVersion(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var parts = text.Split('.', '+', '-');
        return parts.Length >= 2 && int.TryParse(parts[0], out var major) && int.TryParse(new string(parts[1].TakeWhile(char.IsDigit).ToArray()), out var minor)
            ? (major, minor) : null;
    }

    public override void Validate()
    {
        base.Validate();
        // peft's OFTConfig.__post_init__: exactly one of r and oft_block_size is non-zero.
        if (R < 0) throw new ArgumentException($"r must be non-negative, got {R}.", nameof(R));
        if (OftBlockSize < 0) throw new ArgumentException($"oft_block_size must be non-negative, got {OftBlockSize}.", nameof(OftBlockSize));
        if (R == 0 && OftBlockSize == 0) throw new ArgumentException("Either r or oft_block_size must be non-zero (both are 0).", nameof(OftBlockSize));
        if (R != 0 && OftBlockSize != 0)
            throw new ArgumentException($"Give either r ({R}) or oft_block_size ({OftBlockSize}), not both: r x oft_block_size = in_features. Set the other to 0.", nameof(R));
        if (ModuleDropout is < 0 or >= 1) throw new ArgumentException($"module_dropout must be in [0, 1), got {ModuleDropout}.", nameof(ModuleDropout));
        if (!(Eps > 0)) throw new ArgumentException($"eps must be positive, got {Eps}.", nameof(Eps));
        if (NumCayleyNeumannTerms < 1) throw new ArgumentException($"num_cayley_neumann_terms must be at least 1, got {NumCayleyNeumannTerms}.", nameof(NumCayleyNeumannTerms));
        if (Bias != "none") throw new ArgumentException($"bias \"{Bias}\" is not supported; use \"none\".", nameof(Bias));
        if (LayersToTransform is { ValueKind: not JsonValueKind.Null }) throw new ArgumentException("layers_to_transform is not supported; select layers with target_modules (a regex).", nameof(LayersToTransform));
    }
}
