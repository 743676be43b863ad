using System.Text.Json;

namespace QuantumPeft.Tuners.Vera;

/// <summary>VeRA settings (peft_type "VERA"), field for field as peft's <c>VeraConfig</c> writes them.</summary>
/// <remarks>delta y = lambda_b * (B_s (lambda_d * (A_s x))) with A [r, max_in] and B [max_out, r] shared by all adapted layers (frozen,
/// kaiming-uniform from a CPU generator seeded with projection_prng_key) and sliced per layer; only lambda_b [out] and lambda_d [r] train.</remarks>
public sealed record VeraConfig : PeftConfig, IFanInFanOutConfig
{
    /// <summary>"VERA".</summary>
    public const string TypeName = "VERA";

    public override string PeftType => TypeName;

    /// <summary>Rank of the shared projections (peft's default 256).</summary>
    public int R { get; init; } = 256;

    /// <summary>Seed of the shared projections A and B.</summary>
    public long ProjectionPrngKey { get; init; }

    /// <summary>true (default): A and B are saved in the file as <c>base_model.vera_A</c> / <c>base_model.vera_B</c>; false: regenerated from the seed on load.</summary>
    public bool SaveProjection { get; init; } = true;

    /// <summary>Dropout probability on the adapter path's input.</summary>
    public double VeraDropout { get; init; }

    /// <summary>Initial value of every lambda_d entry (lambda_b starts at zero).</summary>
    public double DInitial { get; init; } = 0.1;

    /// <summary>peft's fan_in_fan_out; the targeted layers decide it (true for GPT-2's Conv1D).</summary>
    public bool FanInFanOut { get; init; }

    /// <inheritdoc/>
    public PeftConfig WithFanInFanOut(bool value) => this with { FanInFanOut = value };

    /// <summary>Only "none" is supported.</summary>
    public string Bias { get; init; } = "none";

    /// <summary>true (default): lambda_b = 0, lambda_d = d_initial (the model starts unchanged); false: lambda_b = 1, lambda_d standard normal.</summary>
    public bool InitWeights { get; init; } = true;

    public JsonElement? LayersToTransform { get; init; }
    public JsonElement? LayersPattern { get; init; }

    public override void Validate()
    {
        base.Validate();
        if (R < 1) throw new ArgumentException($"r must be at least 1, got {R}.", nameof(R));
        if (VeraDropout is < 0 or >= 1) throw new ArgumentException($"vera_dropout must be in [0, 1), got {VeraDropout}.", nameof(VeraDropout));
        if (!double.IsFinite(DInitial)) throw new ArgumentException($"d_initial must be a finite number, got {DInitial}.", nameof(DInitial));
        if (ProjectionPrngKey < 0) throw new ArgumentException($"projection_prng_key must be a non-negative integer, got {ProjectionPrngKey}.", nameof(ProjectionPrngKey));
        if (Bias != "none") throw new ArgumentException($"bias \"{Bias}\" is not supported; use \"none\".", nameof(Bias));
        if (LayersToTransform is { ValueKind: not JsonValueKind.Null }) throw new ArgumentException("layers_to_transform is not supported; select layers with target_modules (a regex).", nameof(LayersToTransform));
    }
}
