namespace QuantumPeft.Stiefel;

/// <summary>
/// Chooses the Pauli construction for a given N: a qubit circuit when N is a power of two; otherwise, with
/// NonPowerOfTwo = "auto" (the default), a mixed-radix qudit circuit when N = d * 2^m with d in {3, 5, 7}
/// and the cosine-sine block split otherwise (e.g. a prime N &gt; 7, or 1000 = 125 * 8).
/// "qudit" forces the qudit circuit (one qudit per odd prime factor), "block" forces the block split.
/// Nothing is padded: every construction is exactly orthonormal.
/// </summary>
public static class PauliMaps
{
    /// <summary>Largest odd factor that "auto" gives its own qudit.</summary>
    public const int MaxAutoQuditDimension = 7;

    internal static StiefelMap Create(int n, int k, StiefelMapOptions options, StiefelInit init) =>
        Dimensions(n, options.NonPowerOfTwo) is { } dims
            ? new PauliCircuitMap(n, k, dims, options, init)
            : new BlockSplitMap(n, k, options, init);

    internal static long CountParameters(int n, int k, StiefelMapOptions options) =>
        Dimensions(n, options.NonPowerOfTwo) is { } dims
            ? PauliCircuitMap.CountParameters(dims, options.Layers, options.GateOrder)
            : BlockSplitMap.CountParameters(n, k, options);

    /// <summary>
    /// The qudit dimensions (qudit 0 = least significant digit of the row index) for a circuit on N, or null
    /// when N takes the block split. Factors of two come first (qubit q is bit q), odd factors after them.
    /// </summary>
    public static int[]? Dimensions(int n, string nonPowerOfTwo)
    {
        int twos = 0, odd = n;
        while (odd % 2 == 0) { odd /= 2; twos++; }
        var dims = Enumerable.Repeat(2, twos).ToList();
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
