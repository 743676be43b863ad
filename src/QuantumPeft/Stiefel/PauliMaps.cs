namespace QuantumPeft.Stiefel;

/// <summary>
/// Chooses the Pauli construction for a given N: a qubit circuit when N is a power of two; otherwise, with
/// NonPowerOfTwo = "auto" (the default), a mixed-radix qudit circuit when N = d * 2^m with d in {3, 5, 7}
/// and the cosine-sine block split otherwise (e.g. a prime N &gt; 7, or 1000 = 125 * 8).
/// "qudit" forces the qudit circuit (one qudit per odd prime factor), "block" forces the block split.
/// With LocalQubits = g &gt; 1 the factors of two are taken g at a time (qudits of 2^g levels, the last one
/// smaller when g does not divide their number); a block split's circuits are grouped the same way.
/// Nothing is padded: every construction is exactly orthonormal.
/// </summary>
public static class PauliMaps
{
    /// <summary>Largest odd factor that "auto" gives its own qudit.</summary>
    public const int MaxAutoQuditDimension = 7;

    internal static StiefelMap Create(int n, int k, StiefelMapOptions options, StiefelInit init) =>
        Dimensions(n, options.NonPowerOfTwo, options.LocalQubits) is { } dims
            ? new PauliCircuitMap(n, k, dims, options, init)
            : new BlockSplitMap(n, k, options, init);

    internal static long CountParameters(int n, int k, StiefelMapOptions options) =>
        Dimensions(n, options.NonPowerOfTwo, options.LocalQubits) is { } dims
            ? PauliCircuitMap.CountParameters(dims, options.Layers, options.GateOrder, options.LocalQubits > 1)
            : BlockSplitMap.CountParameters(n, k, options);

    /// <summary>
    /// The qudit dimensions (qudit 0 = least significant digit of the row index) for a circuit on N, or null
    /// when N takes the block split. Factors of two come first (qubit q is bit q), odd factors after them;
    /// with <paramref name="localQubits"/> = g the factors of two form qudits of 2^g levels (qudit j holds bits
    /// g j .. g j + g - 1), the last of 2^(twos mod g) levels when g does not divide their number.
    /// </summary>
    public static int[]? Dimensions(int n, string nonPowerOfTwo, int localQubits = 1)
    {
        if (localQubits < 1) throw new ArgumentOutOfRangeException(nameof(localQubits), localQubits, $"LocalQubits must be >= 1, got {localQubits}.");
        int twos = 0, odd = n;
        while (odd % 2 == 0) { odd /= 2; twos++; }
        var dims = new List<int>();
        for (int bits = 0; bits < twos; bits += localQubits) dims.Add(1 << Math.Min(localQubits, twos - bits));
        if (odd == 1) return dims.ToArray();
        switch (nonPowerOfTwo)
        {
            case "block": return null;
            case "auto" when odd > MaxAutoQuditDimension: return null;
            case "auto": dims.Add(odd); return dims.ToArray();
            case "qudit":
                for (int p = 3; odd > 1; p += 2)
                {
                    if ((long)p * p > odd) { dims.Add(odd); break; }
                    while (odd % p == 0) { dims.Add(p); odd /= p; }
                }
                return dims.ToArray();
            default:
                throw new ArgumentException($"NonPowerOfTwo = '{nonPowerOfTwo}' is not one of: auto, qudit, block.", nameof(nonPowerOfTwo));
        }
    }
}
