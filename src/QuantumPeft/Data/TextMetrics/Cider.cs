namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// CIDEr-D as pycocoevalcap's cider/cider_scorer.py computes it (n = 4, sigma = 6): tf-idf vectors per order with document
/// frequencies over the reference groups and log(number of groups) as the idf numerator; the hypothesis weight clipped
/// to the reference weight in the dot product; a Gaussian penalty on the length difference (cider_scorer counts
/// "length" as the number of bigrams); mean over orders and references, times 10; the corpus score is the mean over segments.
/// </summary>
public static class Cider
{
    /// <summary>cider.py's n.</summary>
    public const int N = 4;
    /// <summary>cider.py's sigma.</summary>
    public const double Sigma = 6.0;

    /// <summary>Mean segment CIDEr-D of space-joined tokenised captions.</summary>
    public static double Score(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references) =>
        SegmentScores(hypotheses, references) is { Length: > 0 } s ? s.Average() : 0;

    /// <summary>cider_scorer.py's compute_cider: one score per segment.</summary>
    public static double[] SegmentScores(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references)
    {
        if (hypotheses.Count != references.Count)
            throw new ArgumentException($"{hypotheses.Count} hypotheses for {references.Count} reference groups.", nameof(references));
        var refCounts = references.Select(g => g.Select(Cook).ToList()).ToList();
        var hypCounts = hypotheses.Select(Cook).ToList();
        // compute_doc_freq: an n-gram counts once per reference group in which any reference has it.
        var df = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var group in refCounts)
            foreach (var gram in group.SelectMany(c => c.Keys).Distinct())
                df[gram] = df.GetValueOrDefault(gram) + 1;
        double refLen = Math.Log(references.Count);

        var scores = new double[hypotheses.Count];
        for (int i = 0; i < hypotheses.Count; i++)
        {
            var (vecH, normH, lenH) = ToVector(hypCounts[i], df, refLen);
            var sum = new double[N];
            foreach (var refCount in refCounts[i])
            {
                var (vecR, normR, lenR) = ToVector(refCount, df, refLen);
                double delta = lenH - lenR;
                for (int n = 0; n < N; n++)
                {
                    double val = 0;
                    foreach (var (gram, wh) in vecH[n])
                        if (vecR[n].TryGetValue(gram, out var wr)) val += Math.Min(wh, wr) * wr;   // CIDEr-D clipping
                    if (normH[n] != 0 && normR[n] != 0) val /= normH[n] * normR[n];
                    val *= Math.Exp(-(delta * delta) / (2 * Sigma * Sigma));                      // Gaussian length penalty
                    sum[n] += val;
                }
            }
            double mean = sum.Average();
            scores[i] = refCounts[i].Count == 0 ? double.NaN : mean / refCounts[i].Count * 10.0;
        }
        return scores;
    }

    // cider_scorer.py's precook: n-grams of orders 1..4 of the whitespace-split caption.
    static Dictionary<string, int> Cook(string caption) =>
        NGrams.Count(caption.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries), N);

    // cider_scorer.py's counts2vec: weight tf * (log(#groups) - log(max(1, df))); "length" sums the bigram counts.
    static (Dictionary<string, double>[] Vec, double[] Norm, int Length) ToVector(Dictionary<string, int> counts, Dictionary<string, int> df, double refLen)
    {
        var vec = Enumerable.Range(0, N).Select(_ => new Dictionary<string, double>(StringComparer.Ordinal)).ToArray();
        var norm = new double[N];
        int length = 0;
        foreach (var (gram, tf) in counts)
        {
            int n = NGrams.Order(gram) - 1;
            double w = tf * (refLen - Math.Log(Math.Max(1.0, df.GetValueOrDefault(gram))));
            vec[n][gram] = w;
            norm[n] += w * w;
            if (n == 1) length += tf;
        }
        for (int n = 0; n < N; n++) norm[n] = Math.Sqrt(norm[n]);
        return (vec, norm, length);
    }
}
