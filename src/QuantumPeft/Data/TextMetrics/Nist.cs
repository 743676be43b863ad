namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// Corpus NIST-5 exactly as mteval-v13a(-sig) computes it for e2e-metrics: information weights
/// info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn)) from all reference segments (unigrams over the total reference
/// word count), summed over clipped matches and divided by the hypothesis n-gram count per order, times the length penalty
/// exp(beta log^2(min(1, hyp / ref))) with beta chosen so that a ratio of 2/3 gives 0.5.
/// </summary>
public static class Nist
{
    /// <summary>The largest n-gram order (NIST-5).</summary>
    public const int MaxOrder = 5;

    // mteval counts n-grams up to 9 (its $max_Ngram); orders above 5 do not enter the NIST-5 score.
    const int CountedOrder = MaxOrder;

    /// <summary>
    /// NIST of tokenised hypotheses against their reference groups. <paramref name="referenceSets"/> is the number of
    /// reference "systems" in mteval's files: e2e-metrics pads every group to the largest group size with empty references,
    /// so the reference length is total reference words / the largest group size.
    /// </summary>
    public static double Score(IReadOnlyList<string[]> hypotheses, IReadOnlyList<IReadOnlyList<string[]>> references, int? referenceSets = null)
    {
        if (hypotheses.Count != references.Count)
            throw new ArgumentException($"{hypotheses.Count} hypotheses for {references.Count} reference groups.", nameof(references));
        var info = InformationWeights(references.SelectMany(g => g).ToList());
        int sets = referenceSets ?? (references.Count == 0 ? 1 : references.Max(g => g.Count));
        var infoSum = new double[MaxOrder + 1];
        var hypNGrams = new long[MaxOrder + 1];
        long refWords = 0, hypWords = 0;
        for (int s = 0; s < hypotheses.Count; s++)
        {
            var hyp = hypotheses[s];
            hypWords += hyp.Length;
            for (int n = 1; n <= MaxOrder; n++) hypNGrams[n] += Math.Max(0, hyp.Length - n + 1);
            foreach (var r in references[s]) refWords += r.Length;
            var maxRef = Bleu.MaxReferenceCounts(references[s], CountedOrder);
            foreach (var (gram, count) in NGrams.Count(hyp, CountedOrder))
                if (maxRef.TryGetValue(gram, out var r))
                    infoSum[NGrams.Order(gram)] += info[gram] * Math.Min(count, r);   // v13a: info * clipped count
        }
        double score = 0;
        for (int n = 1; n <= MaxOrder; n++) score += infoSum[n] / Math.Max(hypNGrams[n], 1);
        double referenceLength = (double)refWords / sets;                      // v13a: ref_ngrams[1] / nsys
        return score * LengthPenalty(hypWords / referenceLength);
    }

    /// <summary>mteval's compute_ngram_info over all reference segments (orders 1..5).</summary>
    public static Dictionary<string, double> InformationWeights(IReadOnlyList<string[]> allReferences)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        long totalWords = 0;
        foreach (var r in allReferences)
        {
            totalWords += r.Length;
            foreach (var (gram, c) in NGrams.Count(r, CountedOrder)) counts[gram] = counts.GetValueOrDefault(gram) + c;
        }
        var info = new Dictionary<string, double>(counts.Count, StringComparer.Ordinal);
        foreach (var (gram, c) in counts)
        {
            int cut = gram.LastIndexOf(' ');
            var prefix = cut < 0 ? "" : gram[..cut];
            // v13a tests the prefix with Perl truth ($mgram ? ...), so a prefix that is the single word "0" counts as none.
            double denominator = prefix is "" or "0" ? totalWords : counts[prefix];
            info[gram] = -Math.Log(c / denominator) / Math.Log(2);
        }
        return info;
    }

    /// <summary>v13a's nist_length_penalty: 1 at or above ratio 1, 0 at or below 0, else exp(-beta log^2 ratio), beta = -ln 0.5 / ln^2 1.5.</summary>
    public static double LengthPenalty(double ratio)
    {
        if (double.IsNaN(ratio) || ratio >= 1) return 1;
        if (ratio <= 0) return 0;
        double beta = -Math.Log(0.5) / Math.Log(1.5) / Math.Log(1.5);
        return Math.Exp(-beta * Math.Log(ratio) * Math.Log(ratio));
    }
}
