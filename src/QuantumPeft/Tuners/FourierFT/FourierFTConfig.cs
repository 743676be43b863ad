using System.Text.Json;

namespace QuantumPeft.Tuners.FourierFT;

/// <summary>FourierFT settings (peft_type "FOURIERFT"), field for field as peft's <c>FourierFTConfig</c> writes them.</summary>
/// <remarks>
/// delta W = Re(ifft2(S)) * scaling, S the out x in spectrum that is zero except at n_frequency entries chosen by
/// <c>torch.randperm(out * in, generator = torch.Generator().manual_seed(random_loc_seed))[:n_frequency]</c> (the same
/// seed on every layer, as in peft). Only the n_frequency coefficients are trained and saved.
/// </remarks>
public sealed record FourierFTConfig : PeftConfig, IFanInFanOutConfig
{
    /// <summary>"FOURIERFT".</summary>
    public const string TypeName = "FOURIERFT";

    public override string PeftType => TypeName;

    /// <summary>Number of learnable spectral coefficients per layer (below in * out).</summary>
    public int NFrequency { get; init; } = 1000;

    /// <summary>Scale of the update, peft's default 150 (the paper: 100-150 for RoBERTa on GLUE, 300 for LLaMA and ViT).</summary>
    public double Scaling { get; init; } = 150.0;

    /// <summary>Seed of the frequency positions (peft: 777).</summary>
    public long? RandomLocSeed { get; init; } = 777;

    /// <summary>When set, n_frequency = int(alpha * in * out) per layer (newer peft).</summary>
    public double? Alpha { get; init; }

    /// <summary>The normalisation of torch.fft.ifft2: "backward" (1 / (out * in), peft's default), "forward" (none) or "ortho".</summary>
    public string Ifft2Norm { get; init; } = "backward";

    /// <summary>peft's fan_in_fan_out; the targeted layers decide it (true for GPT-2's Conv1D).</summary>
    public bool FanInFanOut { get; init; }

    /// <inheritdoc/>
    public PeftConfig WithFanInFanOut(bool value) => this with { FanInFanOut = value };

    /// <summary>Only "none" is supported.</summary>
    public string Bias { get; init; } = "none";

    /// <summary>false (peft's default): the spectrum starts standard normal, so the model starts changed; true: zeros.</summary>
    public bool InitWeights { get; init; }

    /// <summary>Per-module n_frequency overrides (peft's rule: a key matches a path it ends).</summary>
    public Dictionary<string, int> NFrequencyPattern { get; init; } = [];

    public JsonElement? LayersToTransform { get; init; }
    public JsonElement? LayersPattern { get; init; }

    /// <summary>The coefficient count of the module at <paramref name="modulePath"/> (in x out).</summary>
    public int FrequenciesFor(string modulePath, int inFeatures, int outFeatures) =>
        Alpha is { } a ? (int)(a * inFeatures * outFeatures) : PatternKeys.Find(NFrequencyPattern, modulePath, NFrequency);

    public override void Validate()
    {
        base.Validate();
        if (Alpha is null && NFrequency < 1) throw new ArgumentException($"n_frequency must be a positive integer, got {NFrequency}.", nameof(NFrequency));
        if (Alpha is { } a && !(a > 0 && a < 1)) throw new ArgumentException($"alpha must be in (0, 1) (n_frequency = alpha * in * out), got {a}.", nameof(Alpha));
        if (!double.IsFinite(Scaling)) throw new ArgumentException($"scaling must be a finite number, got {Scaling}.", nameof(Scaling));
        if (RandomLocSeed is null) throw new ArgumentException("random_loc_seed is required (peft's default is 777).", nameof(RandomLocSeed));
        if (Ifft2Norm is not ("backward" or "forward" or "ortho")) throw new ArgumentException($"ifft2_norm must be \"backward\", \"forward\" or \"ortho\", got \"{Ifft2Norm}\".", nameof(Ifft2Norm));
        if (Bias != "none") throw new ArgumentException($"bias \"{Bias}\" is not supported; use \"none\".", nameof(Bias));
        foreach (var (k, v) in NFrequencyPattern)
            if (v < 1) throw new ArgumentException($"n_frequency_pattern[\"{k}\"] must be a positive integer, got {v}.", nameof(NFrequencyPattern));
        if (LayersToTransform is { ValueKind: not JsonValueKind.Null }) throw new ArgumentException("layers_to_transform is not supported; select layers with target_modules (a regex).", nameof(LayersToTransform));
    }
}
