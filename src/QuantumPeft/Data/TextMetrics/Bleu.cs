namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// Corpus BLEU-4 exactly as mteval-v13a(-sig) computes it for e2e-metrics: clipped n-gram matches against the most
/// frequent count in any reference, summed over the corpus; the "closest" reference length per segment (ties to the shorter);
/// and v13a's default smoothing of zero-match orders. Returns a fraction in [0, 1].
/// </summary>
public static class Bleu
{
    /// <summary>The largest n-gram order (BLEU-4).</summary>
    public const int MaxOrder = 4;

    /// <summary>Sufficient statistics of a corpus: matches and hypothesis n-gram counts per order (index 1..4), and lengths.</summary>
    public sealed record Stats(long[] Matches, long[] HypothesisNGrams, long ReferenceLength, long HypothesisLength);

    /// <summary>BLEU of tokenised hypotheses against their tokenised reference groups.</summary>
    public static double Score(IReadOnlyList<string[]> hypotheses, IReadOnlyList<IReadOnlyList<string[]>> references) =>
        FromStats(Collect(hypotheses, references));

    /// <summary>Sums the per-segment statistics (mteval's score_segment) over the corpus.</summary>
    public static Stats Collect(IReadOnlyList<string[]> hypotheses, IReadOnlyList<IReadOnlyList<string[]>> references)
    {
        if (hypotheses.Count != references.Count)
            throw new ArgumentException($"{hypotheses.Count} hypotheses for {references.Count} reference groups.", nameof(references));
        var matches = new long[MaxOrder + 1];
        var hypNGrams = new long[MaxOrder + 1];
        long refLength = 0, hypLength = 0;
        for (int s = 0; s < hypotheses.Count; s++)
        {
            var hyp = hypotheses[s];
            hypLength += hyp.Length;
            for (int n = 1; n <= MaxOrder; n++) hypNGrams[n] += Math.Max(0, hyp.Length - n + 1);
            refLength += ClosestReferenceLength(hyp.Length, references[s]);
            var maxRef = MaxReferenceCounts(references[s], MaxOrder);
            foreach (var (gram, count) in NGrams.Count(hyp, MaxOrder))
                if (maxRef.TryGetValue(gram, out var r)) matches[NGrams.Order(gram)] += Math.Min(count, r); // v13a: clipped counts
        }
        return new Stats(matches, hypNGrams, refLength, hypLength);
    }

    /// <summary>
    /// v13a's brevity_penalty_closest folded over the references in order: the first reference's length starts it,
    /// a later empty reference (a padded slot) is skipped, a closer length replaces it, and an equally close shorter one wins.
    /// </summary>
    public static int ClosestReferenceLength(int hypothesisLength, IReadOnlyList<string[]> references)
    {
        int? best = null;
        foreach (var r in references)
        {
            int len = r.Length;
            if (best is null) { best = len; continue; }
            if (len == 0) continue;                                      // v13a: return currentLength if !referenceSentenceLength
            int dNew = Math.Abs(hypothesisLength - len), dOld = Math.Abs(hypothesisLength - best.Value);
            if (dNew < dOld || (dNew == dOld && len < best.Value)) best = len;
        }
        return best ?? 0;
    }

    internal static Dictionary<string, int> MaxReferenceCounts(IReadOnlyList<string[]> references, int maxOrder)
    {
        var max = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in references)
            foreach (var (gram, count) in NGrams.Count(r, maxOrder))
                if (!max.TryGetValue(gram, out var m) || count > m) max[gram] = count;
        return max;
    }

    /// <summary>
    /// v13a's bleu_score (smoothing on, the default): an order with hypothesis n-grams but no match counts
    /// 1 / (2^k * n-grams) with k counting such orders; an order without hypothesis n-grams adds log 1 = 0; the brevity
    /// factor is exp(min(0, 1 - ref/hyp)), 0 for an empty corpus.
    /// </summary>
    public static double FromStats(Stats stats)
    {
        double lengthFactor = stats.HypothesisNGrams[1] > 0 ? Math.Exp(Math.Min(0, 1 - (double)stats.ReferenceLength / stats.HypothesisNGrams[1])) : 0;
        double logSum = 0, smooth = 1;
        for (int n = 1; n <= MaxOrder; n++)
        {
            double logPrecision;
            if (stats.HypothesisNGrams[n] == 0) logPrecision = 0;
            else if (stats.Matches[n] == 0) { smooth *= 2; logPrecision = Math.Log(1 / (smooth * stats.HypothesisNGrams[n])); }
            else logPrecision = Math.Log((double)stats.Matches[n] / stats.HypothesisNGrams[n]);
            logSum += logPrecision;
        }
        return Math.Exp(logSum / MaxOrder) * lengthFactor;
    }
}
