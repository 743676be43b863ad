namespace QuantumPeft.Stiefel;

/// <summary>Factory for Stiefel maps: validates options, builds a map, counts parameters, and maps kinds to names.</summary>
public static class StiefelMaps
{
    static readonly (StiefelMapKind Kind, string Name)[] Names =
    [
        (StiefelMapKind.Pauli, "pauli"), (StiefelMapKind.Taylor, "taylor"), (StiefelMapKind.MatrixExp, "matrix_exp"),
        (StiefelMapKind.Cayley, "cayley"), (StiefelMapKind.Householder, "householder"), (StiefelMapKind.Givens, "givens"),
    ];

    /// <summary>All map kinds in table order.</summary>
    public static IReadOnlyList<StiefelMapKind> All { get; } = Names.Select(p => p.Kind).ToArray();

    /// <summary>Builds an N x K map in float32 on the CPU (move it with <c>.to(device)</c> / <c>.to(dtype)</c>).</summary>
    /// <param name="n">Rows N (at least 2).</param>
    /// <param name="k">Columns K (1..N).</param>
    /// <param name="options">Which map and its settings.</param>
    /// <param name="seed">Seed of the uniform initialisation; null draws a fresh one.</param>
    public static StiefelMap Create(int n, int k, StiefelMapOptions options, long? seed = null)
    {
        Validate(n, k, options);
        var init = new StiefelInit(options, seed);
        return options.Kind switch
        {
            StiefelMapKind.Pauli => PauliMaps.Create(n, k, options, init),
            StiefelMapKind.Taylor => new TaylorMap(n, k, options.TaylorOrder, init),
            StiefelMapKind.MatrixExp => new MatrixExpMap(n, k, init),
            StiefelMapKind.Cayley => new CayleyMap(n, k, init),
            StiefelMapKind.Householder => new HouseholderMap(n, k, init),
            StiefelMapKind.Givens => new GivensMap(n, k, init),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "Unknown Stiefel map kind."),
        };
    }

    /// <summary>The number of free parameters <see cref="Create"/> would make, from each map's formula.</summary>
    public static long CountParameters(int n, int k, StiefelMapOptions options)
    {
        Validate(n, k, options);
        return options.Kind switch
        {
            StiefelMapKind.Pauli => PauliMaps.CountParameters(n, k, options),
            StiefelMapKind.Taylor or StiefelMapKind.MatrixExp or StiefelMapKind.Cayley => SkewMap.CountParameters(n, k),
            StiefelMapKind.Householder => HouseholderMap.CountParameters(n, k),
            StiefelMapKind.Givens => GivensMap.CountParameters(n, k),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "Unknown Stiefel map kind."),
        };
    }

    /// <summary>The short name of a kind: pauli, taylor, matrix_exp, cayley, householder, givens.</summary>
    public static string Name(StiefelMapKind kind)
    {
        foreach (var (k, name) in Names) if (k == kind) return name;
        throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown Stiefel map kind.");
    }

    /// <summary>Parses a short name (case-insensitive; '-' may stand for '_').</summary>
    public static StiefelMapKind Parse(string name)
    {
        var key = (name ?? "").Trim().ToLowerInvariant().Replace('-', '_');
        foreach (var (k, n) in Names) if (n == key) return k;
        throw new ArgumentException(
            $"Unknown Stiefel map '{name}'; valid names: {string.Join(", ", Names.Select(p => p.Name))}.", nameof(name));
    }

    /// <summary>Throws an argument exception naming the first invalid size or option.</summary>
    public static void Validate(int n, int k, StiefelMapOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (n < 2) throw new ArgumentOutOfRangeException(nameof(n), n, $"N (rows) must be at least 2, got {n}.");
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, $"K (columns / rank) must be at least 1, got {k}.");
        if (k > n) throw new ArgumentOutOfRangeException(nameof(k), k, $"K (columns / rank) = {k} cannot exceed N (rows) = {n}.");
        ValidateOptions(options);
    }

    /// <summary>Largest LocalQubits g: a qudit of 2^6 = 64 levels already has 2016 angles per rotation.</summary>
    public const int MaxLocalQubits = 6;

    /// <summary>Choices of <see cref="StiefelMapOptions.GateOrder"/>.</summary>
    public static IReadOnlyList<string> GateOrders { get; } = ["alternating", "full", "s2d"];

    /// <summary>Choices of <see cref="StiefelMapOptions.Init"/>.</summary>
    public static IReadOnlyList<string> Inits { get; } = ["uniform", "zeros", "period"];

    /// <summary>Throws an argument exception naming the first invalid option (sizes aside), listing the valid choices.</summary>
    public static void ValidateOptions(StiefelMapOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Enum.IsDefined(options.Kind))
            throw new ArgumentOutOfRangeException(nameof(options.Kind), options.Kind, $"Kind is not one of: {string.Join(", ", Names.Select(p => p.Name))}.");
        if (options.Layers < 0)
            throw new ArgumentOutOfRangeException(nameof(options.Layers), options.Layers, $"Layers (Pauli L) must be >= 0, got {options.Layers}.");
        if (options.TaylorOrder < 1)
            throw new ArgumentOutOfRangeException(nameof(options.TaylorOrder), options.TaylorOrder, $"TaylorOrder must be >= 1, got {options.TaylorOrder}.");
        CheckChoice(options.NonPowerOfTwo, nameof(options.NonPowerOfTwo), "auto", "qudit", "block");
        CheckChoice(options.Entangler, nameof(options.Entangler), "cz", "none");
        CheckChoice(options.GateOrder, nameof(options.GateOrder), [.. GateOrders]);
        if (options.LocalQubits is < 1 or > MaxLocalQubits)
            throw new ArgumentOutOfRangeException(nameof(options.LocalQubits), options.LocalQubits,
                $"LocalQubits (qubits per local rotation g) must be in 1..{MaxLocalQubits}, got {options.LocalQubits}.");
        CheckChoice(options.Init, nameof(options.Init), [.. Inits]);
        if (options.Init == "period" && options.Kind is not (StiefelMapKind.Pauli or StiefelMapKind.Givens))
            throw new ArgumentException(
                $"Init = 'period' draws angles over a full period and applies to the angle maps (pauli, givens) only, not {Name(options.Kind)}; use uniform or zeros.", nameof(options.Init));
        if (!double.IsFinite(options.InitScale) || options.InitScale < 0)
            throw new ArgumentOutOfRangeException(nameof(options.InitScale), options.InitScale, $"InitScale must be finite and >= 0, got {options.InitScale}.");
    }

    static void CheckChoice(string? value, string param, params string[] valid)
    {
        if (value is null || !valid.Contains(value))
            throw new ArgumentException($"{param} = '{value}' is not one of: {string.Join(", ", valid)}.", param);
    }
}
