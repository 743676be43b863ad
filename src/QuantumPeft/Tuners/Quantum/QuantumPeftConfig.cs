using System.Text.Json.Serialization;
using QuantumPeft.Quantization;
using QuantumPeft.Stiefel;

namespace QuantumPeft.Tuners.Quantum;

/// <summary>Quantum-PEFT settings (peft_type "QUANTUM_PEFT"): dW = (alpha / K) U diag(lambda) V^T with U, V from Stiefel maps.</summary>
/// <remarks>
/// <see cref="StiefelU"/> builds U (N_out x K) and <see cref="StiefelV"/> builds V (N_in x K); each carries the map kind,
/// the Pauli circuit's layers L, entangler, gate order and the handling of N that is not a power of two.
/// <see cref="Layers"/>, <see cref="Map"/>, <see cref="GateOrder"/>, <see cref="LocalQubits"/> and <see cref="InitAngles"/>
/// are shorthands that set both sides (in files each side's value is written under stiefel_u / stiefel_v). Map parameters are seeded from
/// <see cref="Seed"/> and the module path (FNV-1a), so the same config on the same model gives the same adapter.
/// </remarks>
public sealed record QuantumPeftConfig : PeftConfig
{
    /// <summary>"QUANTUM_PEFT".</summary>
    public const string TypeName = "QUANTUM_PEFT";

    public override string PeftType => TypeName;

    /// <summary>Rank K (columns of U and V, entries of lambda).</summary>
    public int R { get; init; } = 4;

    /// <summary>alpha of the scaling s = alpha / K.</summary>
    public double Alpha { get; init; } = 4;

    /// <summary>Dropout probability on the input of the adapter path.</summary>
    public double Dropout { get; init; }

    /// <summary>The map that builds U (N_out x K).</summary>
    public StiefelMapOptions StiefelU { get; init; } = new();

    /// <summary>The map that builds V (N_in x K).</summary>
    public StiefelMapOptions StiefelV { get; init; } = new();

    /// <summary>Initial lambda: "zeros" (the adapted model equals the base model) or "random" (uniform in +-1, for tests).</summary>
    public string InitLambda { get; init; } = "zeros";

    /// <summary>Seed of the map parameters' initialisation (combined with each module's path).</summary>
    public long Seed { get; init; }

    /// <summary>Angle / lambda quantization (post-training or quantization-aware), or null for float32.</summary>
    public QuantizationSettings? Quantization { get; init; }

    /// <summary>Shorthand: the Pauli circuit's layers L on both sides.</summary>
    [JsonIgnore]
    public int Layers
    {
        get => StiefelU.Layers;
        init { StiefelU = StiefelU with { Layers = value }; StiefelV = StiefelV with { Layers = value }; }
    }

    /// <summary>Shorthand: the map kind on both sides.</summary>
    [JsonIgnore]
    public StiefelMapKind Map
    {
        get => StiefelU.Kind;
        init { StiefelU = StiefelU with { Kind = value }; StiefelV = StiefelV with { Kind = value }; }
    }

    /// <summary>Shorthand: the Pauli circuit's layout (alternating, full, s2d) on both sides.</summary>
    [JsonIgnore]
    public string GateOrder
    {
        get => StiefelU.GateOrder;
        init { StiefelU = StiefelU with { GateOrder = value }; StiefelV = StiefelV with { GateOrder = value }; }
    }

    /// <summary>Shorthand: the Pauli circuit's qubits per local rotation g on both sides.</summary>
    [JsonIgnore]
    public int LocalQubits
    {
        get => StiefelU.LocalQubits;
        init { StiefelU = StiefelU with { LocalQubits = value }; StiefelV = StiefelV with { LocalQubits = value }; }
    }

    /// <summary>Shorthand: the maps' initialisation (uniform, zeros, period) on both sides.</summary>
    [JsonIgnore]
    public string InitAngles
    {
        get => StiefelU.Init;
        init { StiefelU = StiefelU with { Init = value }; StiefelV = StiefelV with { Init = value }; }
    }

    /// <summary>s = alpha / K.</summary>
    [JsonIgnore]
    public double Scaling => Alpha / R;

    public override void Validate()
    {
        base.Validate();
        if (R < 1) throw new ArgumentException($"r (rank K) must be at least 1, got {R}.", nameof(R));
        if (!double.IsFinite(Alpha) || Alpha <= 0) throw new ArgumentException($"alpha must be a positive number (s = alpha / K), got {Alpha}.", nameof(Alpha));
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"dropout must be in [0, 1), got {Dropout}.", nameof(Dropout));
        if (InitLambda is not ("zeros" or "random")) throw new ArgumentException($"init_lambda must be \"zeros\" or \"random\", got \"{InitLambda}\".", nameof(InitLambda));
        ArgumentNullException.ThrowIfNull(StiefelU, nameof(StiefelU));
        ArgumentNullException.ThrowIfNull(StiefelV, nameof(StiefelV));
        ValidateMap(StiefelU, "stiefel_u", nameof(StiefelU));
        ValidateMap(StiefelV, "stiefel_v", nameof(StiefelV));
        Quantization?.Validate();
    }

    /// <summary>The keys of a map's options inside stiefel_u / stiefel_v (kind, layers, gate_order, local_qubits, init, init_scale, ...).</summary>
    public static IReadOnlyList<string> MapOptionKeys { get; } =
        JsonOptions.GetTypeInfo(typeof(StiefelMapOptions)).Properties.Select(p => p.Name).ToArray();

    /// <summary>
    /// Sets one map option in an adapter_config.json object: <c>init</c> (or any of <see cref="MapOptionKeys"/>) on both
    /// sides, <c>stiefel_u.init</c> / <c>stiefel_v.init</c> on one; false (nothing changed) when the key is no map option.
    /// </summary>
    /// <remarks>For KEY=VALUE settings such as <c>--set init=period</c>: the options live one level down, under each side.</remarks>
    public static bool SetMapOption(System.Text.Json.Nodes.JsonObject config, string key, System.Text.Json.Nodes.JsonNode? value)
    {
        var dot = key.IndexOf('.');
        var sides = dot < 0 ? ["stiefel_u", "stiefel_v"] : new[] { key[..dot] };
        var field = dot < 0 ? key : key[(dot + 1)..];
        if (!MapOptionKeys.Contains(field) || sides.Any(s => s is not ("stiefel_u" or "stiefel_v"))) return false;
        foreach (var side in sides)
        {
            if (config[side] is not System.Text.Json.Nodes.JsonObject options) config[side] = options = [];
            options[field] = value?.DeepClone();
        }
        return true;
    }

    // A map option as a file names it (stiefel_u.gate_order), with the choices the map's own check lists.
    static void ValidateMap(StiefelMapOptions options, string key, string param)
    {
        try { StiefelMaps.ValidateOptions(options); }
        catch (ArgumentException e)
        {
            var field = System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(e.ParamName ?? "");
            throw new ArgumentException($"{key}.{field}: {e.Message.Split(" (Parameter ")[0]}", param, e);
        }
    }

    /// <summary>Trainable numbers of one adapted out x in matrix: angles(U) + angles(V) + K, from the maps' own formulas.</summary>
    public long CountParameters(int inFeatures, int outFeatures) =>
        StiefelMaps.CountParameters(outFeatures, R, StiefelU) + StiefelMaps.CountParameters(inFeatures, R, StiefelV) + R;
}
