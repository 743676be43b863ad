namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// ROUGE-L as pycocoevalcap's rouge/rouge.py computes it: per segment, the longest common subsequence with each reference,
/// the best precision and the best recall over the references (each maximised on its own), F with beta 1.2; the corpus
/// score is the mean over segments.
/// </summary>
public static class RougeL
{
    /// <summary>rouge.py's beta.</summary>
    public const double Beta = 1.2;

    /// <summary>Mean segment ROUGE-L of space-joined tokenised captions.</summary>
    public static double Score(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references)
    {
        if (hypotheses.Count != references.Count)
            throw new ArgumentException($"{hypotheses.Count} hypotheses for {references.Count} reference groups.", nameof(references));
        if (hypotheses.Count == 0) return 0;
        double sum = 0;
        for (int i = 0; i < hypotheses.Count; i++) sum += Segment(hypotheses[i], references[i]);
        return sum / hypotheses.Count;
    }

    /// <summary>rouge.py's calc_score for one candidate.</summary>
    public static double Segment(string candidate, IReadOnlyList<string> references)
    {
        if (references.Count == 0) throw new ArgumentException("ROUGE-L needs at least one reference.", nameof(references));
        // rouge.py splits on a single space, so an empty caption is one empty token.
        var c = candidate.Split(' ');
        double precMax = 0, recMax = 0;
        foreach (var reference in references)
        {
            var r = reference.Split(' ');
            int lcs = Lcs(r, c);
            precMax = Math.Max(precMax, (double)lcs / c.Length);
            recMax = Math.Max(recMax, (double)lcs / r.Length);
        }
        if (precMax == 0 || recMax == 0) return 0;
        return (1 + Beta * Beta) * precMax * recMax / (recMax + Beta * Beta * precMax);
    }

    /// <summary>Length of the longest common subsequence of two token arrays.</summary>
    public static int Lcs(string[] a, string[] b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
                cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : Math.Max(prev[j], cur[j - 1]);
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
