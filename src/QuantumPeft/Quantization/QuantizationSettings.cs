namespace QuantumPeft.Quantization;

/// <summary>b-bit uniform quantization of a Quantum-PEFT adapter's numbers (spec section 5); null bits = kept in float32.</summary>
/// <remarks>
/// Angles of the Pauli circuit are quantized on a fixed grid over one 4 pi period (step 4 pi / 2^b), because
/// RY(t + 2 pi) = -RY(t): a grid over only 2 pi could flip a factor's sign. Lambda and the parameters of non-Pauli
/// maps use symmetric per-tensor quantization (scale = max |x| / (2^(b-1) - 1)). <see cref="Mode"/> "post_training"
/// means the stored numbers are already on the grid (the file holds integers plus scales); "aware" means forward
/// passes use the quantized values with a straight-through estimator while float copies train.
/// </remarks>
public sealed record QuantizationSettings
{
    /// <summary>Bits per angle (and per parameter of non-Pauli maps), 1..16; null keeps float32.</summary>
    public int? AngleBits { get; init; }

    /// <summary>Bits per lambda entry, 2..16; null keeps float32.</summary>
    public int? LambdaBits { get; init; }

    /// <summary>"aware" (quantization-aware training, straight-through estimator) or "post_training".</summary>
    public string Mode { get; init; } = "post_training";

    /// <summary>True for quantization-aware training.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsAware => Mode == "aware";

    /// <summary>Checks the bit widths and the mode.</summary>
    public void Validate()
    {
        if (AngleBits is < 1 or > 16) throw new ArgumentException($"angle_bits must be in 1..16, got {AngleBits}.", nameof(AngleBits));
        if (LambdaBits is < 2 or > 16) throw new ArgumentException($"lambda_bits must be in 2..16, got {LambdaBits}.", nameof(LambdaBits));
        if (Mode is not ("aware" or "post_training")) throw new ArgumentException($"quantization mode must be \"aware\" or \"post_training\", got \"{Mode}\".", nameof(Mode));
    }
}
