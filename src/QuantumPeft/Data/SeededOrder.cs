namespace QuantumPeft.Data;

/// <summary>Deterministic shuffles and derived seeds, the same on every machine and every run.</summary>
public static class SeededOrder
{
    /// <summary>
    /// Mixes a base seed with a stream index (an epoch, a step) into a new seed. Unlike HashCode.Combine
    /// this is stable across processes, which is what makes a resumed run repeat the uninterrupted one.
    /// </summary>
    public static int Derive(long seed, long stream)
    {
        // SplitMix64 finaliser: neighbouring (seed, stream) pairs give unrelated seeds.
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)stream + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }

    /// <summary>A permutation of 0..count-1 drawn from <paramref name="seed"/> (Fisher-Yates on a seeded System.Random).</summary>
    public static int[] Permutation(int count, int seed)
    {
        var order = Enumerable.Range(0, count).ToArray();
        var rng = new Random(seed);
        for (int i = count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>The order in which the training examples are visited in <paramref name="epoch"/>: derived from (seed, epoch) only, so a resumed run sees the same batches.</summary>
    public static int[] EpochOrder(int count, long seed, int epoch) => Permutation(count, Derive(seed, epoch));

    /// <summary>The items in a seeded random order.</summary>
    public static List<T> Shuffle<T>(IReadOnlyList<T> items, int seed) => Permutation(items.Count, seed).Select(i => items[i]).ToList();
}
