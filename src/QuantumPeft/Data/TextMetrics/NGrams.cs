namespace QuantumPeft.Data.TextMetrics;

/// <summary>N-gram counting shared by BLEU, NIST and CIDEr: an n-gram is its words joined by single spaces.</summary>
internal static class NGrams
{
    /// <summary>Counts of all n-grams of order 1..<paramref name="maxOrder"/> in <paramref name="words"/>.</summary>
    public static Dictionary<string, int> Count(IReadOnlyList<string> words, int maxOrder)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int start = 0; start < words.Count; start++)
        {
            var gram = "";
            for (int n = 1; n <= maxOrder && start + n <= words.Count; n++)
            {
                gram = n == 1 ? words[start] : gram + " " + words[start + n - 1];
                counts[gram] = counts.GetValueOrDefault(gram) + 1;
            }
        }
        return counts;
    }

    /// <summary>The order of an n-gram key (its word count).</summary>
    public static int Order(string gram)
    {
        int n = 1;
        foreach (var c in gram) if (c == ' ') n++;
        return n;
    }
}
